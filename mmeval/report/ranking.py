"""Does a paper's ranking of configurations hold for our measurements, within their intervals?

For every pair of configurations the paper ranks (one printed value above the other), our two
measured values are compared through their 95% intervals: the paper's order *holds* when the
intervals are apart in the same order, is *reversed* when they are apart in the other order, and is
*unresolved* when they overlap, one has no interval, or the two were measured on different data or
protocols (``conditions`` differ, or one is not recorded: None).  A column's verdict: "holds" when
every pair holds, "reversed" when any pair is reversed, "not resolved by the intervals" otherwise.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations

HOLDS, REVERSED, UNRESOLVED = "holds", "reversed", "not resolved by the intervals"
PAPER_TIES, NOT_MEASURED = "paper ties", "not measured"


@dataclass(frozen=True)
class RankEntry:
    """One configuration in one column: the paper's value and ours."""

    label: str
    paper: float | None
    value: float | None = None
    interval: tuple[float, float] | None = None
    conditions: Hashable = ""  # what the value was computed on; pairs must share it (None: not recorded)


@dataclass(frozen=True)
class PairOutcome:
    higher: str  # the configuration the paper ranks higher
    lower: str
    outcome: str  # "holds" | "reversed" | "unresolved"
    why: str = ""  # unresolved: "intervals overlap", "no interval", "data not recorded", "different data or protocol"


@dataclass(frozen=True)
class RankingVerdict:
    verdict: str  # HOLDS | REVERSED | UNRESOLVED | PAPER_TIES | NOT_MEASURED
    pairs: tuple[PairOutcome, ...] = ()

    @property
    def detail(self) -> str:
        """The verdict with its pair counts when there are several, e.g. "reversed (3 pairs: 2 hold, 1 reversed)"."""
        if len(self.pairs) < 2:
            return self.verdict
        words = {"holds": "hold", "reversed": "reversed", "unresolved": "unresolved"}
        counts = [f"{n} {word}" for k, word in words.items() if (n := sum(p.outcome == k for p in self.pairs))]
        return f"{self.verdict} ({len(self.pairs)} pairs: {', '.join(counts)})"


def compare_pair(higher: RankEntry, lower: RankEntry) -> PairOutcome:
    """The outcome for two measured configurations the paper ranks ``higher`` > ``lower``."""
    def out(outcome: str, why: str = "") -> PairOutcome:
        return PairOutcome(higher.label, lower.label, outcome, why)

    if higher.conditions is None or lower.conditions is None:
        return out("unresolved", "data not recorded")
    if higher.conditions != lower.conditions:
        return out("unresolved", "different data or protocol")
    if higher.interval is None or lower.interval is None:
        return out("unresolved", "no interval")
    if higher.interval[0] > lower.interval[1]:
        return out("holds")
    if lower.interval[0] > higher.interval[1]:
        return out("reversed")
    return out("unresolved", "intervals overlap")


def ranking_verdict(entries: Sequence[RankEntry]) -> RankingVerdict:
    """The verdict over every pair of measured configurations with distinct published values."""
    measured = [e for e in entries if e.paper is not None and e.value is not None]
    if len(measured) < 2:
        return RankingVerdict(NOT_MEASURED)
    pairs = []
    for a, b in combinations(measured, 2):
        if a.paper == b.paper:
            continue  # the paper does not rank a tie
        hi, lo = (a, b) if a.paper > b.paper else (b, a)
        pairs.append(compare_pair(hi, lo))
    if not pairs:
        return RankingVerdict(PAPER_TIES)
    outcomes = {p.outcome for p in pairs}
    if "reversed" in outcomes:
        verdict = REVERSED
    elif outcomes == {"holds"}:
        verdict = HOLDS
    else:
        verdict = UNRESOLVED
    return RankingVerdict(verdict, tuple(pairs))
