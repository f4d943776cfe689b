"""Yes/no answers: parsing rules of the official scripts and binary-classification metrics.

Rates are returned as fractions in [0, 1]; tasks scale them to percentages.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def parse_yes_no_llava(text: str) -> str:
    """LLaVA's eval_pope.py rule: keep the first sentence, drop commas, and answer 'no' if the
    words contain 'No', 'no' or 'not'; everything else counts as 'yes'."""
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def binary_metrics(preds: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and the ratio of 'yes' predictions, 'yes' being positive
    (eval_pope.py's definitions; a zero denominator gives 0 instead of an exception)."""
    p = np.asarray([x == "yes" for x in preds])
    y = np.asarray([x == "yes" for x in labels])
    tp = int(np.sum(p & y))
    tn = int(np.sum(~p & ~y))
    fp = int(np.sum(p & ~y))
    fn = int(np.sum(~p & y))
    n = tp + tn + fp + fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": (tp + tn) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": float(np.mean(p)) if n else 0.0,
    }


def lmms_eval_pope_metrics(preds: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """lmms-eval's POPE aggregations as written: exact match on the lower-cased stripped text;
    false negatives counted only where the prediction is exactly 'no'; and its 'yes ratio' is the
    share of 'yes' among the ground-truth labels, not among predictions."""
    n = len(preds)
    tp = sum(1 for p, g in zip(preds, labels, strict=True) if g == "yes" and p == "yes")
    fp = sum(1 for p, g in zip(preds, labels, strict=True) if g == "no" and p == "yes")
    fn = sum(1 for p, g in zip(preds, labels, strict=True) if g == "yes" and p == "no")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    gt_yes = sum(1 for g in labels if g == "yes")
    gt_no = sum(1 for g in labels if g == "no")
    return {
        "accuracy": sum(1.0 for p, g in zip(preds, labels, strict=True) if p == g) / n if n else 0.0,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": gt_yes / (gt_yes + gt_no) if gt_yes + gt_no else 0.0,
    }


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=float)
    # Tied values share the mean of the ranks they span.
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2.0
    return ranks


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic with tied scores counted as 1/2),
    equal to scikit-learn's roc_auc_score; NaN when only one class is present."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Average precision as scikit-learn's average_precision_score defines it: the sum over
    distinct score thresholds (high to low) of precision times the recall gained."""
    y = np.asarray(labels, dtype=float)
    s = np.asarray(scores, dtype=float)
    n_pos = y.sum()
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    predicted_pos = last_of_tie + 1
    precision = tps / predicted_pos
    recall = tps / n_pos
    recall_gain = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_gain * precision))
