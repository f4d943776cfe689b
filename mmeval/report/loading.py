"""Read result files and published tables into one uniform row format.

Measured results follow the runner's contract: ``<results>/<run>/<task>.json`` (metrics, ci95,
headline, protocol, model, timings, ...) beside ``<task>.samples.jsonl`` (one record per doc).
Published numbers come from ``results/published/`` (see ``published.py``).  Both end up as
:class:`Row` objects -- label, llm, column -> value, source = "published" | "measured", and for
measured rows the model name, run, checkpoint hash and protocol -- so every report renders them
with the same code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.report.published import PaperSpec, load_spec, read_published_csv

#: Directories under a results root that hold no runs of their own.
NON_RUN_DIRS = {"published", "baselines"}


class ResultError(Exception):
    """A result file is missing or does not follow the contract."""


# --------------------------------------------------------------------------- task results
@dataclass
class TaskResult:
    """One ``<task>.json`` file."""

    path: Path
    data: dict[str, Any]

    @property
    def task(self) -> str:
        return self.data["task"]

    @property
    def protocol(self) -> str:
        return self.data.get("protocol") or ""

    @property
    def run(self) -> str:
        """The run's name: its directory name (unique under a results root), else the 'run' field."""
        return self.path.parent.name or self.data.get("run", "")

    @property
    def metrics(self) -> dict[str, Any]:
        return self.data.get("metrics") or {}

    @property
    def headline(self) -> str | None:
        return self.data.get("headline")

    @property
    def model(self) -> dict[str, Any]:
        return self.data.get("model") or {}

    @property
    def model_name(self) -> str:
        return self.model.get("name") or ""

    @property
    def model_args(self) -> dict[str, Any]:
        return self.model.get("args") or {}

    @property
    def checkpoint_sha256(self) -> str:
        return self.model.get("checkpoint_sha256") or ""

    @property
    def timings(self) -> dict[str, Any]:
        return self.data.get("timings") or {}

    @property
    def created(self) -> str:
        return self.data.get("created") or ""

    @property
    def samples_path(self) -> Path:
        return self.path.with_name(f"{self.path.name[: -len('.json')]}.samples.jsonl")

    def metric(self, name: str | None = None) -> float | None:
        """``metrics[name]`` (default: the headline) as a finite float, else None."""
        name = name or self.headline
        if not name:
            return None
        return as_number(self.metrics.get(name))

    def ci(self, name: str | None = None) -> tuple[float, float] | None:
        name = name or self.headline
        ci = (self.data.get("ci95") or {}).get(name) if name else None
        if not ci or len(ci) != 2:
            return None
        lo, hi = as_number(ci[0]), as_number(ci[1])
        return None if lo is None or hi is None else (lo, hi)


def as_number(value: Any) -> float | None:
    """A finite float, or None for missing / non-numeric / NaN values (never a guess)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def is_task_file(path: Path) -> bool:
    return path.suffix == ".json" and path.name != "run.json" and not path.name.endswith(".samples.json")


def load_task_result(path: str | Path) -> TaskResult:
    """Read one ``<task>.json``; raise ResultError when missing or not a task result."""
    path = Path(path)
    if not path.is_file():
        raise ResultError(f"missing result file: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ResultError(f"not valid JSON: {path}: {e}") from e
    if not isinstance(data, dict) or "task" not in data or "metrics" not in data:
        raise ResultError(f"not a task result file (needs 'task' and 'metrics'): {path}")
    return TaskResult(path, data)


def load_run(run_dir: str | Path) -> dict[str, TaskResult]:
    """All task results of one run directory, keyed by task name."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ResultError(f"missing run directory: {run_dir}")
    out: dict[str, TaskResult] = {}
    for p in sorted(run_dir.glob("*.json")):
        if not is_task_file(p):
            continue
        try:
            r = load_task_result(p)
        except ResultError:
            continue  # other JSON files (e.g. metadata) are not task results
        out[r.task] = r
    return out


