"""Percentile-bootstrap confidence intervals over per-sample scores (numpy only).

The engine writes every results file's ``ci95`` with :func:`bootstrap_ci` (through
:func:`mmeval.scoring.summarize`); the report layer's paired tests (:mod:`mmeval.report.statistics`)
reuse :func:`resample_means` and :func:`percentile_interval`. This module is part of the engine, so
it never imports the report layer.

* :func:`bootstrap_ci` -- intervals of any aggregate over per-sample records. Index resampling with
  a seeded ``numpy.random.Generator``; a vectorised path when the statistic is the mean of one
  numeric field (:func:`mean_of`) or the input is already numeric. With :class:`Units` it resamples
  the units a benchmark's score is built from instead of single samples: clusters kept whole (MME's
  image pairs, MMBench's circular groups), drawn within strata whose sizes stay fixed (MME's
  subtasks, POPE's splits).
* :func:`resample_units` -- one stratified cluster resample: record indices and the draw slot of each.
* :func:`resample_means` -- means of index resamples, in chunks that bound memory.
* :func:`percentile_interval` -- the percentile interval of bootstrap draws (non-finite ones dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Upper bound on n_boot * n elements materialised at once by the vectorised paths.
_CHUNK_ELEMENTS = 4_000_000


class MeanOf:
    """Statistic 'scale * mean(record[field])', recognised by :func:`bootstrap_ci`'s fast path."""

    def __init__(self, field: str, scale: float = 1.0, name: str | None = None):
        self.field, self.scale, self.name = field, float(scale), name or field

    def values(self, records: Sequence[Any]) -> np.ndarray:
        return np.asarray([_get(r, self.field) for r in records], dtype=float)

    def __call__(self, records: Sequence[Any]) -> dict[str, float]:
        v = self.values(records)
        return {self.name: float(self.scale * v.mean()) if v.size else float("nan")}


def mean_of(field: str, scale: float = 1.0, name: str | None = None) -> MeanOf:
    """E.g. ``mean_of("correct", 100, "accuracy")``: accuracy in percent from 0/1 scores.

    ``field`` may be dotted (``"scores.correct"``) to reach into nested records.
    """
    return MeanOf(field, scale, name)


def _get(record: Any, dotted: str) -> Any:
    x = record
    for part in dotted.split("."):
        x = x[part]
    return x


