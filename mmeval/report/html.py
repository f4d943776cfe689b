"""One self-contained HTML page of a results folder: ``mmeval report html --results DIR --out reports``.

Sections: the papers' main tables (published rows beside measured ones, with intervals and
comparability marks), ablation grids, per-category bars with intervals, accuracy against speed
and memory, and a browser of samples with thumbnails of their images.  The page needs no
network: CSS and JS are inline (``html_assets``), images are data URIs.

The numbers come from the table modules (``paper_table``, ``ablation``, ``efficiency``); this
module only turns their data into HTML.  Paper cells are ``cells.Cell`` (text, value, interval,
comparability mark and footnote); :func:`table_html` renders any ``render.Table`` with them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.report.ablation import Grid, ablation_display, build_grid, grid_table, paper_ablation
from mmeval.report.cells import Cell
from mmeval.report.comparability import task_options
from mmeval.report.efficiency import AXES, efficiency_rows, efficiency_table
from mmeval.report.html_assets import CSS, JS
from mmeval.report.loading import ResultError, TaskResult, as_number, format_value, load_results, load_samples
from mmeval.report.paper_table import PaperTable, display_table, paper_table
from mmeval.report.published import ABLATION_TABLES, MAIN_TABLES, paper_versions
from mmeval.report.render import Table, footnote_mark

REPORT_NAME = "report.html"
SERIES_COLOURS = ("#3b6fb6", "#e07b39", "#3a9a5b", "#a44ca8", "#c9a227", "#5b6b7d", "#d1495b", "#2a9d8f")
#: per-sample fields that name a sample's category, in order of preference (POPE split, MME subtask,
#: MMBench category, VSR relation, VQA answer type)
CATEGORY_FIELDS = ("category", "relation", "answer_type")
THUMB_PX = 256  # longest side of an embedded thumbnail (shown at 128 px; sharp on high-DPI screens)


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


# =========================================================================== tables
def table_html(t: Table, cells: dict[tuple[int, int], Cell] | None = None, measured: Iterable[int] = (),
               cls: str = "t") -> str:
    """A render.Table as HTML: bold = best, numeric columns right-aligned, marks as superscripts with
    their footnotes below, and -- where ``cells`` gives a position's :class:`~mmeval.report.cells.Cell`
    -- the value with its 95% interval under it.  ``measured`` rows are tinted; a "source" column is a pill."""
    cells, measured = cells or {}, set(measured)
    head = "".join(f'<th class="num">{esc(h)}</th>' if j in t.numeric else f"<th>{esc(h)}</th>"
                   for j, h in enumerate(t.header))
    body = []
    for i, row in enumerate(t.rows):
        tds = []
        for j, text in enumerate(row):
            cell = cells.get((i, j))
            inner = esc(cell.text if cell is not None else text)
            if (i, j) in t.bold and inner:
                inner = f"<strong>{inner}</strong>"
            if t.header[j] == "source" and text:
                inner = f'<span class="pill{" measured" if i in measured else ""}">{inner}</span>'
            mark = t.marks.get((i, j), "")
            title = ""
            if mark:
                inner += f'<sup class="mark">{esc(mark)}</sup>'
                title = f' title="{esc(cell.footnote)}"' if cell is not None and cell.footnote else ""
            if cell is not None and cell.text and cell.interval is not None:
                lo, hi = cell.interval
                inner += f'<span class="ci">[{format_value(lo)}, {format_value(hi)}]</span>'
            tds.append(f'<td class="num"{title}>{inner}</td>' if j in t.numeric else f"<td{title}>{inner}</td>")
        classes = (["measured"] if i in measured else []) + (["rule"] if i in t.rules_before and i else [])
        body.append(f'<tr class="{" ".join(classes)}">{"".join(tds)}</tr>' if classes else f"<tr>{''.join(tds)}</tr>")
    cap = f"<caption>{esc(t.caption)}</caption>" if t.caption else ""
    notes = [f'<li><sup class="mark">{esc(footnote_mark(k))}</sup> {esc(n)}</li>' for k, n in enumerate(t.footnotes, 1)]
    notes += [f"<li>{esc(n)}</li>" for n in t.notes]
    return (f'<div class="scroll"><table class="{cls}">{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>'
            + (f'<ul class="notes">{"".join(notes)}</ul>' if notes else ""))


# =========================================================================== paper tables
def paper_table_html(pt: PaperTable) -> str:
    """One paper version's main table: the printed rows, then our measured rows with their intervals
    and comparability marks (the cells ``paper_table`` computed; ``display_table`` lays them out)."""
    t = display_table(pt)
    first = t.header.index(pt.spec.metric_columns[0]) if pt.spec.metric_columns else 0
    cells = {(i, first + j): r.cells[c] for i, r in enumerate(pt.rows) for j, c in enumerate(pt.spec.metric_columns)
             if r.source == "measured"}
    measured = {i for i, r in enumerate(pt.rows) if r.source == "measured"}
    caption, t.caption = t.caption, ""
    msg = ""
    if not measured:
        msg = (f'<p class="notice empty">No measured row: no run has any of this table\'s tasks '
               f"({esc(', '.join(sorted(set(pt.spec.columns.values()))))}) under protocol "
               f"{esc(pt.spec.protocol)}. Only the published rows are shown.</p>")
    t.notes.append("Measured cells show the bootstrap 95% interval below the value, where the result file has one; "
                   "hover a marked cell for what differs from the paper.")
    return f'<h3 id="paper-{esc(pt.spec.stem)}">{esc(caption)}</h3>{msg}{table_html(t, cells, measured, "t paper")}'


def papers_html(results: Path | None, published_dir: Path | None) -> str:
    """Every paper's main table in every version we hold (the default version first)."""
    return "".join(paper_table_html(paper_table(paper, results, version, published_dir))
                   for paper in MAIN_TABLES for version in paper_versions(paper))


