"""Accuracy over the per-sample score dicts of the open-ended and multiple-choice tasks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def accuracy_metrics(scores: Sequence[dict[str, Any]]) -> dict[str, float]:
    """{"accuracy": percent} over the samples with a ground truth (`scored` not false), or {} when
    none has one (a test split: nothing to score locally)."""
    part = [float(s["correct"]) for s in scores if s.get("scored", True)]
    return {"accuracy": 100.0 * sum(part) / len(part)} if part else {}


def per_group_accuracy(scores: Sequence[dict[str, Any]], field: str, prefix: str = "accuracy_") -> dict[str, float]:
    """Accuracy in percent per value of `field` (e.g. the VQAv2 answer type), keyed `<prefix><value>`."""
    groups: dict[str, list[float]] = {}
    for s in scores:
        if s.get("scored", True) and s.get(field):
            groups.setdefault(str(s[field]), []).append(float(s["correct"]))
    return {prefix + k.replace("/", "_").replace(" ", "_"): 100.0 * sum(v) / len(v) for k, v in sorted(groups.items())}


class AccuracyHeadline:
    """For tasks whose papers print one accuracy: it is the headline and the only interval metric."""

    def headline(self, protocol: str) -> str:
        return "accuracy"

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        return ("accuracy",)
