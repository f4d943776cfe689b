"""Paired tests on hand-checkable cases (the bootstrap intervals: tests/core/test_bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mmeval.report.statistics import (
    paired_bootstrap,
    paired_scores,
    sample_score,
    sign_test,
)


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


def test_paired_bootstrap_statistic_f1():
    from mmeval.report.statistics import paired_bootstrap_statistic

    def f1(rs):  # F1 of the "yes" class, in percent
        tp = sum(r["p"] == r["l"] == 1 for r in rs)
        fp = sum(r["p"] == 1 and r["l"] == 0 for r in rs)
        fn = sum(r["p"] == 0 and r["l"] == 1 for r in rs)
        return 100 * 2 * tp / (2 * tp + fp + fn)

    labels = [1, 0] * 50
    a = [{"p": y, "l": y} for y in labels]  # perfect: F1 100
    b = [{"p": 0 if i < 20 and y == 1 else y, "l": y} for i, y in enumerate(labels)]  # 10 positives missed
    r = paired_bootstrap_statistic(a, b, f1, n_boot=500)
    assert r.mean_diff == pytest.approx(100 * 80 / 90 - 100)  # tp 40, fn 10 -> F1 = 80/90
    assert r.ci[0] < r.mean_diff < r.ci[1] < 0
    assert r.p_less < 0.01