def load_results(paths: str | Path | Iterable[str | Path]) -> list[TaskResult]:
    """Task results under results roots, run directories or single task files.

    A directory is searched recursively; every directory holding ``<task>.json`` files is a run
    (so ``results/``, ``results/runs/`` and ``results/runs/<run>/`` all work).  Sub-directories
    named ``published`` or ``baselines`` are skipped (pass a baseline run directory explicitly to
    include it).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[TaskResult] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(load_task_result(p))
        elif p.is_dir():
            run_dirs = {p}
            for f in p.rglob("*.json"):
                rel = f.parent.relative_to(p).parts
                if not NON_RUN_DIRS.intersection(rel):
                    run_dirs.add(f.parent)
            for d in sorted(run_dirs):
                out.extend(load_run(d).values())
        else:
            raise ResultError(f"no such results path: {p}")
    return out


def load_samples(path: str | Path, *, include_errors: bool = False) -> list[dict[str, Any]]:
    """Per-sample records of a ``<task>.samples.jsonl`` (errored lines excluded unless ``include_errors``)."""
    path = Path(path)
    if not path.is_file():
        raise ResultError(f"missing samples file: {path}")
    out = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ResultError(f"{path}:{i}: not valid JSON: {e}") from e
            if not isinstance(rec, dict):
                raise ResultError(f"{path}:{i}: not a sample record (expected a JSON object)")
            if rec.get("error") and not include_errors:
                continue
            out.append(rec)
    return out


# --------------------------------------------------------------------------- uniform rows
@dataclass
class Row:
    """One row of a paper-style table, published or measured.

    ``cells`` holds the text shown for each column (exactly the published string for published
    rows); ``values`` the parsed numbers (None when empty).  Measured rows also carry ``ci``.
    """

    label: str
    llm: str
    source: str  # "published" | "measured"
    cells: dict[str, str] = field(default_factory=dict)
    values: dict[str, float | None] = field(default_factory=dict)
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    model: str = ""
    run: str = ""
    checkpoint_sha256: str = ""
    protocol: str = ""
    citation: str = ""
    results: dict[str, TaskResult] = field(default_factory=dict)  # measured rows: column -> its task file


def format_value(x: float | None, digits: int = 1) -> str:
    """Papers print one decimal (MME included: 1369.6); missing stays empty."""
    return "" if x is None else f"{x:.{digits}f}"


def published_rows(paper: str | PaperSpec, published_dir: str | Path | None = None) -> list[Row]:
    spec = paper if isinstance(paper, PaperSpec) else load_spec(paper, published_dir)
    rows = []
    for rec in read_published_csv(spec, published_dir):
        cells = {c: rec[c] for c in (*spec.info_columns, *spec.columns)}
        rows.append(
            Row(
                label=rec[spec.label_column],
                llm=rec[spec.llm_column],
                source="published",
                cells=cells,
                values={c: as_number(rec[c]) for c in spec.columns},
                citation=spec.citation,
            )
        )
    return rows


def measured_rows(paper: str | PaperSpec, results: str | Path | Iterable[str | Path],
                  published_dir: str | Path | None = None, digits: int = 1) -> list[Row]:
    """One row per run that has at least one of the paper's tasks under the paper's protocol.

    A cell is ``metrics[headline]`` of that task file; missing files or metrics stay empty.
    Rows are labelled by model name, or by run name when several runs share a model.
    """
    spec = paper if isinstance(paper, PaperSpec) else load_spec(paper, published_dir)
    tasks = set(spec.columns.values())
    by_run: dict[str, dict[str, TaskResult]] = {}
    for r in load_results(results):
        if r.protocol == spec.protocol and r.task in tasks:
            by_run.setdefault(r.run, {})[r.task] = r
    rows = []
    for run in sorted(by_run):
        res = by_run[run]
        first = next(iter(res.values()))
        shas = sorted({r.checkpoint_sha256 for r in res.values() if r.checkpoint_sha256})
        row = Row(
            label=first.model_name or run,
            llm=str(first.model_args.get("llm", "")),
            source="measured",
            model=first.model_name,
            run=run,
            checkpoint_sha256=shas[0] if len(shas) == 1 else ("mixed:" + ",".join(s[:8] for s in shas) if shas else ""),
            protocol=spec.protocol,
        )
        for col, task in spec.columns.items():
            r = res.get(task)
            v = r.metric() if r else None
            if r is not None:
                row.results[col] = r
            row.values[col] = v
            row.cells[col] = format_value(v, digits)
            ci = r.ci() if r else None
            if ci is not None and v is not None:
                row.ci[col] = ci
        for c in spec.info_columns:
            row.cells[c] = ""
        rows.append(row)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.model] = counts.get(row.model, 0) + 1
    for row in rows:
        if not row.model or counts[row.model] > 1:
            row.label = row.run
    return rows


def load_table(paper: str, results: str | Path | Iterable[str | Path] | None = None,
               published_dir: str | Path | None = None, version: str | None = None) -> tuple[PaperSpec, list[Row]]:
    """The paper's spec and its rows: all published rows, then our measured rows (if any)."""
    spec = load_spec(paper, published_dir, version)
    rows = published_rows(spec, published_dir)
    if results is not None:
        rows += measured_rows(spec, results, published_dir)
    return spec, rows


def rows_to_dataframe(spec: PaperSpec, rows: list[Row]):
    """The uniform table as a pandas DataFrame (numbers parsed; published text kept in cells)."""
    import pandas as pd

    records = []
    for r in rows:
        rec = {spec.label_column: r.label, spec.llm_column: r.llm}
        rec.update({c: r.cells.get(c, "") for c in spec.info_columns})
        rec.update({c: r.values.get(c) for c in spec.columns})
        rec.update(source=r.source, model=r.model, run=r.run,
                   checkpoint_sha256=r.checkpoint_sha256, protocol=r.protocol)
        records.append(rec)
    return pd.DataFrame.from_records(records)
