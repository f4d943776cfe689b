"""Regression gate for checkpoints: compare a candidate run to a baseline run, sample by sample.

The rule of ``mmeval check``, for every gated task (all baseline tasks, or ``--tasks``):

1. Coverage comes first.  A baseline document is *unscored* in a run when its sample errored,
   has no finite ``scores[metric]`` / ``scores["correct"]``, or is absent from the run's samples
   file.  When the candidate leaves more of the baseline's documents unscored than the baseline
   itself did, the task FAILS on coverage, whatever its metrics say: samples that fail are never
   silently dropped.  Documents only the candidate has, and candidate tasks the baseline lacks,
   are stated and not compared.
2. Then each gated metric (``--metrics``, default the task's headline) on the documents both runs
   scored: the two runs' per-sample scores are paired on common doc_ids and the difference is
   bootstrapped.  A metric *regresses* when the candidate is below the baseline by more than
   ``max_drop`` metric units (percentage points for accuracy-like metrics) with significance:
   the one-sided bootstrap p-value of "drop <= max_drop" is below ``alpha``.

PASS (exit 0): no task lost coverage and no metric regressed (noise and improvements pass).
FAIL (exit 1): a task lost coverage or a metric regressed.  Bad input (exit 2, :class:`CheckError`):
options out of range (``alpha`` outside (0, 1), ``n_boot`` below :func:`min_n_boot`, a negative or
non-finite ``max_drop``), an unknown task or metric (every ``--metrics`` name must be a metric of
both runs of every gated task), a missing result or samples file, different protocols, runs with
no doc_id in common, a baseline with no scored sample, or a NaN/inf in a gated metric, a
per-sample score, or a computed difference, interval or p-value.

How the difference is measured (``method``): "aggregate" recomputes the task's own metric
(``task.aggregate(scores, protocol)[metric]`` from the registry) on both runs for each paired
resample of the common docs -- exact for F1, MME and per-category averages; "mean" bootstraps
the mean per-sample score (``scores[metric]``, else ``scores["correct"]``), scaled by 100 when
the scores are in [0, 1] and the metric is a percentage, or proportionally
(``metric / mean(score)``, marked "~") for metrics such as MME's raw score; "auto" (default)
takes "aggregate" when the task is registered and its scores suffice, else "mean".
The sign test (McNemar's exact test for 0/1 scores) is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.report.loading import (
    ResultError,
    TaskResult,
    load_run,
    load_samples,
    load_task_result,
)
from mmeval.report.statistics import (
    is_binary,
    paired_bootstrap,
    paired_result,
    paired_scores,
    paired_statistic_draws,
    sample_score,
    score_field,
    sign_test,
)

#: Fewest bootstrap resamples ``check`` accepts: fewer make the p-value too coarse to gate on.
MIN_N_BOOT = 100


class CheckError(Exception):
    """Inputs that cannot be compared (bad options, missing files, no common samples, NaN, ...)."""


@dataclass
class Comparison:
    task: str
    metric: str
    field: str  # per-sample score used
    n: int  # common samples
    n_a: int
    n_b: int
    value_a: float | None  # metric from the task files
    value_b: float | None
    diff: float  # paired mean difference (b - a), metric units
    ci: tuple[float, float]  # 95%-style interval of diff (1 - alpha)
    p_drop: float  # one-sided p of "b - a >= -max_drop" (small = significant drop beyond tolerance)
    p_two_sided: float  # bootstrap, diff = 0
    sign_p: float  # sign test / McNemar exact (two-sided)
    test: str  # "McNemar" for 0/1 scores, else "sign"
    scale: float
    approx_scale: bool
    regression: bool = False
    improved: bool = False
    n_draws: int = 0  # bootstrap resamples with a finite difference (aggregate resamples can fail)


def _scale(a: np.ndarray, b: np.ndarray, value_a: float | None) -> tuple[float, bool]:
    """Factor from per-sample score units to metric units, and whether it is approximate."""
    in_unit = a.size and (a.min() >= 0 and a.max() <= 1 and b.min() >= 0 and b.max() <= 1)
    if not in_unit or value_a is None:
        return 1.0, False
    if abs(value_a) <= 100.0:
        return 100.0, False
    m = float(a.mean())
    return (value_a / m, True) if m > 0 else (100.0, True)


def _task_statistic(task: str, protocol: str, metric: str, scores_a: list, scores_b: list):
    """``scores -> task.aggregate(scores, protocol)[metric]`` when the task is registered and can
    recompute the metric from these samples' scores; else None (fall back to per-sample means)."""
    try:
        from mmeval.registry import get_task

        t = get_task(task)
    except Exception:  # noqa: BLE001 - unregistered task, missing options, optional deps
        return None
    resamplable = t.ci_metrics(protocol)
    if resamplable is not None and metric not in resamplable:
        return None  # the task cannot recompute it on resamples (e.g. corpus CIDEr): per-sample means

    def stat(scores: list) -> float:
        v = t.aggregate(scores, protocol)[metric]
        if v is None or not np.isfinite(float(v)):
            raise ValueError("non-finite metric")
        return float(v)

    try:
        stat(scores_a), stat(scores_b)
    except Exception:  # noqa: BLE001 - scores lack the fields the aggregate needs
        return None
    return stat


