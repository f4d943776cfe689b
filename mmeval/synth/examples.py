"""Example data for every built-in task: a handful of generated documents in one of the task's real
layouts, written by the task's own writer, so a test can take any registered task through load ->
request -> score -> aggregate (tests/contract/ does, for every task and protocol).

`Task.write_example(directory, seed)` reads `EXAMPLES` by task name; a task not listed here (a
third-party one, say) overrides that classmethod instead. The ten benchmarks of `mmeval synth`
reuse its generators at a few rows each; the captioning tasks get pictures of coloured shapes with
three reference captions each (the alignment captions' three styles).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mmeval.synth.benchmarks import GENERATORS, write_rows

Writer = Callable[[Path, int], Path]


@dataclass(frozen=True)
class Example:
    """How to write a task's example data, and the task options under which it is scored locally
    (VQAv2's llava protocol defaults to test-dev, whose answers are not public: its example is read
    as the val split)."""

    write: Writer
    task_args: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def _benchmark(task: str, n: int) -> Writer:
    """`mmeval synth`'s generator for `task`, `n` questions, seeded as the synth benchmarks are."""

    def write(directory: Path, seed: int) -> Path:
        rows, _ = GENERATORS[task](random.Random(f"{seed}/{task}"), n)
        write_rows(task, directory, rows)
        return directory

    return write


def write_mme(directory: Path, seed: int) -> Path:
    """`mmeval synth`'s five perception subtasks plus a cognition one (numerical_calculation: the
    number of shapes plus one), so both totals exist; lmms-lab parquet."""
    from mmeval.synth.images import draw_scene, random_scene

    rng = random.Random(f"{seed}/mme")
    rows, _ = GENERATORS["mme"](rng, 10)
    scene = random_scene(rng)
    k = len(scene.objects) + 1
    for question, answer in ((f"Is the number of shapes plus one equal to {k}?", "Yes"),
                             (f"Is the number of shapes plus one equal to {k + 1}?", "No")):
        rows.append({"category": "numerical_calculation", "image_name": "0000.png", "image": draw_scene(scene),
                     "question": question + " Please answer yes or no.", "answer": answer})
    write_rows("mme", directory, rows)
    return directory


def caption_images(rng: random.Random, n: int) -> list[tuple[Any, list[str]]]:
    """`n` pictures of coloured shapes, each with three reference captions naming every object."""
    from mmeval.synth.images import draw_scene, random_scene
    from mmeval.synth.training import CAPTION_STYLES, caption

    out = []
    for _ in range(n):
        scene = random_scene(rng)
        out.append((draw_scene(scene), [caption(scene, style) for style in CAPTION_STYLES]))
    return out


def _task_class(name: str):
    from mmeval.registry import task_classes

    return task_classes()[name]


def write_coco_caption(directory: Path, seed: int, n: int = 4) -> Path:
    """yerevann/coco-karpathy parquet (no image column) with the pictures as COCO val2014 files beside it."""
    images = Path(directory) / "val2014"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (picture, refs) in enumerate(caption_images(random.Random(f"{seed}/coco_caption"), n)):
        cocoid = 100000 + i
        filename = f"COCO_val2014_{cocoid:012d}.jpg"
        picture.save(images / filename)
        rows.append({"filepath": "val2014", "sentids": [3 * i + k for k in range(len(refs))], "filename": filename,
                     "imgid": i, "split": "test", "sentences": refs, "cocoid": cocoid,
                     "url": f"http://images.cocodataset.org/val2014/{filename}"})
    _task_class("coco_caption").write_layout(directory, rows)
    return Path(directory)


def write_nocaps(directory: Path, seed: int, n: int = 6) -> Path:
    """nocaps' official nocaps_val_4500_captions.json (images in each of the three domains) and the images."""
    domains = ("in-domain", "near-domain", "out-domain")
    images = [{"id": i, "file_name": f"{0xabc000 + i:016x}.jpg", "domain": domains[i % len(domains)],
               "captions": refs, "pil": picture}
              for i, (picture, refs) in enumerate(caption_images(random.Random(f"{seed}/nocaps"), n))]
    _task_class("nocaps").write_official(directory, images)
    return Path(directory)


def write_textcaps(directory: Path, seed: int, n: int = 4) -> Path:
    """lmms-lab/TextCaps parquet, one row per image."""
    rows = [{"image_id": f"{0xdef000 + i:016x}", "image": picture, "caption_str": refs, "reference_strs": refs,
             "image_name": f"{0xdef000 + i:016x}"}
            for i, (picture, refs) in enumerate(caption_images(random.Random(f"{seed}/textcaps"), n))]
    _task_class("textcaps").write_layout(directory, rows)
    return Path(directory)


# questions per task: a handful, enough for every metric to be defined (POPE: both answers in each
# category; MMBench: questions before their CircularEval rotations)
EXAMPLES: dict[str, Example] = {
    "vqav2": Example(_benchmark("vqav2", 6), {"split": "val"}),
    "gqa": Example(_benchmark("gqa", 6)),
    "scienceqa_img": Example(_benchmark("scienceqa_img", 6)),
    "textvqa": Example(_benchmark("textvqa", 6)),
    "pope": Example(_benchmark("pope", 12)),
    "mme": Example(write_mme),
    "mmbench": Example(_benchmark("mmbench", 3)),
    "mmvet": Example(_benchmark("mmvet", 6)),
    "vizwiz": Example(_benchmark("vizwiz", 8)),
    "vsr": Example(_benchmark("vsr", 8)),
    "coco_caption": Example(write_coco_caption),
    "nocaps": Example(write_nocaps),
    "textcaps": Example(write_textcaps),
}


def missing_example(task: str) -> NotImplementedError:
    return NotImplementedError(
        f"task {task} has no example data: add an Example to EXAMPLES in mmeval/synth/examples.py, or override "
        f"`write_example(directory, seed) -> Path` in its Task class (write a handful of generated rows in one of "
        "its real layouts with its own writer and return the folder to pass to load_docs)")


def write_example(task: str, directory: str | Path, seed: int = 0) -> Path:
    """Write `task`'s example data under `directory`; returns the folder to pass to `load_docs`."""
    if task not in EXAMPLES:
        raise missing_example(task)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return EXAMPLES[task].write(directory, seed)


def example_task_args(task: str) -> dict[str, str]:
    """The task options under which `task`'s example data is scored locally ({} for most)."""
    return dict(EXAMPLES[task].task_args) if task in EXAMPLES else {}
