"""Mini versions of the ten benchmarks in their real layouts, drawn procedurally with known answers.

Each generator returns rows in the format of its task's own `write_layout` (the writer the loader's
tests use), so `mmeval run ... --data DIR` reads them with the same code as the real data:

| task | layout written | what is asked |
| --- | --- | --- |
| vqav2 | lmms-lab parquet, splits `validation` and `testdev` | colour of a shape, shape of a colour, how many shapes |
| gqa | lmms-lab parquet (`testdev_balanced_{instructions,images}/`) | colour, shape, left/right of two shapes |
| scienceqa_img | lmms-lab parquet (`ScienceQA-IMG/`) | lettered choices: a shape's colour / which shape has a colour |
| textvqa | lmms-lab parquet, split `validation` (OCR tokens included) | the rendered word |
| pope | lmms-lab parquet | "Is there a <shape>?" (random, popular) / "a <colour> <shape>?" (adversarial) |
| mme | lmms-lab parquet | yes/no pairs: existence, count, position, color, OCR |
| mmbench | lmms-lab parquet (`en/`), CircularEval rotations | lettered choices: colour of a shape, where a shape is |
| mmvet | lmms-lab parquet | open questions (needs an LLM judge to be graded) |
| vizwiz | lmms-lab parquet, split `val` | colour of a shape; "unanswerable" for an absent shape or a blank picture |
| vsr | official `test.jsonl` + `images/` | "The <shape> is left/right of the <shape>." true or false |

Everything is decided by one `random.Random(seed)` per task, so a seed gives the same files.
`CHANCE` gives, per task, the score of guessing uniformly among the answers each question allows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmeval.synth.images import COLORS, SHAPES, WORDS, Scene, blank_image, draw_scene, draw_word, random_scene

TASKS = ("vqav2", "gqa", "scienceqa_img", "textvqa", "pope", "mme", "mmbench", "mmvet", "vizwiz", "vsr")
# questions per task (MME: questions = 2 x images; MMBench: questions before the 4 rotations)
DEFAULT_COUNTS = {"vqav2": 120, "gqa": 120, "scienceqa_img": 80, "textvqa": 80, "pope": 150, "mme": 100,
                  "mmbench": 30, "mmvet": 20, "vizwiz": 80, "vsr": 120}
COLOR_NAMES = sorted(COLORS)
SIDES = ("left", "middle", "right")
MANIFEST = "synth.json"


def _side(a, b) -> str:
    return "left" if a.slot < b.slot else "right"


# ---------------------------------------------------------------- question templates (shared with training)
def q_color(scene: Scene, rng: random.Random) -> tuple[str, str, int]:
    o = rng.choice(scene.objects)
    return f"What color is the {o.shape}?", o.color, len(COLORS)


def q_shape(scene: Scene, rng: random.Random) -> tuple[str, str, int]:
    o = rng.choice(scene.objects)
    return f"What shape is the {o.color} object?", o.shape, len(SHAPES)


def q_count(scene: Scene, rng: random.Random) -> tuple[str, str, int]:
    return "How many shapes are there?", str(len(scene.objects)), 3


def q_left_right(scene: Scene, rng: random.Random) -> tuple[str, str, int]:
    a, b = rng.sample(scene.objects, 2)
    return f"Is the {a.shape} on the left or right of the {b.shape}?", _side(a, b), 2


def _scene_with(rng: random.Random, n_min: int, n_max: int = 3) -> Scene:
    return random_scene(rng, n_min, n_max)


# ---------------------------------------------------------------- per-task generators
def _two_questions_per_scene(rng: random.Random, n: int, n_min: int, makers: list[Callable],
                             row: Callable[..., dict]) -> tuple[list[dict], float]:
    """Scenes of at least `n_min` shapes, two of `makers` asked about each (in random order) until
    there are n rows; `row(image_no, image, make, question, answer, n_rows_so_far)` gives each row.
    Returns the rows and the chance accuracy (percent) of guessing among each question's answers."""
    rows, chance = [], 0.0
    image_no = 0
    while len(rows) < n:
        scene = _scene_with(rng, n_min)
        image, image_no = draw_scene(scene), image_no + 1
        for make in rng.sample(makers, 2):
            if len(rows) >= n:
                break
            q, a, k = make(scene, rng)
            rows.append(row(image_no, image, make, q, a, len(rows)))
            chance += 1.0 / k
    return rows, 100.0 * chance / len(rows)


