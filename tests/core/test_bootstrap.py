"""Bootstrap intervals (the engine's, behind every results file's ci95) on hand-checkable cases."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from mmeval.bootstrap import bootstrap_ci, mean_of


def recs(correct):
    return [{"doc_id": str(i), "scores": {"correct": float(c)}} for i, c in enumerate(correct)]


def test_all_ones_is_degenerate_at_100():
    ci = bootstrap_ci(recs([1] * 50), mean_of("scores.correct", 100, "accuracy"))
    assert ci == {"accuracy": (100.0, 100.0)}


def test_half_half_interval_contains_50_with_expected_width():
    n = 400
    ci = bootstrap_ci(recs([1, 0] * (n // 2)), mean_of("scores.correct", 100, "accuracy"), n_boot=2000)
    lo, hi = ci["accuracy"]
    assert lo < 50 < hi
    expected = 2 * 1.96 * math.sqrt(0.25 / n) * 100  # normal approximation: 9.8 points
    assert abs((hi - lo) - expected) < 1.5
    assert abs((lo + hi) / 2 - 50) < 1.0


def test_seeded_and_generic_path_matches_fast_path():
    rng = np.random.default_rng(1)
    records = recs(rng.integers(0, 2, 300))
    fast = bootstrap_ci(records, mean_of("scores.correct", 100, "acc"), n_boot=500, seed=3)
    generic = bootstrap_ci(records, lambda rs: {"acc": 100 * np.mean([r["scores"]["correct"] for r in rs]),
                                                "label": "text is skipped"}, n_boot=500, seed=3)
    assert set(generic) == {"acc"}
    assert generic["acc"] == pytest.approx(fast["acc"], abs=1e-9)
    assert bootstrap_ci(records, mean_of("scores.correct", 100, "acc"), n_boot=500, seed=3) == fast
    assert bootstrap_ci(records, mean_of("scores.correct", 100, "acc"), n_boot=500, seed=4) != fast


def test_numeric_input_and_multi_metric_statistic():
    assert bootstrap_ci([2.0] * 10) == {"mean": (2.0, 2.0)}
    vals = [1.0, 2.0, 3.0, 4.0]
    ci = bootstrap_ci(vals, lambda v: {"max": max(v), "min": min(v)}, n_boot=200)
    assert 1.0 <= ci["min"][0] <= ci["min"][1] <= 4.0 and ci["max"][1] == 4.0
    assert bootstrap_ci([], mean_of("x")) == {}


def test_fast_path_is_fast():
    vals = np.random.default_rng(0).integers(0, 2, 100_000).astype(float)
    t = time.perf_counter()
    ci = bootstrap_ci(vals, n_boot=1000)
    assert time.perf_counter() - t < 10
    lo, hi = ci["mean"]
    assert lo < vals.mean() < hi and hi - lo < 0.01


def test_generic_path_accepts_tuples():
    ci = bootstrap_ci([(1, "a"), (0, "b")] * 20, lambda rs: {"m": 100 * sum(r[0] for r in rs) / len(rs)}, n_boot=200)
    lo, hi = ci["m"]
    assert 0 < lo < 50 < hi < 100
