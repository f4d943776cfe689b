"""A training set in LLaVA's conversation format covering the same question types as the
generated benchmarks, on different pictures (another seed).

The pictures and questions come from the benchmark generators (`benchmarks.py`) written to a
scratch folder and read back through each task's own loader; each question's prompt is what the
task's `request()` sends under the `llava` and `prismatic` protocols (VL-Mamba's and Cobra's), so
a model trained on it sees exactly the evaluation prompts. The answer is the gold answer as the
model should say it ("Yes"/"No" and "True"/"False" capitalised: the prismatic protocol reads the
next-token probabilities of exactly those words).

Files: `<out>/train.json` (a list of `{"id", "image", "conversations": [{"from": "human", "value":
"<image>\\n..."}, {"from": "gpt", "value": ...}]}`) and `<out>/images/<hash>.png`.
"""

from __future__ import annotations

import json
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmeval.synth.benchmarks import DEFAULT_COUNTS, TASKS, write_benchmarks

TRAIN_FILE = "train.json"
PROTOCOLS = ("llava", "prismatic")
TRAIN_SEED_OFFSET = 7919  # the training pictures never repeat the benchmark's seed
TASK_OPTIONS = {"vqav2": {"split": "val"}}


def answer_text(task: str, target: Any) -> str:
    """The gold answer of a document as the model should produce it."""
    if isinstance(target, bool):
        return "True" if target else "False"
    if isinstance(target, (list, tuple)):
        target = target[0]
    text = str(target)
    if task in ("pope", "mme") and text.lower() in ("yes", "no"):
        return text.capitalize()
    return text


def build_training_set(out: str | Path, seed: int = 0, scale: float = 20.0, tasks: tuple[str, ...] = TASKS,
                       log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write `out/train.json` + `out/images/`; `scale` multiplies the benchmarks' default counts.
    Returns {"file", "images", "n", "per_task"}."""
    from mmeval.registry import get_task
    from mmeval.types import ImageError

    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    counts = {t: max(1, int(DEFAULT_COUNTS[t] * scale)) for t in tasks}
    rows: list[dict[str, Any]] = []
    per_task: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="mmeval-synth-train-") as tmp:
        write_benchmarks(tmp, seed=seed + TRAIN_SEED_OFFSET, counts=counts, tasks=tasks)
        for task_name in tasks:
            task = get_task(task_name, **TASK_OPTIONS.get(task_name, {}))
            docs = task.load_docs(Path(tmp) / task_name)
            n = 0
            for doc in docs:
                if doc.target is None:
                    continue
                try:
                    picture = doc.images[0].load()
                except ImageError:  # pragma: no cover - our own pictures always decode
                    continue
                name = f"{doc.images[0].content_key()}.png"
                if not (images / name).exists():
                    picture.save(images / name)
                doc.images[0].release()
                prompts = []
                for proto in PROTOCOLS:
                    if proto in task.protocols:
                        p = task.request(doc, proto).prompt
                        if p not in prompts:
                            prompts.append(p)
                for j, prompt in enumerate(prompts):
                    rows.append({"id": f"{task_name}-{doc.doc_id}-{j}", "image": name, "conversations": [
                        {"from": "human", "value": "<image>\n" + prompt},
                        {"from": "gpt", "value": answer_text(task_name, doc.target)}]})
                    n += 1
            per_task[task_name] = n
            if log:
                log(f"  train {task_name:14s} {n:5d} conversations")
    random.Random(seed).shuffle(rows)
    (out / TRAIN_FILE).write_text(json.dumps(rows))
    return {"file": str(out / TRAIN_FILE), "images": str(images), "n": len(rows), "per_task": per_task}


def corpus(rows: list[dict[str, Any]]) -> list[str]:
    """Every human and gpt text of a training set (for training a tokenizer)."""
    return [t["value"] for r in rows for t in r["conversations"]]


CAPTION_FILE = "captions.json"


CAPTION_STYLES = ("slots", "shapes", "colors")


def caption(scene, style: str = "slots") -> str:
    """A caption naming every object, in one of three orders:

    - "slots": '2 shapes: red circle left, blue square right.' (objects from left to right);
    - "shapes": 'circle red left, square none, triangle blue right.' (every shape, in a fixed order);
    - "colors": 'blue square right, green none, red circle left, yellow none.' (every colour).

    In the keyed styles each value is a lookup from the word before it (what colour and place has
    the circle; is there a green one): the retrieval that every question about one object needs,
    with a label on every word instead of one answer per picture."""
    from mmeval.synth.benchmarks import COLOR_NAMES, SIDES
    from mmeval.synth.images import SHAPES

    if style == "slots":
        objs = sorted(scene.objects, key=lambda o: o.slot)
        n = len(objs)
        return (
            f"{n} shape{'s' if n > 1 else ''}: " + ", ".join(f"{o.color} {o.shape} {SIDES[o.slot]}" for o in objs) + "."
        )
    if style == "shapes":
        items = [(s, scene.by_shape(s)) for s in SHAPES]
        return ", ".join(f"{s} {o.color} {SIDES[o.slot]}" if o else f"{s} none" for s, o in items) + "."
    if style == "colors":
        items = [(c, scene.by_color(c)) for c in COLOR_NAMES]
        return ", ".join(f"{c} {o.shape} {SIDES[o.slot]}" if o else f"{c} none" for c, o in items) + "."
    raise ValueError(f"caption style must be one of {', '.join(CAPTION_STYLES)}, got {style!r}")


def build_caption_set(out: str | Path, seed: int = 0, n: int = 4000,
                      styles: tuple[str, ...] = CAPTION_STYLES) -> dict[str, Any]:
    """Alignment data (stage 1 of both papers' recipes): pictures with a caption naming every
    object's colour, shape and place (in one of `styles`, drawn per picture), or the rendered word.
    `<out>/captions.json` + `<out>/images/`."""
    from mmeval.synth.images import COLORS, WORDS, draw_scene, draw_word, random_scene

    out = Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}/captions")
    rows = []
    for i in range(n):
        if rng.random() < 0.15:
            word = rng.choice(WORDS)
            picture, text = draw_word(word, rng.choice(sorted(COLORS)), rng), f"the word {word}."
        else:
            scene = random_scene(rng)
            picture, text = draw_scene(scene), caption(scene, rng.choice(styles))
        name = f"cap{i:06d}.png"
        picture.save(images / name)
        rows.append({"id": f"caption-{i}", "image": name,
                     "conversations": [{"from": "human", "value": "<image>\nDescribe the image."},
                                       {"from": "gpt", "value": text}]})
    (out / CAPTION_FILE).write_text(json.dumps(rows))
    return {"file": str(out / CAPTION_FILE), "images": str(images), "n": len(rows)}