def paper_ablations_html(results: Path | None, published_dir: Path | None) -> str:
    """The papers' ablation tables, each published row with our runs of its configuration beneath
    (``ablation.paper_ablation``); open when a run matches, folded otherwise."""
    parts = []
    for paper in ABLATION_TABLES:
        pa = paper_ablation(paper, results, published_dir=published_dir)
        for table in pa.tables:
            t = ablation_display(pa, table)
            first = 2 + len(table.config_columns)  # ablation_display: axis, config..., source, metrics..., runs
            cells = {(i, first + j): r.cells[c] for i, r in enumerate(table.rows) for j, c in enumerate(table.columns)
                     if r.source == "measured"}
            for (i, j), cell in cells.items():  # the renderer puts the interval under the value
                t.rows[i][j] = cell.text
            measured = {i for i, r in enumerate(table.rows) if r.source == "measured"}
            t.caption = ""  # the summary line says it
            state = " open" if measured else ""
            count = f"{len(measured)} measured row(s)" if measured else "no run matches a configuration"
            parts.append(f"<details{state}><summary>{esc(pa.caption(table))} — {count}</summary>"
                         f"{table_html(t, cells, measured, 't paper-ablation')}</details>")
    return "".join(parts)


# =========================================================================== ablation grids
@dataclass
class AblationGroup:
    model: str
    protocol: str
    runs: list[str]
    grid: Grid


def varying_axes(results: Sequence[TaskResult]) -> list[str]:
    """model.args keys whose value differs between the runs.  Keys holding paths (checkpoints,
    tokenizers) are left out when something else varies: they name weights, not a design choice."""
    per_run: dict[str, dict[str, Any]] = {r.run: r.model_args for r in results}
    keys = sorted({k for args in per_run.values() for k in args})
    varying = [k for k in keys if len({str(a.get(k)) for a in per_run.values()}) > 1]
    designs = [k for k in varying if not any("/" in str(a.get(k, "")) for a in per_run.values())]
    return designs or varying


