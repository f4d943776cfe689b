"""Bootstrap intervals and paired tests on hand-checkable cases."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from mmeval.report.statistics import (
    bootstrap_ci,
    mean_of,
    paired_bootstrap,
    paired_scores,
    sample_score,
    sign_test,
)


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


def test_sample_score_fallback_and_paired_alignment():
    assert sample_score({"scores": {"f1": 0.5, "correct": 1.0}}, "f1") == 0.5
    assert sample_score({"scores": {"category": "random", "correct": 0.0}}, "category") == 0.0
    assert sample_score({"scores": {}}, "f1") is None
    a = [{"doc_id": "x", "scores": {"correct": 1}}, {"doc_id": "y", "scores": {"correct": 1}},
         {"doc_id": "z", "scores": {"correct": 0}}]
    b = [{"doc_id": "z", "scores": {"correct": 1}}, {"doc_id": "x", "scores": {"correct": 0}},
         {"doc_id": "w", "scores": {"correct": 1}}, {"doc_id": "y", "scores": {}, "error": "oom"}]
    p = paired_scores(a, b)
    assert p.doc_ids == ["x", "z"]
    assert p.a.tolist() == [1.0, 0.0] and p.b.tolist() == [0.0, 1.0]
    assert (p.n_a, p.n_b) == (3, 3)  # b: z, x, w usable; y errored


def test_sign_test_exact_values():
    a, b = np.ones(10), np.zeros(10)  # ten discordant pairs, all down
    st = sign_test(a, b)
    assert (st.n_up, st.n_down) == (0, 10)
    assert st.p_two_sided == pytest.approx(2 / 1024)
    assert st.p_less == pytest.approx(1 / 1024)
    st = sign_test(np.array([1, 0, 1, 0.0]), np.array([0, 1, 1, 0.0]))  # one up, one down
    assert st.p_two_sided == pytest.approx(1.0)
    assert sign_test(np.ones(5), np.ones(5)).p_two_sided == 1.0


def test_paired_bootstrap_difference_and_pvalues():
    a = np.array([1.0] * 100)
    b = np.array([1.0] * 90 + [0.0] * 10)
    r = paired_bootstrap(a, b, n_boot=1000, scale=100)
    assert r.mean_diff == pytest.approx(-10.0)
    assert r.ci[0] < -10 < r.ci[1] < 0
    assert r.p_less == pytest.approx(1 / 1001)  # drop vs 0: every resample agrees
    r2 = paired_bootstrap(a, b, n_boot=1000, scale=100, margin=-20.0)  # drop > 20? no
    assert r2.p_less > 0.5


def test_generic_path_accepts_tuples():
    ci = bootstrap_ci([(1, "a"), (0, "b")] * 20, lambda rs: {"m": 100 * sum(r[0] for r in rs) / len(rs)}, n_boot=200)
    lo, hi = ci["m"]
    assert 0 < lo < 50 < hi < 100


def test_paired_bootstrap_statistic_f1():
    from mmeval.report.statistics import paired_bootstrap_statistic

    def f1(rs):  # F1 of the "yes" class, in percent
        tp = sum(r["p"] == r["l"] == 1 for r in rs)
        fp = sum(r["p"] == 1 and r["l"] == 0 for r in rs)
        fn = sum(r["p"] == 0 and r["l"] == 1 for r in rs)
        return 100 * 2 * tp / (2 * tp + fp + fn)

    labels = [1, 0] * 50
    a = [{"p": l, "l": l} for l in labels]  # perfect: F1 100
    b = [{"p": 0 if i < 20 and l == 1 else l, "l": l} for i, l in enumerate(labels)]  # 10 positives missed
    r = paired_bootstrap_statistic(a, b, f1, n_boot=500)
    assert r.mean_diff == pytest.approx(100 * 80 / 90 - 100)  # tp 40, fn 10 -> F1 = 80/90
    assert r.ci[0] < r.mean_diff < r.ci[1] < 0
    assert r.p_less < 0.01
