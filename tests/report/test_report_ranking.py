"""The paper's ranking against measured intervals: holds / reversed / not resolved, on hand-made numbers."""

from __future__ import annotations

from mmeval.report.ranking import (
    HOLDS,
    NOT_MEASURED,
    PAPER_TIES,
    REVERSED,
    UNRESOLVED,
    RankEntry,
    ranking_verdict,
)


def E(label, paper, value=None, lo=None, hi=None, conditions=""):
    return RankEntry(label, paper, value, None if lo is None else (lo, hi), conditions)


def test_holds_when_intervals_are_apart_in_the_papers_order():
    v = ranking_verdict([E("clip", 84.9, 81.0, 80.0, 82.0), E("siglip", 85.2, 85.0, 84.0, 86.0)])
    assert v.verdict == HOLDS
    assert [(p.higher, p.lower, p.outcome) for p in v.pairs] == [("siglip", "clip", "holds")]
    assert v.detail == "holds"


def test_reversed_when_intervals_are_apart_the_other_way():
    v = ranking_verdict([E("clip", 84.9, 86.0, 85.5, 86.5), E("siglip", 85.2, 85.0, 84.0, 85.4)])
    assert v.verdict == REVERSED
    assert v.pairs[0].outcome == "reversed"


def test_overlap_is_not_resolved_even_if_the_point_estimates_agree():
    v = ranking_verdict([E("a", 50.0, 51.0, 49.0, 53.0), E("b", 60.0, 52.0, 50.5, 53.5)])
    assert v.verdict == UNRESOLVED
    assert (v.pairs[0].outcome, v.pairs[0].why) == ("unresolved", "intervals overlap")
    # touching intervals are not apart
    v = ranking_verdict([E("a", 50.0, 49.0, 48.0, 50.0), E("b", 60.0, 51.0, 50.0, 52.0)])
    assert v.verdict == UNRESOLVED


def test_three_configurations_mixed_outcomes():
    entries = [E("mlp", 55.4, 50.0, 49.0, 51.0), E("vss-mlp", 54.9, 53.0, 52.0, 54.0),
               E("vss-l2", 56.2, 57.0, 56.0, 58.0)]
    v = ranking_verdict(entries)
    outcomes = {(p.higher, p.lower): p.outcome for p in v.pairs}
    assert outcomes == {("mlp", "vss-mlp"): "reversed", ("vss-l2", "mlp"): "holds", ("vss-l2", "vss-mlp"): "holds"}
    assert v.verdict == REVERSED
    assert v.detail == "reversed (3 pairs: 2 hold, 1 reversed)"
    # without the reversed pair every remaining pair holds
    assert ranking_verdict(entries[1:]).verdict == HOLDS


def test_partly_resolved_is_not_resolved():
    v = ranking_verdict([E("a", 1.0, 10.0, 9.0, 11.0), E("b", 2.0, 20.0, 19.0, 21.0), E("c", 3.0, 20.5, 19.5, 21.5)])
    assert v.verdict == UNRESOLVED
    assert sorted(p.outcome for p in v.pairs) == ["holds", "holds", "unresolved"]


def test_ties_unmeasured_missing_intervals_and_other_data():
    assert ranking_verdict([E("a", 76.7, 70.0, 69.0, 71.0), E("b", 76.7, 80.0, 79.0, 81.0)]).verdict == PAPER_TIES
    assert ranking_verdict([E("a", 1.0, 5.0, 4.0, 6.0), E("b", 2.0)]).verdict == NOT_MEASURED
    assert ranking_verdict([E("a", None, 5.0, 4.0, 6.0), E("b", 2.0, 3.0, 2.0, 4.0)]).verdict == NOT_MEASURED
    v = ranking_verdict([E("a", 1.0, 5.0), E("b", 2.0, 9.0, 8.0, 10.0)])
    assert (v.verdict, v.pairs[0].why) == (UNRESOLVED, "no interval")
    v = ranking_verdict([E("a", 1.0, 5.0, 4.0, 6.0, "lmms-lab/POPE"), E("b", 2.0, 9.0, 8.0, 10.0, "pope-original")])
    assert (v.verdict, v.pairs[0].why) == (UNRESOLVED, "different data or protocol")
    v = ranking_verdict([E("a", 1.0, 5.0, 4.0, 6.0, None), E("b", 2.0, 9.0, 8.0, 10.0, None)])
    assert (v.verdict, v.pairs[0].why) == (UNRESOLVED, "data not recorded")
