"""Regression gate for checkpoints: compare a candidate run to a baseline run, sample by sample.

For every task (and metric) of the baseline, the two runs' per-sample scores are paired on their
common doc_ids and the mean difference is bootstrapped.  A metric *regresses* when the candidate
is below the baseline by more than ``max_drop`` metric units (percentage points for accuracy-like
metrics) with significance: the one-sided bootstrap p-value of "drop <= max_drop" is below
``alpha`` (equivalently, the one-sided ``1 - alpha`` interval of the drop lies above max_drop).

How the difference is measured (``method``): "aggregate" recomputes the task's own metric
(``task.aggregate(scores, protocol)[metric]`` from the registry) on both runs for each paired
resample of the common docs -- exact for F1, MME and per-category averages; "mean" bootstraps
the mean per-sample score (``scores[metric]``, else ``scores["correct"]``), scaled by 100 when
the scores are in [0, 1] and the metric is a percentage, or proportionally
(``metric / mean(score)``, marked "~") for metrics such as MME's raw score; "auto" (default)
takes "aggregate" when the task is registered and its scores suffice, else "mean".
The sign test (McNemar's exact test for 0/1 scores) is reported beside it.
Problems with the inputs raise :class:`CheckError` (the CLI exits 2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    score_field,
    sign_test,
)


class CheckError(Exception):
    """Inputs that cannot be compared (missing files, no common samples, protocol mismatch)."""


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


def compare_tasks(ra: TaskResult, rb: TaskResult, metric: str | None = None, *, max_drop: float = 0.0,
                  alpha: float = 0.05, n_boot: int = 2000, seed: int = 0, method: str = "auto") -> Comparison:
    """Paired comparison of one metric (default: the headline) between two results of a task.

    ``method``: "aggregate" recomputes the task's own metric on each paired resample (exact for
    F1, MME, per-category averages; needs the task registered); "mean" bootstraps the mean of
    the per-sample score; "auto" uses "aggregate" when possible, else "mean".
    """
    if method not in ("auto", "aggregate", "mean"):
        raise CheckError(f"unknown method {method!r}")
    if ra.task != rb.task:
        raise CheckError(f"different tasks: {ra.task} ({ra.path}) vs {rb.task} ({rb.path})")
    if ra.protocol != rb.protocol:
        raise CheckError(f"different protocols for {ra.task}: {ra.protocol!r} ({ra.path}) vs "
                         f"{rb.protocol!r} ({rb.path})")
    metric = metric or ra.headline or rb.headline
    if not metric:
        raise CheckError(f"{ra.path}: no headline metric and none given")
    try:
        sa, sb = load_samples(ra.samples_path), load_samples(rb.samples_path)
    except ResultError as e:
        raise CheckError(str(e)) from e
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
        bs = paired_result(point, draws, alpha, -max_drop, len(p.doc_ids))
        two = paired_result(point, draws, alpha, 0.0, len(p.doc_ids))
    else:
        scale, approx = _scale(p.a, p.b, va)
        bs = paired_bootstrap(p.a, p.b, n_boot=n_boot, seed=seed, alpha=alpha, scale=scale, margin=-max_drop)
        two = paired_bootstrap(p.a, p.b, n_boot=n_boot, seed=seed, alpha=alpha, scale=scale, margin=0.0)
    st = sign_test(p.a, p.b)
    c = Comparison(task=ra.task, metric=metric, field=fld, n=len(p.doc_ids), n_a=p.n_a, n_b=p.n_b,
                   value_a=va, value_b=vb, diff=bs.mean_diff, ci=bs.ci, p_drop=bs.p_less,
                   p_two_sided=bs.p_two_sided, sign_p=st.p_two_sided,
                   test="McNemar" if is_binary(p.a, p.b) else "sign", scale=scale, approx_scale=approx)
    c.regression = (-c.diff > max_drop) and c.p_drop < alpha
    c.improved = c.diff > 0 and two.p_greater < alpha
    return c


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


@dataclass
class CheckReport:
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(c.regression for c in self.comparisons)


def run_check(baseline: str | Path, candidate: str | Path, *, max_drop: float = 0.5, alpha: float = 0.05,
              metrics: list[str] | None = None, tasks: list[str] | None = None,
              n_boot: int = 2000, seed: int = 0, method: str = "auto") -> CheckReport:
    """Compare every (selected) baseline task and metric with the candidate's."""
    if max_drop < 0:
        raise CheckError("--max-drop must be >= 0")
    base, cand = _load_side(baseline), _load_side(candidate)
    if Path(candidate).is_file() and Path(baseline).is_dir():
        base = {k: v for k, v in base.items() if k in cand}
    names = sorted(base)
    if tasks:
        unknown = [t for t in tasks if t not in base]
        if unknown:
            raise CheckError(f"task(s) not in baseline {baseline}: {', '.join(unknown)}")
        names = [t for t in names if t in tasks]
    missing = [t for t in names if t not in cand]
    if missing:
        raise CheckError(f"candidate {candidate} lacks result file(s) for: {', '.join(missing)}")
    report = CheckReport()
    extra = sorted(set(cand) - set(base))
    if extra:
        report.notes.append(f"candidate tasks without baseline (not checked): {', '.join(extra)}")
    for t in names:
        rb, rc = base[t], cand[t]
        if metrics:
            wanted = [m for m in metrics if m in rb.metrics and m in rc.metrics]
        else:
            wanted = [rb.headline] if rb.headline else []
        for m in wanted:
            report.comparisons.append(compare_tasks(rb, rc, m, max_drop=max_drop, alpha=alpha,
                                                    n_boot=n_boot, seed=seed, method=method))
    if not report.comparisons:
        raise CheckError("nothing to compare: no selected metric present in both runs")
    return report


def _fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def format_report(report: CheckReport, max_drop: float, alpha: float) -> str:
    """A short plain-text table (tabulate) plus the verdict line."""
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
    text = tabulate(rows, headers=head, tablefmt="simple", disable_numparse=True)
    bad = [f"{c.task}/{c.metric}" for c in report.comparisons if c.regression]
    verdict = (f"FAIL: significant drop > {max_drop:g} in {', '.join(bad)}" if bad
               else f"PASS: no metric dropped by more than {max_drop:g} with p < {alpha:g}")
    return "\n".join([text, *report.notes, verdict])