def ablation_groups(results: Sequence[TaskResult],
                    axes: list[str] | None = None) -> tuple[list[AblationGroup], list[str]]:
    """One ablation grid per (model, protocol) with two or more runs, and sentences for what has none."""
    messages: list[str] = []
    by_model: dict[str, list[TaskResult]] = defaultdict(list)
    for r in results:
        by_model[r.model_name or "(unnamed model)"].append(r)
    runs_of = {m: sorted({r.run for r in rs}) for m, rs in by_model.items()}
    if not results:
        return [], ["No runs: there is nothing to pivot."]
    if all(len(v) < 2 for v in runs_of.values()):
        listing = "; ".join(f"{m}: {', '.join(v)}" for m, v in sorted(runs_of.items()))
        if len(runs_of) > 1:
            messages.append(f"No ablation grid: the runs are of different models ({listing}) and no model has a "
                            "second run to compare with (no baseline). An ablation grid compares runs of one model "
                            "that differ in model arguments (e.g. encoder, mmc, scan).")
        else:
            messages.append(f"No ablation grid: one run only ({listing}); an ablation grid compares runs of one "
                            "model that differ in model arguments.")
        return [], messages
    groups = []
    for model, rs in sorted(by_model.items()):
        if len(runs_of[model]) < 2:
            messages.append(f"{model}: one run only ({runs_of[model][0]}), not in a grid "
                            "(no baseline to compare with).")
            continue
        ax = list(axes) if axes else varying_axes(rs)
        if not ax:
            messages.append(f"{model}: its runs ({', '.join(runs_of[model])}) have the same model arguments; "
                            "nothing to pivot (pass --axes to choose keys).")
            continue
        for protocol in sorted({r.protocol for r in rs}):
            sel = [r for r in rs if r.protocol == protocol]
            grid = build_grid(sel, ax, None, protocol)
            if grid.keys:
                groups.append(AblationGroup(model, protocol, sorted({r.run for r in sel}), grid))
    return groups, messages


def _shade(t: float) -> tuple[str, str]:
    """Background and text colour for a position t in [0, 1] on a pale-to-blue scale."""
    lo, hi = (238, 244, 251), (33, 102, 172)
    rgb = tuple(round(a + (b - a) * t) for a, b in zip(lo, hi, strict=True))
    return "#" + "".join(f"{c:02x}" for c in rgb), ("#fff" if t > 0.55 else "#1f2933")


def _ablation_html(g: AblationGroup) -> str:
    table = grid_table(g.grid)
    n_axes = len(g.grid.axes)
    scale: dict[str, tuple[float, float]] = {}
    for col in g.grid.columns:
        vals = [g.grid.values[(k, col)] for k in g.grid.keys if (k, col) in g.grid.values]
        if vals:
            scale[col] = (min(vals), max(vals))
    head = "".join(f"<th>{esc(h)}</th>" if j < n_axes else f'<th class="num">{esc(h)}</th>'
                   for j, h in enumerate(table.header))
    body = []
    for i, (key, row) in enumerate(zip(g.grid.keys, table.rows, strict=True)):
        tds = [f"<td>{esc(c)}</td>" for c in row[:n_axes]]
        for j, col in enumerate(g.grid.columns):
            text = row[n_axes + j]
            v = g.grid.values.get((key, col))
            if v is None:
                tds.append('<td class="num" title="no result">&nbsp;</td>')
                continue
            lo, hi = scale[col]
            bg, fg = _shade(0.0 if hi == lo else (v - lo) / (hi - lo))  # all equal: no contrast to show
            inner = f"<strong>{esc(text)}</strong>" if (i, n_axes + j) in table.bold else esc(text)
            run = g.grid.runs.get((key, col), "")
            tds.append(f'<td class="num" style="background:{bg};color:{fg}" title="run {esc(run)}">{inner}</td>')
        body.append(f"<tr>{''.join(tds)}</tr>")
    notes = "".join(f"<li>{esc(n)}</li>" for n in table.notes)
    return (f"<h3>{esc(g.model)} — protocol {esc(g.protocol)} ({len(g.runs)} runs)</h3>"
            f'<div class="scroll"><table class="t grid"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>'
            f'<ul class="notes"><li>Rows: the runs\' values of {esc(", ".join(g.grid.axes))} (model arguments); '
            "columns: each benchmark's headline metric. Colour runs from the lowest to the highest value within each "
            f"benchmark; bold is the best; an empty cell has no result. Hover a cell for its run.</li>{notes}</ul>")


# =========================================================================== per-category bars
@dataclass
class Series:
    run: str
    label: str
    values: dict[str, float] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class Chart:
    name: str
    categories: list[str]
    series: list[Series]


