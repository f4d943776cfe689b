"""MME scoring: yes/no parsing and the per-subtask score acc + acc+ (in percent), summed into the
perception and cognition totals, as MME's eval_tool/calculation.py computes them (and as
lmms-eval's mme task re-implements them).

acc is the accuracy over the subtask's questions; acc+ the share of images whose two questions
are both answered right. Scores are raw (a subtask is out of 200, perception out of 2000,
cognition out of 800), as the papers print them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene",
              "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION
REPLACE_PROMPT = " Please answer yes or no."


def parse_mme_official(text: str) -> str:
    """calculation.py's parse_pred_ans on the lower-cased answer: exactly 'yes'/'no', else 'yes'
    or 'no' found within the first four characters (yes first), else 'other'."""
    pred = text.lower()
    if pred in ("yes", "no"):
        return pred
    prefix = pred[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def parse_mme_lmms_eval(text: str) -> str:
    """lmms-eval's parse_pred_ans (from Otter): lower-cased, stripped, periods removed; 'yes'/'no';
    a single 'y'/'n'; else the first-four-characters rule."""
    pred = text.lower().strip().replace(".", "")
    if len(pred) == 1:
        return {"y": "yes", "n": "no"}.get(pred, "other")
    return parse_mme_official(pred)


def subtask_of(category: str) -> str:
    if category not in SUBTASKS:
        raise ValueError(f"unknown MME subtask {category!r}")
    return "perception" if category in PERCEPTION else "cognition"


def mme_official_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """calculation.py: per subtask, acc over questions and acc+ over images (rows carry
    'category', 'image' and 'correct'); 'score' = acc*100 + acc_plus*100; totals are the sums of
    the subtask scores of the subtasks present, in calculation.py's order."""
    out: dict[str, float] = {}
    totals = {"perception": 0.0, "cognition": 0.0}
    seen = {"perception": False, "cognition": False}
    for cat in SUBTASKS:
        part = [r for r in rows if r["category"] == cat]
        if not part:
            continue
        images: dict[str, list[float]] = {}
        for r in part:
            images.setdefault(str(r["image"]), []).append(float(r["correct"]))
        acc = sum(float(r["correct"]) for r in part) / len(part)
        acc_plus = sum(1 for v in images.values() if all(x >= 1.0 for x in v)) / len(images)
        score = 0.0
        score += acc * 100
        score += acc_plus * 100
        out[f"{cat}/acc"] = acc * 100
        out[f"{cat}/acc_plus"] = acc_plus * 100
        out[f"{cat}/score"] = score
        kind = subtask_of(cat)
        totals[kind] += score
        seen[kind] = True
    for kind, value in totals.items():
        if seen[kind]:
            out[kind] = value
    if seen["perception"] or seen["cognition"]:
        out["total"] = totals["perception"] + totals["cognition"]
    return out


def mme_lmms_eval_total(rows: Sequence[Mapping[str, Any]]) -> float:
    """lmms-eval's mme_aggregate_results over rows of one kind (perception or cognition), each with
    'question_id' (the image), 'category' and 'score' (0/1): per category the mean over images of
    (acc + acc+) of that image's questions, then the sum over categories in order of first
    appearance. (lmms-eval asserts two questions per image; here any count is accepted.)"""
    by_cat: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        by_cat.setdefault(r["category"], {}).setdefault(r["question_id"], []).append(r["score"])
    per_cat = {}
    for cat, questions in by_cat.items():
        total = 0
        for scores in questions.values():
            acc = sum(scores) / len(scores) * 100.0
            acc_plus = (sum(scores) == len(scores)) * 100.0
            total += acc_plus + acc
        per_cat[cat] = total / len(questions)
    return sum(per_cat.values())


def mme_lmms_eval_per_category(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The per-category values lmms-eval logs (same formula as mme_lmms_eval_total)."""
    cats: dict[str, list] = {}
    for r in rows:
        cats.setdefault(r["category"], []).append(r)
    return {c: mme_lmms_eval_total(part) for c, part in cats.items()}
