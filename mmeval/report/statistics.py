"""Paired tests over two runs' per-sample scores (numpy only), beside the engine's bootstrap.

* :func:`bootstrap_ci`, :func:`mean_of` -- the percentile bootstrap every results file's ``ci95``
  comes from; they live in the engine (:mod:`mmeval.bootstrap`) and are re-exported here so the
  report layer finds all its statistics in one module (the engine never imports the report layer).
* :func:`paired_scores` -- align two runs' samples on common doc_ids.
* :func:`paired_bootstrap` -- bootstrap of the mean difference (b - a) with one-sided p-values;
  :func:`paired_bootstrap_statistic` does the same for any aggregate (the task's own metric).
* :func:`sign_test` -- exact (or normal-approximation) sign test; on 0/1 scores it is McNemar's
  exact test on the discordant pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# bootstrap_ci and mean_of are re-exported: the report layer's statistics in one module
from mmeval.bootstrap import bootstrap_ci as bootstrap_ci
from mmeval.bootstrap import mean_of as mean_of
from mmeval.bootstrap import percentile_interval, resample_means


# --------------------------------------------------------------------------- paired tests
def sample_score(sample: Mapping[str, Any], metric: str | None) -> float | None:
    """``scores[metric]`` when numeric, else ``scores["correct"]``; None when neither is numeric."""
    scores = sample.get("scores") or {}
    for key in ((metric, "correct") if metric else ("correct",)):
        v = scores.get(key) if key else None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
        if isinstance(v, bool):
            return float(v)
    return None


def score_field(samples: Sequence[Mapping[str, Any]], metric: str | None) -> str:
    """Which per-sample field :func:`sample_score` mostly uses for ``metric`` on these samples."""
    if metric:
        for s in samples:
            v = (s.get("scores") or {}).get(metric)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return metric
    return "correct"


@dataclass
class Paired:
    doc_ids: list[str]
    a: np.ndarray
    b: np.ndarray
    n_a: int  # usable samples in a
    n_b: int  # usable samples in b
    scores_a: list = field(default_factory=list)  # the per-sample ``scores`` dicts, aligned
    scores_b: list = field(default_factory=list)


def paired_scores(samples_a: Sequence[Mapping[str, Any]], samples_b: Sequence[Mapping[str, Any]],
                  metric: str | None = None) -> Paired:
    """Per-sample scores of the two runs on their common doc_ids (errored samples excluded)."""

    def table(samples):
        out = {}
        for s in samples:
            if s.get("error"):
                continue
            v = sample_score(s, metric)
            if v is not None:
                out[str(s.get("doc_id"))] = (v, s.get("scores") or {})
        return out

    ta, tb = table(samples_a), table(samples_b)
    common = sorted(set(ta) & set(tb))
    return Paired(common, np.array([ta[d][0] for d in common], dtype=float),
                  np.array([tb[d][0] for d in common], dtype=float), len(ta), len(tb),
                  [ta[d][1] for d in common], [tb[d][1] for d in common])


@dataclass
class PairedBootstrap:
    mean_diff: float  # mean(b - a) * scale
    ci: tuple[float, float]  # percentile interval of the mean difference, scaled
    p_greater: float  # one-sided p of "H0: diff <= margin": small = b significantly above a + margin
    p_less: float  # one-sided: small = b significantly below a + margin
    p_two_sided: float
    n: int


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0,
                     alpha: float = 0.05, scale: float = 1.0, margin: float = 0.0) -> PairedBootstrap:
    """Paired bootstrap of ``scale * mean(b - a)`` over the same samples.

    ``margin`` shifts the one-sided nulls: ``p_less`` is the bootstrap p-value of
    "H0: diff >= margin" against "diff < margin" (use ``margin=-max_drop`` to test for a drop
    larger than ``max_drop``).  p-values use the (count + 1) / (n_boot + 1) convention, so they
    are never 0.  ``p_two_sided`` tests diff = 0.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired_bootstrap needs two non-empty arrays of the same length")
    d = b - a
    rng = np.random.default_rng(seed)
    draws = scale * resample_means(d, n_boot, rng)
    return paired_result(float(scale * d.mean()), draws, alpha, margin, int(d.size))