def gen_vqav2(rng: random.Random, n: int) -> tuple[list[dict], float]:
    def row(image_id, image, make, q, a, i):
        return {"question_id": image_id * 10 + i % 10, "question": q, "image_id": image_id, "image": image,
                "answers": [a] * 10, "answer_type": "number" if make is q_count else "other",
                "question_type": q.split()[0].lower()}

    return _two_questions_per_scene(rng, n, 1, [q_color, q_shape, q_count], row)


def gen_gqa(rng: random.Random, n: int) -> tuple[list[dict], float]:
    def row(img, image, make, q, a, i):
        return {"id": f"{img:07d}{i % 10}", "imageId": f"n{img:06d}", "question": q, "answer": a, "image": image,
                "structural": "choose" if make is q_left_right else "query"}

    return _two_questions_per_scene(rng, n, 2, [q_color, q_shape, q_left_right], row)


def _choices(rng: random.Random, answer: str, pool: list[str], k: int) -> tuple[list[str], int]:
    others = rng.sample([p for p in pool if p != answer], k - 1)
    choices = others + [answer]
    rng.shuffle(choices)
    return choices, choices.index(answer)


def gen_scienceqa_img(rng: random.Random, n: int) -> tuple[list[dict], float]:
    rows, chance = [], 0.0
    for i in range(n):
        scene = _scene_with(rng, 1)
        o = rng.choice(scene.objects)
        if rng.random() < 0.5:
            question, answer, pool = f"Which color is the {o.shape}?", o.color, COLOR_NAMES
        else:
            question, answer, pool = f"Which shape is {o.color}?", o.shape, list(SHAPES)
        k = rng.choice([2, 3])
        choices, idx = _choices(rng, answer, pool, k)
        rows.append({"pid": str(2000 + i), "question": question, "choices": choices, "answer": idx,
                     "hint": "", "subject": "natural science", "grade": rng.choice(["grade2", "grade8"]),
                     "topic": "shapes and colors", "image": draw_scene(scene)})
        chance += 1.0 / k
    return rows, 100.0 * chance / n


def gen_textvqa(rng: random.Random, n: int) -> tuple[list[dict], float]:
    rows = []
    for i in range(n):
        word = rng.choice(WORDS)
        rows.append({"question_id": 30000 + i, "question": "what word is written in the image?",
                     "image_id": f"{rng.getrandbits(64):016x}", "image": draw_word(word, rng.choice(COLOR_NAMES), rng),
                     "answers": [word] * 10, "ocr_tokens": [word]})
    return rows, 100.0 / len(WORDS)


def gen_pope(rng: random.Random, n: int) -> tuple[list[dict], float]:
    """Per image and category one 'yes' and one 'no' question. random: the absent shape drawn at
    random; popular: the absent shape most frequent in the set so far; adversarial: a present
    shape asked with another object's colour (the binding is what is tested)."""
    rows: list[dict] = []
    freq = {s: 0 for s in SHAPES}
    img = 0
    cats = ("random", "popular", "adversarial")
    while len(rows) < n:
        scene = _scene_with(rng, 2, 2)
        image, img = draw_scene(scene), img + 1
        for o in scene.objects:
            freq[o.shape] += 1
        absent = [s for s in SHAPES if s not in scene.shapes]
        for cat in cats:
            if len(rows) >= n:
                break
            if cat == "adversarial":
                a, b = scene.objects[0], scene.objects[1]
                pos = rng.choice(scene.objects)
                pairs = [(f"Is there a {pos.color} {pos.shape} in the image?", "yes"),
                         (f"Is there a {b.color} {a.shape} in the image?", "no")]
            else:
                neg = rng.choice(absent) if cat == "random" else max(absent, key=lambda s: (freq[s], s))
                pos = rng.choice(scene.objects)
                pairs = [(f"Is there a {pos.shape} in the image?", "yes"), (f"Is there a {neg} in the image?", "no")]
            rng.shuffle(pairs)
            for q, a in pairs:
                rows.append({"question_id": str(len(rows) + 1), "question": q, "answer": a,
                             "image_source": f"synth_{img:06d}", "image": image, "category": cat})
    return rows, 50.0