def category_charts(results: Sequence[TaskResult]) -> list[Chart]:
    """Charts of ``<a>/<b>`` metrics of one task's results (one series per run).

    Two spellings occur: ``<category>/<metric>`` (POPE ``random/f1``, MME ``count/score``) and
    ``<family>/<category>`` (MMBench ``category/attribute_recognition``).  A suffix shared by two or
    more prefixes is a metric (one chart per metric, categories = prefixes); otherwise the prefix
    is the chart and the suffixes its categories.  Intervals come from ``ci95`` under the same key.
    """
    pairs: list[tuple[str, str]] = []
    for r in results:
        for k, v in r.metrics.items():
            if k.count("/") == 1 and as_number(v) is not None and tuple(k.split("/")) not in pairs:
                pairs.append(tuple(k.split("/")))  # type: ignore[arg-type]
    prefixes_of: dict[str, list[str]] = defaultdict(list)
    for p, s in pairs:
        prefixes_of[s].append(p)
    charts: dict[str, list[tuple[str, str]]] = {}  # chart name -> [(category, metric key)]
    for p, s in pairs:
        name, cat = (s, p) if len(prefixes_of[s]) > 1 else (p, s)
        charts.setdefault(name, []).append((cat, f"{p}/{s}"))
    out = []
    for name, members in charts.items():
        series = []
        for r in results:
            se = Series(r.run, f"{r.run} ({r.protocol})")
            for cat, key in members:
                v = as_number(r.metrics.get(key))
                if v is None:
                    continue
                se.values[cat] = v
                ci = r.ci(key)
                if ci is not None:
                    se.ci[cat] = ci
            if se.values:
                series.append(se)
        out.append(Chart(name, [c for c, _ in members], series))
    head = results[0].headline if results else None
    order = [head, "score", "accuracy", "acc", "f1", "category"]
    rank: dict[str, int] = {}
    for i, n in enumerate(order):
        if n:
            rank.setdefault(n, i)
    return sorted(out, key=lambda c: rank.get(c.name, len(order)))


def _nice_max(x: float) -> float:
    if x <= 100:
        return 100.0
    step = 10 ** math.floor(math.log10(x))
    return math.ceil(x / step) * step


def _chart_html(chart: Chart, hidden: bool, colours: dict[str, str]) -> str:
    top = max([v for s in chart.series for v in s.values.values()]
              + [hi for s in chart.series for _, hi in s.ci.values()] + [1.0])
    xmax = _nice_max(top)
    rows = []
    for cat in chart.categories:
        lines = []
        for s in chart.series:
            v = s.values.get(cat)
            colour = colours.get(s.run, SERIES_COLOURS[0])
            if v is None:
                lines.append('<div class="series"><div class="track"></div><span class="val">no value</span></div>')
                continue
            w = max(0.0, min(100.0, 100 * v / xmax))
            whisker, ci_text = "", ""
            if cat in s.ci:
                lo, hi = s.ci[cat]
                left, right = 100 * max(lo, 0) / xmax, 100 * min(hi, xmax) / xmax
                whisker = f'<div class="whisker" style="left:{left:.2f}%;width:{max(right - left, 0.3):.2f}%"></div>'
                ci_text = f'<span class="ci"> [{format_value(lo)}, {format_value(hi)}]</span>'
            lines.append(f'<div class="series" title="{esc(s.label)}"><div class="track"><div class="bar" '
                         f'style="width:{w:.2f}%;background:{colour}"></div>{whisker}</div>'
                         f'<span class="val">{format_value(v)}{ci_text}</span></div>')
        rows.append(f'<div class="cat"><span class="cat-label" title="{esc(cat)}">{esc(cat)}</span>'
                    f"<div>{''.join(lines)}</div></div>")
    ticks = "".join(f"<span>{format_value(xmax * t / 4, 0)}</span>" for t in range(5))
    hide = " hidden" if hidden else ""
    return (f'<div class="chart" data-chart="{esc(chart.name)}"{hide}><div class="bars">{"".join(rows)}</div>'
            f'<div class="axis"><span></span><span class="ticks">{ticks}</span><span></span></div></div>')


def _category_section(results: Sequence[TaskResult], colours: dict[str, str]) -> str:
    by_task: dict[str, list[TaskResult]] = defaultdict(list)
    for r in results:
        by_task[r.task].append(r)
    cards = []
    for task in sorted(by_task):
        rs = sorted(by_task[task], key=lambda r: (r.protocol, r.run))
        charts = [c for c in category_charts(rs) if c.series]
        if not charts:
            continue
        legend = "".join(f'<span><span class="swatch" style="background:{colours.get(s.run, SERIES_COLOURS[0])}">'
                         f"</span>{esc(s.label)}</span>" for s in charts[0].series)
        options = "".join(f'<option value="{esc(c.name)}">{esc(c.name)}</option>' for c in charts)
        select = f'<select class="chart-select" aria-label="metric">{options}</select>' if len(charts) > 1 else \
            f"<span class=\"pill\">{esc(charts[0].name)}</span>"
        body = "".join(_chart_html(c, i > 0, colours) for i, c in enumerate(charts))
        if not any(s.ci for c in charts for s in c.series):
            legend += '<span class="ci">(the result files record no per-category interval)</span>'
        cards.append(f'<div class="chart-card" data-task="{esc(task)}"><h3><span>{esc(task)}</span>{select}</h3>'
                     f'<div class="legend">{legend}</div>{body}</div>')
    if not cards:
        return '<p class="notice empty">No per-category metrics: no result file has metrics named like ' \
               "<code>category/metric</code>.</p>"
    return (f'<p class="lead">Metrics the result files hold per category (POPE splits, MME subtasks, MMBench '
            f"categories, ...): one bar per run; whiskers = bootstrap 95% interval where the result file records one "
            f'(<code>ci95</code>).</p><div class="chart-row">{"".join(cards)}</div>')