def _check_comparable(ra: TaskResult, rb: TaskResult) -> None:
    if ra.task != rb.task:
        raise CheckError(f"different tasks: {ra.task} ({ra.path}) vs {rb.task} ({rb.path})")
    if ra.protocol != rb.protocol:
        raise CheckError(f"different protocols for {ra.task}: {ra.protocol!r} ({ra.path}) vs "
                         f"{rb.protocol!r} ({rb.path})")


def _read_samples(r: TaskResult, include_errors: bool = False) -> list[dict[str, Any]]:
    try:
        return load_samples(r.samples_path, include_errors=include_errors)
    except ResultError as e:
        raise CheckError(str(e)) from e


def compare_tasks(ra: TaskResult, rb: TaskResult, metric: str | None = None, *, max_drop: float = 0.0,
                  alpha: float = 0.05, n_boot: int = 2000, seed: int = 0, method: str = "auto") -> Comparison:
    """Paired comparison of one metric (default: the headline) between two results of a task.

    ``method``: "aggregate" recomputes the task's own metric on each paired resample (exact for
    F1, MME, per-category averages; needs the task registered); "mean" bootstraps the mean of
    the per-sample score; "auto" uses "aggregate" when possible, else "mean".
    """
    _check_comparable(ra, rb)
    metric = metric or ra.headline or rb.headline
    if not metric:
        raise CheckError(f"{ra.path}: no headline metric and none given")
    return _compare_samples(ra, rb, metric, _read_samples(ra), _read_samples(rb), max_drop=max_drop,
                            alpha=alpha, n_boot=n_boot, seed=seed, method=method)


def _compare_samples(ra: TaskResult, rb: TaskResult, metric: str, sa: Sequence[Mapping], sb: Sequence[Mapping], *,
                     max_drop: float, alpha: float, n_boot: int, seed: int, method: str) -> Comparison:
    """:func:`compare_tasks` on samples already read (errored ones are skipped by the pairing)."""
    if method not in ("auto", "aggregate", "mean"):
        raise CheckError(f"unknown method {method!r}")
    fld = score_field(sa, metric)
    p = paired_scores(sa, sb, metric)
    if not p.doc_ids:
        raise CheckError(f"no common samples for {ra.task}: {ra.samples_path} ({p.n_a} usable) vs "
                         f"{rb.samples_path} ({p.n_b} usable)")
    va, vb = ra.metric(metric), rb.metric(metric)
    stat = _task_statistic(ra.task, ra.protocol, metric, p.scores_a, p.scores_b) if method != "mean" else None
    if method == "aggregate" and stat is None:
        raise CheckError(f"cannot recompute {ra.task}/{metric} from the samples (task not registered "
                         "or its scores lack the fields); use --method mean")
    if stat is not None:
        fld, scale, approx = "aggregate", 1.0, False
        point, draws = paired_statistic_draws(p.scores_a, p.scores_b, stat, n_boot=n_boot, seed=seed)
        n_draws = int(draws.size)
        bs = paired_result(point, draws, alpha, -max_drop, len(p.doc_ids))
        two = paired_result(point, draws, alpha, 0.0, len(p.doc_ids))
    else:
        scale, approx = _scale(p.a, p.b, va)
        n_draws = n_boot
        bs = paired_bootstrap(p.a, p.b, n_boot=n_boot, seed=seed, alpha=alpha, scale=scale, margin=-max_drop)
        two = paired_bootstrap(p.a, p.b, n_boot=n_boot, seed=seed, alpha=alpha, scale=scale, margin=0.0)
    st = sign_test(p.a, p.b)
    c = Comparison(task=ra.task, metric=metric, field=fld, n=len(p.doc_ids), n_a=p.n_a, n_b=p.n_b,
                   value_a=va, value_b=vb, diff=bs.mean_diff, ci=bs.ci, p_drop=bs.p_less,
                   p_two_sided=bs.p_two_sided, sign_p=st.p_two_sided,
                   test="McNemar" if is_binary(p.a, p.b) else "sign", scale=scale, approx_scale=approx,
                   n_draws=n_draws)
    c.regression = (-c.diff > max_drop) and c.p_drop < alpha
    c.improved = c.diff > 0 and two.p_greater < alpha
    return c


