"""The demo's compact table: a score counts as above chance only when its whole 95 % bootstrap
interval is (POPE judged on accuracy, not its headline F1)."""

from __future__ import annotations

import json

from mmeval.demo import compact_table


def _write(run, task, head, metrics, ci=None):
    run.mkdir(parents=True, exist_ok=True)
    (run / f"{task}.json").write_text(json.dumps({"headline": head, "protocol": "llava", "metrics": metrics,
                                                  "ci95": ci or {}}))


def _rows(table: str) -> dict[str, str]:
    return {line.split()[0]: line for line in table.splitlines()[2:]}


def test_above_chance_needs_the_interval_above_it(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    manifest = {"tasks": {"pope": {"chance": 50.0}, "gqa": {"chance": 35.7}, "vsr": {"chance": 50.0},
                          "vqav2": {"chance": 30.4}}}
    # POPE: a's accuracy interval clears 50, b's does not although its F1 (the headline) is 67
    _write(a, "pope", "f1", {"f1": 60.0, "accuracy": 67.3}, {"f1": [50, 68], "accuracy": [59.9, 74.9]})
    _write(b, "pope", "f1", {"f1": 67.0, "accuracy": 57.3}, {"f1": [60, 72], "accuracy": [49.3, 65.0]})
    _write(a, "gqa", "accuracy", {"accuracy": 78.3}, {"accuracy": [70.8, 85.0]})
    _write(b, "gqa", "accuracy", {"accuracy": 79.2}, {"accuracy": [71.7, 86.7]})
    # VSR: 8 points above chance but the interval reaches below it -> not above
    _write(a, "vsr", "accuracy", {"accuracy": 58.0}, {"accuracy": [49.0, 66.0]})
    _write(b, "vsr", "accuracy", {"accuracy": 50.0}, {"accuracy": [41.0, 59.0]})
    # no bootstrap interval: more than 5 points above
    _write(a, "vqav2", "accuracy", {"accuracy": 36.0})
    _write(b, "vqav2", "accuracy", {"accuracy": 35.0})
    rows = _rows(compact_table({"vl-mamba": a, "cobra": b}, manifest))
    assert "partly" in rows["pope"] and "60.0 (acc 67.3)" in rows["pope"]
    assert " yes " in rows["gqa"]
    assert " no " in rows["vsr"] and "partly" not in rows["vsr"]
    assert "partly" in rows["vqav2"]
    assert " no " in rows["mme"]  # no result files at all