def paired_statistic_draws(records_a: Sequence[Any], records_b: Sequence[Any],
                           statistic: Callable[[list[Any]], float], n_boot: int = 2000,
                           seed: int = 0) -> tuple[float, np.ndarray]:
    """Point value and bootstrap draws of ``statistic(b) - statistic(a)`` on aligned records.

    ``records_a[i]`` and ``records_b[i]`` must be the same document; each resample draws the
    same indices for both runs.  Resamples where the statistic fails or is not finite are dropped.
    """
    n = len(records_a)
    if n == 0 or n != len(records_b):
        raise ValueError("paired bootstrap needs two non-empty aligned sequences")
    A, B = np.empty(n, dtype=object), np.empty(n, dtype=object)
    for i in range(n):
        A[i], B[i] = records_a[i], records_b[i]
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot, dtype=float)
    for k in range(n_boot):
        idx = rng.integers(0, n, size=n)
        try:
            draws[k] = float(statistic(B[idx].tolist())) - float(statistic(A[idx].tolist()))
        except (ArithmeticError, ValueError, KeyError, TypeError):
            draws[k] = np.nan
    point = float(statistic(list(records_b))) - float(statistic(list(records_a)))
    return point, draws[np.isfinite(draws)]


def paired_bootstrap_statistic(records_a: Sequence[Any], records_b: Sequence[Any],
                               statistic: Callable[[list[Any]], float], n_boot: int = 2000, seed: int = 0,
                               alpha: float = 0.05, margin: float = 0.0) -> PairedBootstrap:
    """:func:`paired_bootstrap` for any aggregate (F1, MME score, ...) instead of a mean."""
    point, draws = paired_statistic_draws(records_a, records_b, statistic, n_boot, seed)
    return paired_result(point, draws, alpha, margin, len(records_a))


def paired_result(mean: float, draws: np.ndarray, alpha: float, margin: float, n: int) -> PairedBootstrap:
    """Shift-to-null bootstrap p-values: ``draws - mean`` approximates the null's spread."""
    m = draws.size
    if m == 0:
        nan = float("nan")
        return PairedBootstrap(mean, (nan, nan), nan, nan, nan, n)
    centred = draws - mean
    p_less = (np.sum(centred + margin <= mean) + 1) / (m + 1)  # H0: diff >= margin
    p_greater = (np.sum(centred + margin >= mean) + 1) / (m + 1)  # H0: diff <= margin
    p_two = (np.sum(np.abs(centred) >= abs(mean)) + 1) / (m + 1)
    return PairedBootstrap(mean, percentile_interval(draws, alpha), float(p_greater), float(p_less),
                           float(min(1.0, p_two)), n)


def _binom_cdf(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exact via log-space sums."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    i = np.arange(0, k + 1)
    logs = (math.lgamma(n + 1) - np.array([math.lgamma(x + 1) + math.lgamma(n - x + 1) for x in i])
            - n * math.log(2))
    m = logs.max()
    return float(min(1.0, math.exp(m) * np.exp(logs - m).sum()))


@dataclass
class SignTest:
    n_up: int  # pairs where b > a
    n_down: int  # pairs where b < a
    p_two_sided: float
    p_less: float  # one-sided: small = b tends to be below a
    exact: bool


def sign_test(a: np.ndarray, b: np.ndarray, exact_up_to: int = 100_000) -> SignTest:
    """Sign test on the non-zero paired differences; McNemar's exact test for 0/1 scores.

    Exact binomial(1/2) tails up to ``exact_up_to`` discordant pairs, else the normal
    approximation with continuity correction.
    """
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    up, down = int(np.sum(d > 0)), int(np.sum(d < 0))
    n = up + down
    if n == 0:
        return SignTest(up, down, 1.0, 1.0, True)
    if n <= exact_up_to:
        p_less = _binom_cdf(up, n)  # few 'up' pairs -> b below a
        p_two = min(1.0, 2 * _binom_cdf(min(up, down), n))
        return SignTest(up, down, p_two, p_less, True)
    z_less = (up + 0.5 - n / 2) / math.sqrt(n / 4)
    z_two = (min(up, down) + 0.5 - n / 2) / math.sqrt(n / 4)
    def phi(z):
        return 0.5 * math.erfc(-z / math.sqrt(2))
    return SignTest(up, down, min(1.0, 2 * phi(z_two)), phi(z_less), False)


def is_binary(*arrays: np.ndarray) -> bool:
    return all(np.isin(np.asarray(x), (0.0, 1.0)).all() for x in arrays)