# --------------------------------------------------------------------------- coverage
@dataclass(frozen=True)
class Coverage:
    """How many of the baseline's documents each run left without a usable score, for one metric."""

    task: str
    metric: str
    n_docs: int  # documents in the baseline's samples file
    baseline_unscored: int  # of them, errored or without a score in the baseline
    errored: int  # of them, errored in the candidate
    no_score: int  # of them, no error but no usable score in the candidate
    missing: int  # of them, absent from the candidate's samples file
    extra: int  # documents only the candidate has (not compared)
    example: str = ""  # one candidate failure, "doc_id: error"

    @property
    def candidate_unscored(self) -> int:
        return self.errored + self.no_score + self.missing

    @property
    def lost(self) -> int:
        """Baseline documents the candidate left unscored beyond the baseline's own count."""
        return max(0, self.candidate_unscored - self.baseline_unscored)

    def lines(self) -> list[str]:
        out = []
        if self.lost:
            kinds = [text for n, text in (
                (self.errored, f"{self.errored} errored" + (f", e.g. {self.example}" if self.example else "")),
                (self.no_score, f"{self.no_score} without a finite {self.metric!r} or 'correct' score"),
                (self.missing, f"{self.missing} missing from its samples file")) if n]
            out.append(f"{self.task}: COVERAGE REGRESSION: {self.lost} more unscored samples than the baseline: "
                       f"the candidate has no score for {self.candidate_unscored} of the baseline's {self.n_docs} "
                       f"docs ({'; '.join(kinds)}), the baseline for {self.baseline_unscored}")
        elif self.candidate_unscored or self.baseline_unscored:
            out.append(f"{self.task}: coverage ok: the candidate has no score for {self.candidate_unscored} of "
                       f"the baseline's {self.n_docs} docs, the baseline for {self.baseline_unscored} "
                       "(those docs are left out of the paired comparison)")
        if self.extra:
            out.append(f"{self.task}: the candidate has {self.extra} docs the baseline lacks (not compared)")
        return out


def _scored(sample: Mapping[str, Any], metric: str) -> bool:
    return not sample.get("error") and sample_score(sample, metric) is not None


def coverage(task: str, metric: str, baseline: Mapping[str, Mapping], candidate: Mapping[str, Mapping]) -> Coverage:
    """Count the baseline's documents each run left unscored (``{doc_id: sample}`` per run)."""
    errored = no_score = missing = 0
    example = ""
    for doc_id in baseline:
        s = candidate.get(doc_id)
        if s is None:
            missing += 1
        elif s.get("error"):
            errored += 1
            example = example or f"{doc_id}: {str(s['error'])[:80]}"
        elif sample_score(s, metric) is None:
            no_score += 1
    return Coverage(task=task, metric=metric, n_docs=len(baseline),
                    baseline_unscored=sum(not _scored(s, metric) for s in baseline.values()),
                    errored=errored, no_score=no_score, missing=missing,
                    extra=len(set(candidate) - set(baseline)), example=example)


# --------------------------------------------------------------------------- validation
def min_n_boot(alpha: float) -> int:
    """Fewest resamples for the gate: MIN_N_BOOT, and enough that the smallest bootstrap p-value,
    1 / (n_boot + 1), is below alpha (else no drop could ever be significant)."""
    n = math.floor(1.0 / alpha)
    while 1.0 / (n + 1) >= alpha:
        n += 1
    return max(MIN_N_BOOT, n)


