"""Percentile-bootstrap confidence intervals over per-sample scores (numpy only).

The engine writes every results file's ``ci95`` with :func:`bootstrap_ci` (through
:func:`mmeval.scoring.summarize`); the report layer's paired tests (:mod:`mmeval.report.statistics`)
reuse :func:`resample_means` and :func:`percentile_interval`. This module is part of the engine, so
it never imports the report layer.

* :func:`bootstrap_ci` -- intervals of any aggregate over per-sample records. Index resampling with
  a seeded ``numpy.random.Generator``; a vectorised path when the statistic is the mean of one
  numeric field (:func:`mean_of`) or the input is already numeric.
* :func:`resample_means` -- means of index resamples, in chunks that bound memory.
* :func:`percentile_interval` -- the percentile interval of bootstrap draws (non-finite ones dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap ``1 - alpha`` intervals of every metric ``statistic`` returns.

    ``values_or_records``: per-sample records (any objects) or numbers.  ``statistic``: takes a
    list of records and returns ``{metric: value}`` (a bare number is named "value"); ``None``
    means the plain mean of numeric input (named "mean").  Returns ``{metric: (lo, hi)}``; metrics
    whose value is not numeric are skipped.  Same seed, same input -> same interval.
    """
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    rng = np.random.default_rng(seed)
    n = len(values_or_records)
    if n == 0:
        return {}

    # fast paths: mean of numbers, or mean of one numeric field
    if statistic is None or isinstance(statistic, MeanOf):
        if statistic is None:
            vals, scale, name = np.asarray(values_or_records, dtype=float), 1.0, "mean"
        else:
            vals, scale, name = statistic.values(values_or_records), statistic.scale, statistic.name
        return {name: percentile_interval(scale * resample_means(vals, n_boot, rng), alpha)}

    records = np.empty(n, dtype=object)  # object array: fancy indexing without a Python loop
    for i, r in enumerate(values_or_records):
        records[i] = r
    draws: dict[str, list[float]] = {}
    step = max(1, _CHUNK_ELEMENTS // n)
    for s in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - s), n))
        for row in idx:
            stats = statistic(records[row].tolist())
            if not isinstance(stats, Mapping):
                stats = {"value": stats}
            for k, v in stats.items():
                if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                    draws.setdefault(k, []).append(float(v))
    return {k: percentile_interval(np.asarray(v, dtype=float), alpha) for k, v in draws.items()}