def gen_mme(rng: random.Random, n: int) -> tuple[list[dict], float]:
    """Two questions per image (one 'Yes', one 'No') in five perception subtasks."""
    rows: list[dict] = []
    subtasks = ("existence", "count", "position", "color", "OCR")
    per = max(1, n // (2 * len(subtasks)))
    for cat in subtasks:
        for i in range(per):
            name = f"{i:04d}.png"
            if cat == "OCR":
                word = rng.choice(WORDS)
                other = rng.choice([w for w in WORDS if w != word])
                image = draw_word(word, rng.choice(COLOR_NAMES), rng)
                pairs = [(f'Is the word in the image "{word}"?', "Yes"), (f'Is the word in the image "{other}"?', "No")]
            else:
                scene = _scene_with(rng, 2 if cat == "position" else 1, 2)
                image = draw_scene(scene)
                o = rng.choice(scene.objects)
                if cat == "existence":
                    absent = rng.choice([s for s in SHAPES if s not in scene.shapes])
                    pairs = [
                        (f"Is there a {o.shape} in the image?", "Yes"),
                        (f"Is there a {absent} in the image?", "No"),
                    ]
                elif cat == "count":
                    k = len(scene.objects)
                    wrong = rng.choice([x for x in (1, 2, 3) if x != k])
                    pairs = [
                        (f"Are there {k} shapes in the image?", "Yes"),
                        (f"Are there {wrong} shapes in the image?", "No"),
                    ]
                elif cat == "position":
                    a, b = scene.objects
                    if a.slot > b.slot:
                        a, b = b, a
                    pairs = [(f"Is the {a.shape} on the left of the {b.shape}?", "Yes"),
                             (f"Is the {b.shape} on the left of the {a.shape}?", "No")]
                else:  # color
                    wrong = rng.choice([c for c in COLOR_NAMES if c != o.color])
                    pairs = [(f"Is there a {o.color} {o.shape} in the image?", "Yes"),
                             (f"Is there a {wrong} {o.shape} in the image?", "No")]
            for q, a in pairs:
                rows.append({"category": cat, "image_name": name, "image": image,
                             "question": q + " Please answer yes or no.", "answer": a})
    # chance per subtask: acc 50 + acc+ 25 (both of a pair right by guessing)
    return rows, 75.0 * len(subtasks)


def gen_mmbench(rng: random.Random, n: int) -> tuple[list[dict], float]:
    rows: list[dict] = []
    from tasks.mmbench import MMBench

    chance = 0.0
    for i in range(n):
        scene = _scene_with(rng, 1)
        o = rng.choice(scene.objects)
        if rng.random() < 0.6:
            question, answer, pool, cat = f"What color is the {o.shape}?", o.color, COLOR_NAMES, "attribute_recognition"
            k = 4
        else:
            question, answer, pool, cat = f"Where is the {o.shape}?", SIDES[o.slot], list(SIDES), "object_localization"
            k = 3
        choices, idx = _choices(rng, answer, pool, k)
        chance += (1.0 / k) ** k
        row = {"index": i, "question": question, "hint": None, "answer": "ABCD"[idx], "category": cat,
               "l2_category": "finegrained_perception (instance)", "image": draw_scene(scene)}
        for letter, text in zip("ABCD", choices, strict=False):
            row[letter] = text
        rows.extend(MMBench.rotations(row))
    # CircularEval: every rotation right; guessing gives (1/k)^k per question
    return rows, 100.0 * chance / n


def gen_mmvet(rng: random.Random, n: int) -> tuple[list[dict], float | None]:
    rows = []
    for i in range(n):
        kind = i % 3
        if kind == 2:
            word = rng.choice(WORDS)
            image, question, answer, caps = draw_word(word, rng.choice(COLOR_NAMES), rng), \
                "What word is written in the image?", word, ["ocr"]
        else:
            scene = _scene_with(rng, 2)
            image = draw_scene(scene)
            if kind == 0:
                question, answer, _ = q_color(scene, rng)
                caps = ["rec"]
            else:
                question, answer, _ = q_left_right(scene, rng)
                caps = ["rec", "spat"]
        rows.append({"question_id": f"v1_{i}", "question": question, "answer": answer, "capability": caps,
                     "image": image})
    return rows, None


def gen_vizwiz(rng: random.Random, n: int) -> tuple[list[dict], float]:
    rows, chance = [], 0.0
    for i in range(n):
        r = rng.random()
        if r < 0.15:
            image, shape, answer = blank_image(rng), rng.choice(SHAPES), "unanswerable"
        else:
            scene = _scene_with(rng, 1, 2)
            image = draw_scene(scene)
            if r < 0.35:
                shape = rng.choice([s for s in SHAPES if s not in scene.shapes])
                answer = "unanswerable"
            else:
                o = rng.choice(scene.objects)
                shape, answer = o.shape, o.color
        rows.append({"name": f"VizWiz_val_{i:08d}", "question": f"What color is the {shape}?", "image": image,
                     "answers": [answer] * 10, "answer_type": "unanswerable" if answer == "unanswerable" else "other"})
        chance += 1.0 / (len(COLORS) + 1)
    return rows, 100.0 * chance / n


def gen_vsr(rng: random.Random, n: int) -> tuple[list[dict], float]:
    rows = []
    img = 0
    while len(rows) < n:
        scene = _scene_with(rng, 2)
        picture, img = draw_scene(scene), img + 1
        a, b = rng.sample(scene.objects, 2)
        truth = _side(a, b)
        for relation in rng.sample(["left of", "right of"], 2):
            if len(rows) >= n:
                break
            rows.append({"image": f"{100000 + img:012d}.jpg", "caption": f"The {a.shape} is {relation} the {b.shape}.",
                         "label": int(relation.startswith(truth)), "relation": relation, "subj": a.shape,
                         "obj": b.shape, "picture": picture})
    return rows, 50.0


GENERATORS: dict[str, Callable[[random.Random, int], tuple[list[dict], Any]]] = {
    "vqav2": gen_vqav2, "gqa": gen_gqa, "scienceqa_img": gen_scienceqa_img, "textvqa": gen_textvqa,
    "pope": gen_pope, "mme": gen_mme, "mmbench": gen_mmbench, "mmvet": gen_mmvet, "vizwiz": gen_vizwiz,
    "vsr": gen_vsr,
}

# the headline each chance value refers to (llava / prismatic protocols; MME in raw points)
CHANCE_METRIC = {"vqav2": "accuracy", "gqa": "accuracy", "scienceqa_img": "accuracy", "textvqa": "accuracy",
                 "pope": "f1 (llava) / accuracy (prismatic)", "mme": "perception (5 subtasks, max 1000)",
                 "mmbench": "circular_accuracy", "mmvet": "total (needs an LLM judge)", "vizwiz": "accuracy",
                 "vsr": "accuracy"}


def write_rows(task: str, directory: Path, rows: list[dict]) -> None:
    """A generator's rows written under `directory` by the task's own `write_layout` (VQAv2: the val
    split with answers and test-dev without; TextVQA and VizWiz: their val split)."""
    from mmeval.registry import task_classes

    cls = task_classes()[task]
    if task == "vqav2":
        cls.write_layout(directory, rows, split="val")
        cls.write_layout(directory, [{k: v for k, v in r.items() if k != "answers"} for r in rows], split="testdev")
    elif task in ("textvqa", "vizwiz"):
        cls.write_layout(directory, rows, split="val")
    else:
        cls.write_layout(directory, rows)


def parse_counts(spec: str | int | dict | None) -> dict[str, int]:
    """`None` -> defaults; an int N -> N questions for every task; 'pope=300,gqa=50' -> those
    tasks changed (the rest at their defaults); a dict likewise."""
    counts = dict(DEFAULT_COUNTS)
    if spec is None or spec == "":
        return counts
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        n = int(spec)
        return {t: max(1, n // 4 if t == "mmbench" else n) for t in TASKS}
    items = spec.items() if isinstance(spec, dict) else (p.split("=", 1) for p in str(spec).split(",") if p.strip())
    for k, v in items:
        k = str(k).strip()
        if k not in counts:
            raise ValueError(f"--n: unknown task {k!r} (tasks: {', '.join(TASKS)})")
        counts[k] = max(1, int(v))
    return counts


def write_benchmarks(out: str | Path, seed: int = 0, counts: str | int | dict | None = None,
                     tasks: tuple[str, ...] = TASKS, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write every task's mini benchmark under `out/<task>/` and a manifest `out/synth.json`
    (seed, counts, chance levels). Returns the manifest."""
    from mmeval.data.sources import quiet_datasets

    with quiet_datasets():  # no "Creating parquet" bar per file
        return _write_benchmarks(Path(out), seed, counts, tasks, log)


def _write_benchmarks(out: Path, seed: int, counts: str | int | dict | None, tasks: tuple[str, ...],
                      log: Callable[[str], None] | None) -> dict[str, Any]:
    n = parse_counts(counts)
    manifest: dict[str, Any] = {"seed": seed, "counts": {t: n[t] for t in tasks}, "tasks": {}}
    for task in tasks:
        rng = random.Random(f"{seed}/{task}")
        rows, chance = GENERATORS[task](rng, n[task])
        write_rows(task, out / task, rows)
        manifest["tasks"][task] = {"rows": len(rows), "chance": None if chance is None else round(chance, 2),
                                   "chance_metric": CHANCE_METRIC[task]}
        if log:
            log(f"  {task:14s} {len(rows):4d} rows -> {out / task}")
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def read_manifest(out: str | Path) -> dict[str, Any] | None:
    p = Path(out) / MANIFEST
    try:
        return json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