def validate_options(*, max_drop: float, alpha: float, n_boot: int, seed: int, method: str) -> None:
    """Reject option values that would make the gate meaningless (one line, exit 2 in the CLI)."""
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise CheckError(f"--alpha {alpha}: must be a number strictly between 0 and 1")
    if not (isinstance(max_drop, (int, float)) and math.isfinite(max_drop) and max_drop >= 0):
        raise CheckError(f"--max-drop {max_drop}: must be a finite number >= 0 (metric units)")
    need = min_n_boot(alpha)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < need:
        raise CheckError(f"--n-boot {n_boot}: must be an integer >= {need} (at least {MIN_N_BOOT}, and enough "
                         f"resamples for a p-value below --alpha {alpha:g})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CheckError(f"--seed {seed}: must be an integer >= 0")
    if method not in ("auto", "aggregate", "mean"):
        raise CheckError(f"--method {method!r}: must be one of auto, aggregate, mean")


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_metric_value(r: TaskResult, metric: str, side: str) -> None:
    raw = r.metrics.get(metric)
    if not _finite(raw):
        raise CheckError(f"{side} {r.path}: metrics.{metric} is {raw!r}, not a finite number")


def _non_finite_field(value: Any, where: str) -> str | None:
    """The dotted path of the first NaN/inf number inside ``value``, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        bad = _non_finite_field(v, f"{where}.{k}")
        if bad:
            return bad
    return None


def _samples_by_doc(r: TaskResult, side: str) -> dict[str, dict[str, Any]]:
    """The run's samples keyed by doc_id, errored ones included; a doc logged twice (an errored
    sample retried on resume) keeps its last record, as the runner reads it."""
    out: dict[str, dict[str, Any]] = {}
    for s in _read_samples(r, include_errors=True):
        if s.get("doc_id") is None:
            raise CheckError(f"{side} {r.samples_path}: a sample without doc_id")
        doc_id = str(s["doc_id"])
        if not s.get("error"):
            bad = _non_finite_field(s.get("scores") or {}, "scores")
            if bad:
                raise CheckError(f"{side} {r.samples_path}: doc {doc_id}: {bad} is not finite (NaN/inf)")
        out[doc_id] = s
    return out


def _check_finite_result(c: Comparison, n_boot: int, alpha: float) -> None:
    values = {"difference": c.diff, "interval low": c.ci[0], "interval high": c.ci[1],
              "p-value of the drop": c.p_drop, "two-sided p-value": c.p_two_sided, "sign-test p-value": c.sign_p}
    for name, v in values.items():
        if not _finite(v):
            raise CheckError(f"{c.task}/{c.metric}: the paired comparison gave a non-finite {name} ({v}); "
                             f"{c.n_draws} of {n_boot} resamples had a finite difference")
    if c.n_draws < min_n_boot(alpha):
        raise CheckError(f"{c.task}/{c.metric}: only {c.n_draws} of {n_boot} resamples gave a finite metric "
                         f"(need {min_n_boot(alpha)}); use --method mean")


# --------------------------------------------------------------------------- the gate
def _load_side(path: str | Path) -> dict[str, TaskResult]:
    path = Path(path)
    try:
        if path.is_file():
            r = load_task_result(path)
            return {r.task: r}
        if not path.exists():
            raise CheckError(f"missing: {path}")
        runs = load_run(path)
    except ResultError as e:
        raise CheckError(str(e)) from e
    if not runs:
        raise CheckError(f"no task result files (<task>.json) in {path}")
    return runs


def _gated_metrics(rb: TaskResult, metrics: list[str] | None) -> list[str]:
    """The metrics to gate for one task; every name must be a metric of the baseline run."""
    if not metrics:
        if not rb.headline:
            raise CheckError(f"baseline {rb.path}: no headline metric; name one with --metrics")
        return [rb.headline]
    for m in metrics:
        if m not in rb.metrics:
            raise CheckError(f"--metrics: unknown metric {m!r} for {rb.task} (baseline {rb.path} has: "
                             f"{', '.join(sorted(rb.metrics)) or 'none'}); use --tasks to gate a metric "
                             "only on the tasks that report it")
    return list(dict.fromkeys(metrics))


@dataclass
class CheckReport:
    comparisons: list[Comparison] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def coverage_lost(self) -> list[Coverage]:
        return [c for c in self.coverage if c.lost]

    @property
    def failed(self) -> bool:
        return bool(self.coverage_lost) or any(c.regression for c in self.comparisons)


def run_check(baseline: str | Path, candidate: str | Path, *, max_drop: float = 0.5, alpha: float = 0.05,
              metrics: list[str] | None = None, tasks: list[str] | None = None,
              n_boot: int = 2000, seed: int = 0, method: str = "auto") -> CheckReport:
    """Apply the module's rule: coverage of every gated task, then every gated metric."""
    validate_options(max_drop=max_drop, alpha=alpha, n_boot=n_boot, seed=seed, method=method)
    base, cand = _load_side(baseline), _load_side(candidate)
    report = CheckReport()
    if Path(candidate).is_file() and Path(baseline).is_dir():
        skipped = sorted(set(base) - set(cand))
        if skipped:
            report.notes.append(f"baseline tasks not checked (the candidate is one task file): {', '.join(skipped)}")
        base = {k: v for k, v in base.items() if k in cand}
    names = sorted(base)
    if tasks:
        unknown = [t for t in tasks if t not in base]
        if unknown:
            raise CheckError(f"task(s) not in baseline {baseline}: {', '.join(unknown)} "
                             f"(baseline has: {', '.join(sorted(base))})")
        names = [t for t in names if t in tasks]
    missing = [t for t in names if t not in cand]
    if missing:
        raise CheckError(f"candidate {candidate} lacks result file(s) for: {', '.join(missing)}")
    extra = sorted(set(cand) - set(base))
    if extra:
        report.notes.append(f"candidate tasks without baseline (not checked): {', '.join(extra)}")

    # bad input (exit 2) before any verdict: protocols, metric names, NaN in the result files
    gated = {}
    for t in names:
        _check_comparable(base[t], cand[t])
        gated[t] = _gated_metrics(base[t], metrics)
        for m in gated[t]:
            _check_metric_value(base[t], m, "baseline")

    for t in names:
        rb, rc = base[t], cand[t]
        sb, sc = _samples_by_doc(rb, "baseline"), _samples_by_doc(rc, "candidate")
        if not set(sb) & set(sc):
            raise CheckError(f"no common doc_ids for {t}: {rb.samples_path} ({len(sb)} docs) vs "
                             f"{rc.samples_path} ({len(sc)} docs); not runs of the same documents")
        for m in gated[t]:
            cov = coverage(t, m, sb, sc)
            if cov.baseline_unscored == cov.n_docs:
                raise CheckError(f"baseline {rb.samples_path}: no sample with a usable {m!r} score")
            if cov not in report.coverage:
                report.coverage.append(cov)
            scored = [d for d, s in sc.items() if _scored(s, m)]
            if not scored:  # the candidate scored nothing (its metrics are empty): the coverage verdict stands
                report.notes.append(f"{t}/{m}: not compared: the candidate has no scored sample")
                continue
            if m not in rc.metrics:
                raise CheckError(f"candidate {rc.path}: unknown metric {m!r} (it has: "
                                 f"{', '.join(sorted(rc.metrics)) or 'none'})")
            _check_metric_value(rc, m, "candidate")
            if not any(d in sb and _scored(sb[d], m) for d in scored):
                if cov.lost:  # nothing to pair, but losing coverage already fails the candidate
                    report.notes.append(f"{t}/{m}: not compared: no doc scored in both runs")
                    continue
                raise CheckError(f"no common scored samples for {t}/{m}: {rb.samples_path} vs {rc.samples_path}")
            c = _compare_samples(rb, rc, m, list(sb.values()), list(sc.values()), max_drop=max_drop, alpha=alpha,
                                 n_boot=n_boot, seed=seed, method=method)
            _check_finite_result(c, n_boot, alpha)
            report.comparisons.append(c)
    return report