@dataclass(frozen=True)
class Units:
    """What a bootstrap draws, given per record (a task's `bootstrap_units` hook builds it).

    `strata`: the stratum of each record, or None for one stratum; every resample draws, in each
    stratum, as many clusters as it has (a score summed or averaged over strata keeps its parts).
    `clusters`: the cluster of each record (records of one cluster are drawn together), or None
    for one record per cluster. Cluster keys are scoped to their stratum.
    `relabel(record, slot)`: the record as a member of the drawn copy `slot` (an int unique to each
    draw within a resample, below the number of clusters). An aggregate that groups records by the
    cluster key (acc+ per image, CircularEval per question) would merge two draws of one cluster
    into one; relabelling keeps them apart. None: records are passed as they are.
    """

    strata: Sequence[Hashable] | None = None
    clusters: Sequence[Hashable] | None = None
    relabel: Callable[[Any, int], Any] | None = None

    def groups(self, n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per stratum (in order of first appearance): its record indices cluster after cluster,
        and where each cluster starts in them and how many records it has."""
        for name, keys in (("strata", self.strata), ("clusters", self.clusters)):
            if keys is not None and len(keys) != n:
                raise ValueError(f"bootstrap units: {len(keys)} {name} for {n} records")
        strata: dict[Hashable, dict[Hashable, list[int]]] = {}
        for i in range(n):
            stratum = strata.setdefault(None if self.strata is None else self.strata[i], {})
            stratum.setdefault(i if self.clusters is None else self.clusters[i], []).append(i)
        out = []
        for clusters in strata.values():
            sizes = np.asarray([len(m) for m in clusters.values()], dtype=np.intp)
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
            flat = np.asarray([i for m in clusters.values() for i in m], dtype=np.intp)
            out.append((flat, starts, sizes))
        return out


def resample_units(groups: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One resample of `Units.groups`: in each stratum as many clusters as it has, drawn with
    replacement and kept whole. Returns the record indices and, for each, the slot of its draw
    (0, 1, ... over the draws of all strata)."""
    idx_parts, slot_parts, base = [], [], 0
    for flat, starts, sizes in groups:
        k = sizes.shape[0]
        chosen = rng.integers(0, k, size=k)
        n_rec = sizes[chosen]
        first = np.repeat(starts[chosen], n_rec)  # start of each record's cluster, per record
        offset = np.arange(n_rec.sum()) - np.repeat(np.cumsum(n_rec) - n_rec, n_rec)  # position inside it
        idx_parts.append(flat[first + offset])
        slot_parts.append(np.repeat(base + np.arange(k), n_rec))
        base += k
    return np.concatenate(idx_parts), np.concatenate(slot_parts)


def resample_means(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of n_boot index resamples of ``values``, in chunks to bound memory."""
    n = values.shape[0]
    out = np.empty(n_boot, dtype=float)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for s in range(0, n_boot, step):
        m = min(step, n_boot - s)
        idx = rng.integers(0, n, size=(m, n))
        out[s : s + m] = values[idx].mean(axis=1)
    return out


def percentile_interval(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    """The ``1 - alpha`` percentile interval of the finite draws (NaN, NaN when there are none)."""
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(draws, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return (float(lo), float(hi))


def bootstrap_ci(
    values_or_records: Sequence[Any] | np.ndarray,
    statistic: Callable[[Sequence[Any]], Mapping[str, float] | float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    units: Units | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap ``1 - alpha`` intervals of every metric ``statistic`` returns.

    ``values_or_records``: per-sample records (any objects) or numbers.  ``statistic``: takes a
    list of records and returns ``{metric: value}`` (a bare number is named "value"); ``None``
    means the plain mean of numeric input (named "mean").  ``units``: resample clusters within
    strata (see :class:`Units`) instead of single records.  Returns ``{metric: (lo, hi)}``; metrics
    whose value is not numeric are skipped.  Same seed, same input -> same interval.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    rng = np.random.default_rng(seed)
    n = len(values_or_records)
    if n == 0:
        return {}

    # fast paths: mean of numbers, or mean of one numeric field
    if units is None and (statistic is None or isinstance(statistic, MeanOf)):
        if statistic is None:
            vals, scale, name = np.asarray(values_or_records, dtype=float), 1.0, "mean"
        else:
            vals, scale, name = statistic.values(values_or_records), statistic.scale, statistic.name
        return {name: percentile_interval(scale * resample_means(vals, n_boot, rng), alpha)}

    if statistic is None:  # numbers resampled by units: their plain mean, as on the fast path
        def statistic(values: Sequence[Any]) -> dict[str, float]:
            return {"mean": float(np.mean(np.asarray(values, dtype=float)))}
    records = np.empty(n, dtype=object)  # object array: fancy indexing without a Python loop
    for i, r in enumerate(values_or_records):
        records[i] = r
    draws: dict[str, list[float]] = {}

    def add(sample: list[Any]) -> None:
        stats = statistic(sample)
        if not isinstance(stats, Mapping):
            stats = {"value": stats}
        for k, v in stats.items():
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                draws.setdefault(k, []).append(float(v))

    if units is not None:
        groups, relabel = units.groups(n), units.relabel
        for _ in range(n_boot):
            idx, slots = resample_units(groups, rng)
            drawn = records[idx].tolist()
            add(drawn if relabel is None else [relabel(r, int(s)) for r, s in zip(drawn, slots.tolist(), strict=True)])
    else:
        step = max(1, _CHUNK_ELEMENTS // n)
        for s in range(0, n_boot, step):
            for row in rng.integers(0, n, size=(min(step, n_boot - s), n)):
                add(records[row].tolist())
    return {k: percentile_interval(np.asarray(v, dtype=float), alpha) for k, v in draws.items()}