# =========================================================================== efficiency
def _ticks(lo: float, hi: float, n: int = 4) -> tuple[list[float], int]:
    """Round tick values covering [lo, hi], and the decimals that print them exactly."""
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    decimals = next(d for d in range(12) if abs(round(step, d) - step) < 1e-9 * step)
    return [first + i * step for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)], decimals


def _span(values: Sequence[float]) -> tuple[float, float]:
    """The data range with some air; not below zero when no value is (rates, throughput, memory)."""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.12 if hi > lo else max(abs(hi) * 0.1, 1.0)
    return (lo - pad if lo < 0 else max(lo - pad, 0.0)), hi + pad


def scatter_svg(points: Sequence[tuple[float, float, str, str]], xlabel: str, ylabel: str,
                width: int = 300, height: int = 200) -> str:
    """A small inline-SVG scatter plot: (x, y, label, colour) points, labelled, with round ticks."""
    left, right, top, bottom = 46, 22, 10, 34
    xs, ys = _span([p[0] for p in points]), _span([p[1] for p in points])
    (xt, xd), (yt, yd) = _ticks(*xs), _ticks(*ys)
    x0, x1, y0, y1 = min(xt[0], xs[0]), max(xt[-1], xs[1]), min(yt[0], ys[0]), max(yt[-1], ys[1])
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    out = [f'<svg class="scatter" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{esc(ylabel)} against {esc(xlabel)}">',
           f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafbfc" stroke="#d5dae1"/>']
    for t in xt:
        if x0 <= t <= x1:
            out.append(f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{top}" y2="{top + ph}" stroke="#eceff3"/>'
                       f'<text x="{px(t):.1f}" y="{top + ph + 13}" text-anchor="middle">{t:.{xd}f}</text>')
    for t in yt:
        if y0 <= t <= y1:
            out.append(f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eceff3"/>'
                       f'<text x="{left - 4}" y="{py(t) + 3:.1f}" text-anchor="end">{t:.{yd}f}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle" class="lab">{esc(xlabel)}</text>'
               f'<text transform="translate(11 {top + ph / 2}) rotate(-90)" text-anchor="middle" class="lab">'
               f"{esc(ylabel)}</text>")
    placed: list[tuple[float, float, float]] = []  # label boxes so far: (left, right, baseline)
    for x, y, label, colour in points:
        anchor = "end" if px(x) + 6 + 6 * len(label) > width - 2 else "start"  # to the right unless clipped
        lx = px(x) + (-6 if anchor == "end" else 6)
        x_lo, x_hi = (lx - 6 * len(label), lx) if anchor == "end" else (lx, lx + 6 * len(label))
        ly = py(y) - 6
        while any(a < x_hi and x_lo < b and abs(ly - base) < 11 for a, b, base in placed):
            ly += 12  # one label under the other instead of on top of it
        placed.append((x_lo, x_hi, ly))
        out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4.5" fill="{colour}"><title>{esc(label)}: '
                   f"{esc(ylabel)} {format_value(y)}, {esc(xlabel)} {x:.4g}</title></circle>"
                   f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="{anchor}">{esc(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _efficiency_section(results: Sequence[TaskResult], colours: dict[str, str]) -> str:
    rows = efficiency_rows(results)
    cards = []
    for task, protocol in sorted({(e.task, e.protocol) for e in rows}):
        sel = [e for e in rows if (e.task, e.protocol) == (task, protocol) and e.value is not None]
        plots = []
        for k, (attr, label) in enumerate(AXES):
            pts = [(getattr(e, attr), e.value, e.run, colours.get(e.run, SERIES_COLOURS[0])) for e in sel
                   if getattr(e, attr) is not None]
            ylabel = sel[0].metric if sel else ""
            body = scatter_svg(pts, label, ylabel) if pts else f'<p class="notice empty">no {esc(label)} recorded</p>'
            plots.append(f'<div class="eff-plot" data-axis="{attr}"{" hidden" if k else ""}>{body}</div>')
        if sel:
            cards.append(f'<div class="eff-card"><h3>{esc(task)} <span class="pill">{esc(protocol)}</span></h3>'
                         f"{''.join(plots)}</div>")
    if not cards:
        return '<p class="notice empty">No result file has both a headline metric and timings: nothing to plot.</p>'
    options = "".join(f'<option value="{a}">{esc(label)}</option>' for a, label in AXES)
    return ('<p class="lead">Each task\'s headline metric against the runner\'s measured throughput or peak memory, '
            'one point per run (hover for values). Compare only runs measured on the same device (table below).</p>'
            f'<div class="filters"><label>x axis<select id="eff-axis">{options}</select></label></div>'
            f'<div class="eff-grid">{"".join(cards)}</div>'
            f"<details><summary>Table ({len(rows)} rows)</summary>{table_html(efficiency_table(rows))}</details>")


# =========================================================================== samples
def outcome_of(scores: dict[str, Any]) -> tuple[str, float | None]:
    """'right' (score 1), 'wrong' (0), 'partial' (VQA-style fractions) or 'unscored'; and the score."""
    c = as_number((scores or {}).get("correct"))
    if c is None:
        return "unscored", None
    if c >= 1 - 1e-9:
        return "right", c
    return ("wrong", c) if c <= 1e-9 else ("partial", c)


def category_of(scores: dict[str, Any]) -> str:
    for k in CATEGORY_FIELDS:
        v = (scores or {}).get(k)
        if v not in (None, ""):
            return str(v)
    return ""


def format_target(target: Any) -> str:
    """Lists of annotator answers (VQAv2's ten) as 'square ×10, box ×2'; anything else as text."""
    if isinstance(target, list) and target and all(isinstance(t, (str, int, float)) for t in target):
        counts = Counter(str(t) for t in target)
        return ", ".join(f"{a} ×{n}" if n > 1 else a for a, n in counts.most_common())
    if isinstance(target, (dict, list)):
        return json.dumps(target, ensure_ascii=False)
    return "" if target is None else str(target)


def pick_samples(samples: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """At most n samples, round-robin over (category, outcome) groups in file order, so every filter
    value has samples to show."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in samples:
        groups.setdefault((category_of(s.get("scores")), outcome_of(s.get("scores"))[0]), []).append(s)
    queues = [list(reversed(g)) for _, g in sorted(groups.items())]
    out: list[dict[str, Any]] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop())
    return out


@dataclass
class DocImages:
    """Where one task's images come from: doc_id -> ImageRefs, or why there are none."""

    refs: dict[str, tuple] = field(default_factory=dict)
    note: str = ""


def _task_data_dir(r: TaskResult, data: Path | None) -> tuple[Path | None, str]:
    """The task's local data folder: --data (explicit) first, then the results' recorded data source."""
    from mmeval.data.sources import task_data_dir

    if data is not None:
        return task_data_dir(r.task, data), ""
    source = (r.data.get("data") or {}).get("source") if isinstance(r.data.get("data"), dict) else None
    if source and Path(source).is_dir():
        return Path(source), ""
    if source:
        return None, (f"images not shown: the results read {r.task}'s data from {source}, which is not a local "
                      "folder here (pass --data DIR)")
    return None, f"images not shown: the results do not record where {r.task}'s data is (pass --data DIR)"


def load_doc_images(r: TaskResult, data: Path | None, task_args: dict[str, dict[str, str]]) -> DocImages:
    """The ImageRefs of a task's documents, keyed by doc_id.  Never reaches the network (no hub)."""
    from mmeval.errors import MMEvalError
    from mmeval.registry import get_task

    try:
        folder, note = _task_data_dir(r, data)
        if folder is None:
            return DocImages(note=note)
        # the options the docs were read with: as given here, else as the result file records them
        options = dict(task_args[r.task]) if r.task in task_args else dict(task_options(r) or {})
        split = (r.data.get("data") or {}).get("split") if isinstance(r.data.get("data"), dict) else None
        if split and "split" not in options:
            options["split"] = str(split)
            try:
                task = get_task(r.task, **options)
            except MMEvalError:  # the task takes no split option, or spells it differently
                options.pop("split")
                task = get_task(r.task, **options)
        else:
            task = get_task(r.task, **options)
        docs = task.load_docs(folder)
    except (MMEvalError, OSError, ValueError) as e:
        return DocImages(note=f"images not shown: {r.task}'s data could not be read: {e}")
    return DocImages(refs={d.doc_id: tuple(d.images) for d in docs}, note=f"images from {folder}")


def thumbnail(ref: Any, px: int = THUMB_PX) -> tuple[str | None, str, str]:
    """(data URI or None, status, path) for one ImageRef; a missing or unreadable file never raises."""
    from mmeval.types import ImageError

    path = ref.path or ref.source
    try:
        img = ref.load().copy()
    except ImageError as e:
        return None, ("missing" if ref.path and not Path(ref.path).is_file() else f"unreadable: {e}"), path
    finally:
        ref.release()
    img.thumbnail((px, px))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), "", path


def sample_browser_data(results: Sequence[TaskResult], per_task: int, data: Path | None = None,
                        task_args: dict[str, dict[str, str]] | None = None,
                        images: bool = True) -> dict[str, Any]:
    """The JSON the page's sample browser reads: samples (capped per run and task), images by key, notes."""
    task_args = task_args or {}
    out: dict[str, Any] = {"samples": [], "images": {}, "files": [], "per_task": per_task}
    doc_images: dict[tuple[str, str], DocImages] = {}  # (task, recorded data provenance) -> its documents' images
    for r in sorted(results, key=lambda r: (r.task, r.run)):
        entry = {"run": r.run, "task": r.task, "total": 0, "shown": 0, "note": ""}
        out["files"].append(entry)
        if not r.samples_path.is_file():
            entry["note"] = f"no samples file ({r.samples_path.name})"
            continue
        try:
            samples = load_samples(r.samples_path)
        except ResultError as e:
            entry["note"] = str(e)
            continue
        chosen = pick_samples(samples, per_task)
        entry["total"], entry["shown"] = len(samples), len(chosen)
        source = (r.task, json.dumps(r.data.get("data"), sort_keys=True, default=str))
        if images and chosen and source not in doc_images:
            doc_images[source] = load_doc_images(r, data, task_args)
        imgs = doc_images.get(source, DocImages(note="images not embedded (--no-images)"))
        entry["note"] = imgs.note
        for s in chosen:
            outcome, score = outcome_of(s.get("scores"))
            rec = {"run": r.run, "task": r.task, "doc_id": str(s.get("doc_id", "")),
                   "category": category_of(s.get("scores")), "outcome": outcome,
                   "score": None if score is None else round(score, 3),
                   "prompt": str(s.get("prompt", "")), "prediction": str(s.get("prediction", "")),
                   "target": format_target(s.get("target")),
                   "candidate_probs": {str(k): float(v) for k, v in (s.get("candidate_probs") or {}).items()
                                       if as_number(v) is not None} or None,
                   "image": None, "image_status": "", "image_path": ""}
            refs = imgs.refs.get(rec["doc_id"]) if imgs.refs else None
            if refs:
                key = refs[0].content_key() if (refs[0].data is not None or
                                                (refs[0].path and Path(refs[0].path).is_file())) else None
                if key and key in out["images"]:
                    rec["image"] = key
                else:
                    uri, status, path = thumbnail(refs[0])
                    if uri is not None:
                        out["images"][key] = uri
                        rec["image"] = key
                    rec["image_status"], rec["image_path"] = status, path
            elif imgs.refs:
                rec["image_status"] = "not in the data: no document with this doc_id"
            else:
                rec["image_status"] = imgs.note or "no image"
            out["samples"].append(rec)
    return out


def _json_for_script(obj: Any) -> str:
    """JSON safe inside <script>: no '<' (so no '</script>'), no raw U+2028/9."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _samples_section(browser: dict[str, Any]) -> str:
    files = browser["files"]
    if not browser["samples"]:
        why = "; ".join(f"{f['run']}/{f['task']}: {f['note'] or 'empty'}" for f in files) or "no runs"
        return f'<p class="notice empty">No samples to browse ({esc(why)}).</p>'
    rows = [[f["task"], f["run"], str(f["total"]), str(f["shown"]), f["note"]] for f in files]
    table = Table(header=["task", "run", "samples in file", "embedded", "images"], rows=rows, numeric={2, 3})
    return (f'<p class="lead">Up to {browser["per_task"]} samples per run and task are embedded (round-robin over '
            "category and right/wrong, in file order); the table below says how many each samples file holds. "
            "Filters can also be set in the address, e.g. <code>report.html?task=pope&amp;outcome=wrong</code>.</p>"
            '<div class="filters">'
            '<label>run<select id="f-run"></select></label><label>task<select id="f-task"></select></label>'
            '<label>category<select id="f-category"></select></label>'
            '<label>outcome<select id="f-outcome"></select></label></div>'
            '<div id="sample-count">The sample browser needs JavaScript.</div><div id="sample-list"></div>'
            '<button type="button" id="sample-more" hidden>show more</button>'
            f"<details><summary>Samples files</summary>{table_html(table)}</details>")


# =========================================================================== the page
@dataclass
class ReportInputs:
    results: Path
    data: Path | None = None
    task_args: dict[str, dict[str, str]] = field(default_factory=dict)
    per_task: int = 24
    images: bool = True
    axes: list[str] | None = None
    published_dir: Path | None = None


def build_report(inp: ReportInputs) -> str:
    """The whole page as one string."""
    exists = inp.results.exists()
    results = load_results(inp.results) if exists else []
    runs = sorted({r.run for r in results})
    models = sorted({r.model_name or "(unnamed)" for r in results})
    if not exists:
        banner = f"The results folder {inp.results} does not exist: no measured results."
    elif not results:
        banner = f"No runs under {inp.results}: no <run>/<task>.json result files were found."
    else:
        banner = ""

    sections = []
    measured = inp.results if results else None
    sections.append(("papers", "Paper tables",
                     '<p class="lead">Each paper\'s main table as printed (every version we hold), then our '
                     "measured rows (blue) for runs with that paper's protocol; a marked cell (†k) was not computed "
                     "on the paper's data release, split or protocol, and footnote k says what differs.</p>"
                     + papers_html(measured, inp.published_dir)))
    groups, messages = ablation_groups(results, inp.axes)
    abl = ('<p class="lead">Our runs of one model, pivoted on the model arguments that differ between them '
           "(rows), one column per benchmark.</p>"
           + "".join(f'<p class="notice empty">{esc(m)}</p>' for m in messages) + "".join(map(_ablation_html, groups)))
    abl += ("<h3>The papers' ablation tables</h3><p class=\"lead\">Each published row, and beneath it our runs of "
            "the same configuration (matched axis by axis), with intervals, marks, and whether the paper's ranking "
            "holds.</p>" + paper_ablations_html(measured, inp.published_dir))
    sections.append(("ablation", "Ablation grids", abl))
    colours = {run: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, run in enumerate(runs)}
    no_runs = '<p class="notice empty">No runs: nothing to show here.</p>'
    sections.append(("categories", "Per-category results",
                     _category_section(results, colours) if results else no_runs))
    sections.append(("efficiency", "Accuracy against speed and memory",
                     _efficiency_section(results, colours) if results else no_runs))
    browser = sample_browser_data(results, inp.per_task, inp.data, inp.task_args, inp.images)
    sections.append(("samples", "Samples", _samples_section(browser)))

    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title, _ in sections)
    body = "".join(f'<section class="report" id="{sid}"><h2>{esc(title)}</h2>{content}</section>'
                   for sid, title, content in sections)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = (f"results: {esc(inp.results)} · {len(runs)} run(s): {esc(', '.join(runs) or 'none')} · "
            f"model(s): {esc(', '.join(models) or 'none')} · written {when}")
    warn = f'<p class="notice" id="no-runs">{esc(banner)}</p>' if banner else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>mmeval report — {esc(inp.results)}</title><style>{CSS}</style></head><body>"
            f'<header class="top"><h1>mmeval report</h1><div class="meta">{meta}</div></header>'
            f'<nav class="sections">{nav}</nav><main>{warn}{body}</main>'
            "<footer>Written by <code>mmeval report html</code>; self-contained (no network).</footer>"
            f'<script type="application/json" id="sample-data">{_json_for_script(browser)}</script>'
            f"<script>{JS}</script></body></html>\n")


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(inp: ReportInputs, out_dir: str | Path) -> Path:
    """Write ``<out>/report.html`` atomically; return its path."""
    path = Path(out_dir) / REPORT_NAME
    write_text_atomic(path, build_report(inp))
    return path