def _fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def format_report(report: CheckReport, max_drop: float, alpha: float) -> str:
    """A short plain-text table (tabulate), the coverage lines, notes, and the verdict line."""
    from tabulate import tabulate

    rows = []
    for c in report.comparisons:
        unit = "~" if c.approx_scale else ""
        rows.append([
            c.task, c.metric, c.field, c.n, _fmt(c.value_a), _fmt(c.value_b),
            f"{unit}{c.diff:+.2f}", f"[{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]",
            f"{c.p_drop:.3g}", f"{c.sign_p:.3g} ({c.test})",
            "REGRESSION" if c.regression else ("improved" if c.improved else "ok"),
        ])
    head = ["task", "metric", "score", "n", "baseline", "candidate", "Δ paired", f"{1 - alpha:.0%} CI",
            f"p(drop>{max_drop:g})", "sign p", "verdict"]
    text = tabulate(rows, headers=head, tablefmt="simple", disable_numparse=True) if rows else ""
    lines = list(dict.fromkeys(line for cov in report.coverage for line in cov.lines()))
    reasons = [f"{cov.lost} more unscored samples than the baseline in {cov.task}" for cov in report.coverage_lost]
    bad = [f"{c.task}/{c.metric}" for c in report.comparisons if c.regression]
    if bad:
        reasons.append(f"significant drop > {max_drop:g} in {', '.join(bad)}")
    verdict = (f"FAIL: {'; '.join(dict.fromkeys(reasons))}" if reasons
               else f"PASS: the candidate scored as many of the baseline's docs as the baseline, and no metric "
                    f"dropped by more than {max_drop:g} with p < {alpha:g}")
    return "\n".join([x for x in (text, *lines, *report.notes) if x] + [verdict])
