"""Ablation grids: pivot runs over their model arguments, as the papers' ablation tables do.

Rows are the distinct value combinations of the chosen axes (keys of ``model.args``, e.g.
encoder, mmc, scan); columns are metrics: a task name means that task's headline metric,
``task:metric`` a specific one.  Runs sharing an axis combination are merged into one row; where
two of them report the same column, the most recently created result wins (and a note says so).
The best value per column is marked (bold in Markdown/LaTeX); missing cells stay empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mmeval.report.loading import TaskResult, format_value, load_results
from mmeval.report.render import Table

MISSING_AXIS = "-"  # shown when a run's model.args lacks an axis


@dataclass
class Grid:
    axes: list[str]
    columns: list[str]
    keys: list[tuple[str, ...]]
    values: dict[tuple[tuple[str, ...], str], float] = field(default_factory=dict)
    runs: dict[tuple[tuple[str, ...], str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def best(self, higher_is_better: bool = True) -> set[tuple[int, int]]:
        """(row, column) positions holding the best value of each column (ties all marked)."""
        marks = set()
        for j, col in enumerate(self.columns):
            vals = [(i, self.values[(k, col)]) for i, k in enumerate(self.keys) if (k, col) in self.values]
            if not vals:
                continue
            target = (max if higher_is_better else min)(v for _, v in vals)
            marks |= {(i, j) for i, v in vals if round(v, 6) == round(target, 6)}
        return marks


def _column_of(col: str) -> tuple[str, str | None]:
    task, _, metric = col.partition(":")
    return task, (metric or None)


def build_grid(results: Iterable[TaskResult], axes: list[str], metrics: list[str] | None = None,
               protocol: str | None = None) -> Grid:
    """Pivot task results into a grid keyed by the axes' values."""
    results = [r for r in results if protocol is None or r.protocol == protocol]
    if not metrics:
        metrics = sorted({r.task for r in results})
    grid = Grid(axes=list(axes), columns=list(metrics), keys=[])
    created: dict[tuple[tuple[str, ...], str], str] = {}
    keys = set()
    for r in results:
        args = r.model_args
        key = tuple(str(args[a]) if a in args else MISSING_AXIS for a in axes)
        used = False
        for col in metrics:
            task, metric = _column_of(col)
            if r.task != task:
                continue
            v = r.metric(metric)
            if v is None:
                continue
            used = True
            cell = (key, col)
            if cell in grid.values:
                winner = r.run if r.created >= created[cell] else grid.runs[cell]
                grid.notes.append(f"{'/'.join(key)} {col}: runs {grid.runs[cell]} and {r.run} both "
                                  f"report it; showing {winner} (most recent)")
                if r.created < created[cell]:
                    continue
            grid.values[cell], grid.runs[cell], created[cell] = v, r.run, r.created
        if used:
            keys.add(key)
    grid.keys = sorted(keys)
    return grid


def grid_table(grid: Grid, digits: int = 1, mark_best: bool = True) -> Table:
    header = [*grid.axes, *grid.columns]
    rows = []
    for k in grid.keys:
        rows.append([*k, *(format_value(grid.values.get((k, c)), digits) for c in grid.columns)])
    n_axes = len(grid.axes)
    bold = {(i, j + n_axes) for i, j in grid.best()} if mark_best else set()
    return Table(header=header, rows=rows, numeric=set(range(n_axes, len(header))), bold=bold,
                 notes=list(grid.notes))


def render_ablation(results_paths: str | Path | Iterable, axes: list[str], metrics: list[str] | None = None,
                    protocol: str | None = None) -> Table:
    return grid_table(build_grid(load_results(results_paths), axes, metrics, protocol))
