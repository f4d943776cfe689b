"""Bootstrap intervals (the engine's, behind every results file's ci95) on hand-checkable cases."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from mmeval.bootstrap import Units, bootstrap_ci, mean_of, resample_units


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


# ---------------------------------------------------------------- clusters and strata (Units)
def test_identical_clusters_give_a_zero_width_interval():
    # every cluster holds one right and one wrong answer: any draw of whole clusters averages 50
    records = [{"c": c, "correct": v} for c in range(20) for v in (1.0, 0.0)]
    stat = mean_of("correct", 100, "accuracy")
    clustered = bootstrap_ci(records, stat, units=Units(clusters=[r["c"] for r in records]))
    assert clustered == {"accuracy": (50.0, 50.0)}
    lo, hi = bootstrap_ci(records, stat)["accuracy"]  # single samples: a real spread
    assert lo < 45 and hi > 55


def test_strata_keep_their_size_hand_worked_interval():
    # stratum a: four right answers, always all drawn; stratum b: one right, one wrong, two draws.
    # mean = (4 + X) / 6 with X ~ Binomial(2, 1/2): 4/6, 5/6, 1 with probabilities 1/4, 1/2, 1/4,
    # so the 2.5th and 97.5th percentiles are 4/6 and 1.
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    ci = bootstrap_ci(values, units=Units(strata=list("aaaabb")), n_boot=2000)
    assert ci["mean"] == pytest.approx((4 / 6, 1.0))
    lo, _ = bootstrap_ci(values, n_boot=2000)["mean"]
    assert lo < 0.6  # unstratified, stratum a can come up short


def test_resample_keeps_clusters_whole_and_strata_sizes():
    strata = ["a"] * 6 + ["b"] * 5
    clusters = [0, 0, 1, 1, 2, 2, 0, 1, 2, 3, 4]
    groups = Units(strata=strata, clusters=clusters).groups(len(strata))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        idx, slots = resample_units(groups, rng)
        assert sum(i < 6 for i in idx) == 6 and sum(i >= 6 for i in idx) == 5
        assert sorted(set(slots.tolist())) == list(range(3 + 5))  # one slot per drawn cluster
        for slot in set(slots.tolist()):
            members = sorted(idx[slots == slot].tolist())
            assert members in ([0, 1], [2, 3], [4, 5]) or (len(members) == 1 and members[0] >= 6)
        seen.update(idx.tolist())
    assert seen == set(range(11))


def test_relabel_keeps_two_draws_of_one_cluster_apart():
    records = [{"c": c} for c in range(5) for _ in range(2)]
    distinct = lambda rs: {"clusters": len({r["c"] for r in rs})}  # noqa: E731
    units = Units(clusters=[r["c"] for r in records])
    assert bootstrap_ci(records, distinct, n_boot=200, units=units)["clusters"][0] < 5  # draws merge
    relabelled = Units(clusters=units.clusters, relabel=lambda r, slot: {"c": slot})
    assert bootstrap_ci(records, distinct, n_boot=200, units=relabelled) == {"clusters": (5.0, 5.0)}


def test_units_must_cover_every_record():
    with pytest.raises(ValueError, match="3 clusters for 4 records"):
        bootstrap_ci([1.0, 0.0, 1.0, 0.0], units=Units(clusters=[0, 0, 1]))
