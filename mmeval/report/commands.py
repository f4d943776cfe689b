"""Click commands of the reporting layer: ``report`` (paper, ablation, efficiency, html, compare) and ``check``.

The main CLI attaches them with ``cli.add_command(report)`` and ``cli.add_command(check)``.
Exit codes of ``check``: 0 pass, 1 regression (lost coverage or a significant drop), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path

import click

from mmeval.errors import MMEvalError
from mmeval.report.loading import ResultError, load_results
from mmeval.report.render import write_texts


def _split(values: tuple[str, ...] | str | None) -> list[str]:
    """Accept 'a,b' and repeated options alike."""
    if not values:
        return []
    if isinstance(values, str):
        values = (values,)
    return [x.strip() for v in values for x in v.split(",") if x.strip()]


def _fail(msg: str, code: int = 2) -> None:
    click.echo(f"error: {msg}", err=True)
    click.get_current_context().exit(code)


@click.group(name="report")
def report() -> None:
    """Paper tables, ablation grids, efficiency plots, an HTML page and paired comparisons from result files.

    \b
    Examples:
      mmeval report paper --paper vl-mamba --results results --out reports
      mmeval report paper --paper cobra --version v1
      mmeval report ablation --paper vl-mamba --results results
      mmeval report ablation --axes encoder,mmc,scan --metrics pope,gqa
      mmeval report efficiency --results results --out reports
      mmeval report html --results results --out reports --data data
      mmeval report compare --a results/run_a --b results/run_b --task pope
    """


@report.command(name="paper")
@click.option("--paper", "papers", required=True, multiple=True,
              type=click.Choice(["vl-mamba", "cobra"], case_sensitive=False),
              help="Which paper's main table (repeatable).")
@click.option("--version", "version", default=None,
              help="Paper version: cobra v4 (default: arXiv v4 / AAAI 2025, the released checkpoint's table) "
                   "or v1 (arXiv v1, March 2024); vl-mamba has one version.")
@click.option("--results", "results", default="results", show_default=True,
              type=click.Path(path_type=Path), help="Results root (<results>/<run>/<task>.json).")
@click.option("--out", "out", default="reports", show_default=True, type=click.Path(path_type=Path),
              help="Directory for <paper>[_<version>]_main.md/.csv/.tex.")
@click.option("--ci", is_flag=True, help="Show bootstrap 95% CIs of measured cells.")
@click.option("--published-dir", type=click.Path(path_type=Path), default=None,
              help="Override results/published/ (default: the one in this checkout).")
@click.option("--quiet", is_flag=True, help="Do not print the Markdown table.")
def paper_cmd(papers, version, results, out, ci, published_dir, quiet) -> None:
    """Render a paper's main table: all published rows plus our measured rows.

    A measured row uses only result files with the paper's protocol (VL-Mamba: llava,
    Cobra: prismatic); each run is one row, marked with run, checkpoint hash and protocol.
    A missing result is an empty cell.  A cell not computed on the paper's data release, split,
    protocol or prompt is marked (†k) and footnote k says what differs.

    \b
    Example:
      mmeval report paper --paper cobra --results results --out reports --ci
      -> reports/cobra_v4_main.md, reports/cobra_v4_main.csv, reports/cobra_v4_main.tex
      mmeval report paper --paper cobra --version v1   -> reports/cobra_v1_main.*
      mmeval report paper --paper vl-mamba             -> reports/vl_mamba_main.*
    """
    from mmeval.report.paper_table import write_paper

    res = results if results.exists() else None
    if res is None:
        click.echo(f"note: {results} does not exist; rendering published rows only", err=True)
    for p in papers:
        try:
            paths = write_paper(p.lower(), res, out, ci=ci, published_dir=published_dir, version=version)
        except (ResultError, OSError, KeyError, ValueError, MMEvalError) as e:
            _fail(str(e))
        if not quiet:
            click.echo(paths[0].read_text())
        click.echo("wrote " + ", ".join(str(x) for x in paths), err=True)


@report.command(name="ablation")
@click.option("--paper", "paper", default=None, type=click.Choice(["vl-mamba", "cobra"], case_sensitive=False),
              help="Render the paper's ablation tables (VL-Mamba 2-5, Cobra v4 5 and 7) with our runs of each "
                   "configuration beside the paper's row, intervals, and whether the paper's ranking holds.")
@click.option("--table", "tables", multiple=True, help="With --paper: only these table numbers (e.g. 4,5).")
@click.option("--axes", multiple=True, help="Without --paper: model.args keys forming the rows, e.g. encoder,mmc,scan.")
@click.option("--metrics", multiple=True,
              help="Without --paper: columns, task (its headline) or task:metric, e.g. pope,gqa,pope:accuracy. "
                   "Default: all tasks.")
@click.option("--results", "results", multiple=True, type=click.Path(path_type=Path),
              help="Results roots, run dirs or task files (repeatable). Default: results.")
@click.option("--protocol", default=None, help="Without --paper: only results with this protocol.")
@click.option("--out", "out", default=None, type=click.Path(path_type=Path),
              help="Also write the tables here (ablation_<axes>.* or <paper>_ablations.*, md/csv/tex).")
@click.option("--published-dir", type=click.Path(path_type=Path), default=None,
              help="Override results/published/ (default: the one in this checkout).")
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "tex"]), default="md", show_default=True)
def ablation_cmd(paper, tables, axes, metrics, results, protocol, out, published_dir, fmt) -> None:
    """Ablation tables: the paper's (--paper), or a pivot of runs over their model arguments (--axes).

    With --paper, each published row is followed by the measured runs whose configuration matches
    it axis by axis (VL-Mamba: encoder, mmc, scan, llm; Cobra: vision, projector, llm, epochs,
    pre-alignment, from model.config / --model-args projector=, llm=, model=), with 95% intervals;
    a last row says per column whether the paper's ranking holds within the intervals.  Without it,
    the best value per column is in bold.

    \b
    Examples:
      mmeval report ablation --paper vl-mamba --results results --out reports
      mmeval report ablation --paper cobra --table 7
      mmeval report ablation --axes encoder,mmc,scan --metrics pope,gqa,mme --protocol llava
    """
    from mmeval.report.render import RENDERERS

    if paper:
        _paper_ablation(paper.lower(), _split(tables), list(results), out, published_dir, fmt)
        return
    from mmeval.report.ablation import build_grid, grid_table

    ax = _split(axes)
    if not ax:
        _fail("give --paper vl-mamba|cobra or --axes (model.args keys), e.g. --axes encoder,mmc,scan")
    try:
        rs = load_results(list(results) or ["results"])
    except ResultError as e:
        _fail(str(e))
    table = grid_table(build_grid(rs, ax, _split(metrics) or None, protocol))
    if not table.rows:
        click.echo("note: no run has any of the requested metrics", err=True)
    click.echo(RENDERERS[fmt](table), nl=False)
    if out:
        paths = write_texts(out, "ablation_" + "_".join(ax), {k: f(table) for k, f in RENDERERS.items()})
        click.echo("wrote " + ", ".join(map(str, paths)), err=True)


def _paper_ablation(paper: str, tables: list[str], results: list[Path], out: Path | None,
                    published_dir: Path | None, fmt: str) -> None:
    from mmeval.report.ablation import ablation_output_stem, paper_ablation, render_paper_ablation

    roots = results or [Path("results")]
    present = [r for r in roots if r.exists()]
    if len(present) < len(roots):
        missing = ", ".join(str(r) for r in roots if not r.exists())
        if results:
            _fail(f"no such results path: {missing}")
        click.echo(f"note: {missing} does not exist; rendering published rows only", err=True)
    try:
        pa = paper_ablation(paper, present or None, tables or None, published_dir)
    except (ResultError, OSError, ValueError, MMEvalError) as e:
        _fail(str(e))
    texts = render_paper_ablation(pa)
    click.echo(texts[fmt], nl=False)
    if out:
        paths = write_texts(out, ablation_output_stem(pa.spec), texts)
        click.echo("wrote " + ", ".join(map(str, paths)), err=True)


@report.command(name="efficiency")
@click.option("--results", "results", multiple=True, type=click.Path(path_type=Path),
              help="Results roots, run dirs or task files (repeatable). Default: results.")
@click.option("--tasks", multiple=True, help="Only these tasks (comma-separated).")
@click.option("--protocol", default=None, help="Only results with this protocol.")
@click.option("--out", "out", default="reports", show_default=True, type=click.Path(path_type=Path),
              help="Directory for efficiency.md/.csv and efficiency.png.")
def efficiency_cmd(results, tasks, protocol, out) -> None:
    """Headline accuracy beside samples/s, tokens/s and peak memory (table + PNG plot).

    \b
    Example:
      mmeval report efficiency --results results --tasks pope,gqa --out reports
      -> reports/efficiency.md, reports/efficiency.csv, reports/efficiency.png
    """
    from mmeval.report.efficiency import (
        efficiency_rows,
        efficiency_table,
        plot_efficiency,
    )
    from mmeval.report.render import to_csv, to_markdown

    try:
        rs = load_results(list(results) or ["results"])
    except ResultError as e:
        _fail(str(e))
    rows = efficiency_rows(rs, _split(tasks) or None, protocol)
    table = efficiency_table(rows)
    md = to_markdown(table)
    click.echo(md, nl=False)
    paths = write_texts(out, "efficiency", {"md": md, "csv": to_csv(table)})
    paths.append(plot_efficiency(rows, out / "efficiency.png"))
    click.echo("wrote " + ", ".join(map(str, paths)), err=True)


@report.command(name="html")
@click.option("--results", "results", default="results", show_default=True, type=click.Path(path_type=Path),
              help="Results root (<results>/<run>/<task>.json).")
@click.option("--out", "out", default="reports", show_default=True, type=click.Path(path_type=Path),
              help="Directory for report.html.")
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="The runs' data folder (as given to `mmeval run --data`), for the samples' images. "
                   "Default: the folder each result file records, if any.")
@click.option("--task-args", default="", help="TASK.OPTION=VALUE,... as given to `mmeval run` (e.g. vqav2.split=val), "
                                              "so the images come from the same documents.")
@click.option("--samples-per-task", default=24, show_default=True, type=click.IntRange(min=0),
              help="How many samples of each run and task the page embeds.")
@click.option("--no-images", is_flag=True, help="Do not read the data for thumbnails.")
@click.option("--axes", multiple=True, help="model.args keys of the ablation grids (default: those that differ).")
@click.option("--published-dir", type=click.Path(path_type=Path), default=None,
              help="Override results/published/ (default: the one in this checkout).")
def html_cmd(results, out, data, task_args, samples_per_task, no_images, axes, published_dir) -> None:
    """One self-contained HTML page: paper tables, ablation grids, per-category bars, accuracy against
    speed and memory, and a browser of samples with their images (no network needed to view it).

    \b
    Example:
      mmeval report html --results results/runs --out reports --data data/
      -> reports/report.html
    """
    from mmeval.cli import parse_task_args
    from mmeval.report.html import ReportInputs, write_report

    if not results.exists():
        click.echo(f"note: {results} does not exist; the page says so and shows the published rows only", err=True)
    if data is not None and not data.is_dir():
        _fail(f"--data {data}: no such directory")
    inp = ReportInputs(results=results, data=data, task_args=parse_task_args(task_args), per_task=samples_per_task,
                       images=not no_images, axes=_split(axes) or None, published_dir=published_dir)
    try:
        path = write_report(inp, out)
    except (ResultError, OSError, KeyError, ValueError) as e:
        _fail(str(e))
    click.echo(f"wrote {path}", err=True)


def _task_result(path: Path, task: str):
    from mmeval.report.check import CheckError
    from mmeval.report.loading import load_run, load_task_result

    if path.is_file():
        r = load_task_result(path)
        if r.task != task:
            raise CheckError(f"{path} is task {r.task}, not {task}")
        return r
    runs = load_run(path)
    if task not in runs:
        raise CheckError(f"missing result file: {path / (task + '.json')}")
    return runs[task]


@report.command(name="compare")
@click.option("--a", "a", required=True, type=click.Path(path_type=Path), help="Run dir (or task json) A.")
@click.option("--b", "b", required=True, type=click.Path(path_type=Path), help="Run dir (or task json) B.")
@click.option("--task", required=True, help="Task to compare, e.g. pope.")
@click.option("--metric", default=None, help="Metric (default: the task's headline).")
@click.option("--n-boot", default=2000, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--alpha", default=0.05, show_default=True, type=float)
@click.option("--method", type=click.Choice(["auto", "aggregate", "mean"]), default="auto", show_default=True,
              help="aggregate: recompute the task's metric per resample; mean: mean per-sample score.")
def compare_cmd(a, b, task, metric, n_boot, seed, alpha, method) -> None:
    """Paired comparison of two runs on the same samples (B minus A).

    Paired bootstrap over common doc_ids of the task's metric (recomputed per resample when the
    task is registered) or of the mean per-sample score, plus McNemar's exact test (0/1 scores)
    or a sign test.

    \b
    Example:
      mmeval report compare --a results/cobra_base --b results/cobra_ft --task pope
    """
    from tabulate import tabulate

    from mmeval.report.check import CheckError, compare_tasks

    try:
        c = compare_tasks(_task_result(a, task), _task_result(b, task), metric,
                          alpha=alpha, n_boot=n_boot, seed=seed, method=method)
    except (CheckError, ResultError) as e:
        _fail(str(e))
    unit = "~" if c.approx_scale else ""
    rows = [
        ["task / metric", f"{c.task} / {c.metric} (per-sample score: {c.field})"],
        ["common samples", f"{c.n} (A usable {c.n_a}, B usable {c.n_b})"],
        ["A (file)", "" if c.value_a is None else f"{c.value_a:.2f}"],
        ["B (file)", "" if c.value_b is None else f"{c.value_b:.2f}"],
        ["B - A (paired mean)", f"{unit}{c.diff:+.2f}"],
        [f"{1 - alpha:.0%} CI (paired bootstrap)", f"[{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]"],
        ["bootstrap p (two-sided)", f"{c.p_two_sided:.3g}"],
        [f"{c.test} p (two-sided)", f"{c.sign_p:.3g}"],
    ]
    click.echo(tabulate(rows, tablefmt="simple", disable_numparse=True))


@click.command(name="check")
@click.option("--baseline", required=True, type=click.Path(path_type=Path),
              help="Baseline run dir (or task json), e.g. results/baselines/vl-mamba-pope200.")
@click.option("--candidate", required=True, type=click.Path(path_type=Path), help="Candidate run dir (or task json).")
@click.option("--max-drop", default=0.5, show_default=True, type=float,
              help="Tolerated drop, >= 0, in metric units (percentage points for accuracy-like metrics).")
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="One-sided significance level, strictly between 0 and 1.")
@click.option("--metrics", multiple=True,
              help="Metrics to gate (comma-separated); each must be a metric of both runs of every gated task. "
                   "Default: each task's headline.")
@click.option("--tasks", multiple=True, help="Tasks to gate (comma-separated). Default: all baseline tasks.")
@click.option("--n-boot", default=2000, show_default=True, type=int,
              help="Bootstrap resamples; at least 100, and more than 1/alpha - 1.")
@click.option("--seed", default=0, show_default=True, type=int, help="Bootstrap seed (>= 0).")
@click.option("--method", type=click.Choice(["auto", "aggregate", "mean"]), default="auto", show_default=True,
              help="aggregate: recompute the task's metric per resample; mean: mean per-sample score.")
def check(baseline, candidate, max_drop, alpha, metrics, tasks, n_boot, seed, method) -> None:
    """Gate a candidate run on a baseline run of the same documents.

    \b
    For each gated task:
    1. coverage: a baseline doc is unscored when its sample errored, has no
       score, or is missing from the samples file. The candidate FAILS when it
       leaves more of the baseline's docs unscored than the baseline did.
       Docs or tasks only the candidate has are stated, not compared.
    2. metrics (--metrics, default the headline), paired on the docs both
       runs scored: a metric FAILS when it dropped by more than --max-drop
       and the one-sided bootstrap p-value of "drop <= max-drop" is below
       --alpha.

    \b
    Exit codes:
      0  PASS: no coverage loss and no significant drop (noise and
         improvements pass)
      1  FAIL: a coverage loss or a significant drop (lines say which)
      2  bad input, one line: an option out of range, an unknown task or
         metric, a missing result or samples file, different protocols, no
         common doc_ids, or NaN/inf in a gated metric, a per-sample score or
         a computed interval or p-value

    \b
    Example:
      mmeval check --baseline results/baselines/vl-mamba-llava-200 \\
                   --candidate results/ci/candidate --max-drop 0.5 --tasks pope,gqa
    """
    from mmeval.report.check import CheckError, format_report, run_check

    try:
        rep = run_check(baseline, candidate, max_drop=max_drop, alpha=alpha, metrics=_split(metrics) or None,
                        tasks=_split(tasks) or None, n_boot=n_boot, seed=seed, method=method)
    except CheckError as e:
        _fail(str(e))
    click.echo(format_report(rep, max_drop, alpha))
    click.get_current_context().exit(1 if rep.failed else 0)
