"""Paper-style main tables: every published row, then our measured rows, each cell marked when it
does not compare with the paper's number.

``mmeval report paper --paper vl-mamba`` renders VL-Mamba's main table (protocol ``llava``) and
``--paper cobra`` Cobra's (protocol ``prismatic``): by default its arXiv v4 / AAAI 2025 table (the
released checkpoint's), ``--version v1`` its March 2024 table.  A measured cell is
``metrics[headline]`` of the run's ``<task>.json`` with the paper's protocol; a missing result is an
empty cell.  Each run is its own row, with model, run, checkpoint hash and protocol shown.  A cell
computed on other data, another split or another prompt than the paper's carries a mark ("†1")
and a footnote saying what differs (``comparability.py``).

``paper_table`` returns the rows as data (:class:`PaperTable`, cells from ``cells.py``) for every
renderer: Markdown, CSV and LaTeX here, the HTML page elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mmeval.report.cells import Cell, Footnotes, measured_cell, published_cell
from mmeval.report.comparability import comparability
from mmeval.report.loading import format_value, load_table
from mmeval.report.published import PaperSpec
from mmeval.report.render import RENDERERS, Table, write_texts

PROVENANCE = ["source", "run", "checkpoint", "protocol"]


@dataclass
class TableRow:
    """One row: published (cells as printed) or measured here (cells with intervals and marks)."""

    label: str
    llm: str
    source: str  # "published" | "measured"
    info: dict[str, str]  # the paper's non-metric columns (e.g. pt, it); empty for measured rows
    cells: dict[str, Cell]  # metric column -> cell
    run: str = ""
    checkpoint_sha256: str = ""
    protocol: str = ""
    model: str = ""


@dataclass
class PaperTable:
    """A paper version's main table with our measured rows; ``footnotes[k-1]`` explains mark "†k"."""

    spec: PaperSpec
    rows: list[TableRow]
    footnotes: list[str] = field(default_factory=list)

    @property
    def caption(self) -> str:
        s = self.spec
        return f"{s.title} -- {s.table}, version {s.version}: {s.version_label} ({s.citation})"

    def notes(self, ci: bool = False) -> list[str]:
        s = self.spec
        return [
            f"Published rows: {s.source} ({s.citation}); cells as printed, empty = '-'.",
            *s.notes,
            f"Measured rows: computed here with protocol `{s.protocol}`; each cell is the task file's "
            "metrics[headline]; an empty cell means no result file (never a guess); "
            "checkpoint = first 12 hex digits of the checkpoint's sha256."
            + (" Brackets: bootstrap 95% CI." if ci else ""),
            "A measured cell without a mark was computed on the paper's data release, split and protocol; "
            "a marked cell (†k) was not, and footnote k says what differs.",
        ]


def paper_table(paper: str, results: str | Path | Iterable | None = None, version: str | None = None,
                published_dir: str | Path | None = None, digits: int = 1) -> PaperTable:
    """The table of ``paper`` at ``version`` (default: the paper's default version) as data."""
    spec, rows = load_table(paper, results, published_dir, version)
    notes = Footnotes()
    out = []
    for r in rows:
        if r.source != "measured":
            cells = {c: published_cell(r.cells.get(c, ""), r.values.get(c)) for c in spec.columns}
            out.append(TableRow(r.label, r.llm, "published", {c: r.cells.get(c, "") for c in spec.info_columns},
                                cells))
            continue
        cells = {}
        for col, task in spec.columns.items():
            res = r.results.get(col)
            value = r.values.get(col)
            if res is None or value is None:
                cells[col] = Cell(text="")
                continue
            verdict = comparability(spec.key, spec.version, task, res)
            cells[col] = measured_cell(value, r.ci.get(col), verdict, notes, digits)
        out.append(TableRow(r.label, r.llm, "measured", {c: "" for c in spec.info_columns}, cells, run=r.run,
                            checkpoint_sha256=r.checkpoint_sha256, protocol=r.protocol, model=r.model))
    return PaperTable(spec, out, notes.texts)


def _provenance(row: TableRow) -> list[str]:
    if row.source == "measured":
        return ["measured here", row.run, row.checkpoint_sha256[:12], row.protocol]
    return ["published", "", "", ""]


def display_table(pt: PaperTable, ci: bool = False) -> Table:
    """Markdown/LaTeX form: one column per metric, intervals in brackets when ``ci``, marks on cells."""
    spec = pt.spec
    header = [spec.label_column, spec.llm_column, *spec.info_columns, *spec.metric_columns, *PROVENANCE]
    first = 2 + len(spec.info_columns)
    rows, marks, rules = [], {}, set()
    for i, r in enumerate(pt.rows):
        if r.source == "measured" and (i == 0 or pt.rows[i - 1].source != "measured"):
            rules.add(i)
        cells = [r.label, r.llm, *(r.info.get(c, "") for c in spec.info_columns)]
        for j, col in enumerate(spec.metric_columns):
            cell = r.cells[col]
            cells.append(cell.with_interval() if ci else cell.text)
            if cell.mark:
                marks[(i, first + j)] = cell.mark
        rows.append(cells + _provenance(r))
    return Table(header=header, rows=rows, numeric=set(range(first, first + len(spec.columns))), rules_before=rules,
                 caption=pt.caption, notes=pt.notes(ci), marks=marks, footnotes=list(pt.footnotes))


def csv_table(pt: PaperTable, ci: bool = False) -> Table:
    """CSV form: numbers alone in their cells; ``<col>_ci95_lo/hi`` when ``ci``; the paper version; and
    ``<col>_note`` columns holding the footnote of each non-comparable measured cell."""
    spec = pt.spec
    header = [spec.label_column, spec.llm_column, *spec.info_columns]
    for c in spec.metric_columns:
        header += [c, f"{c}_ci95_lo", f"{c}_ci95_hi"] if ci else [c]
    header += [*PROVENANCE, "paper_version", *(f"{c}_note" for c in spec.metric_columns)]
    rows = []
    for r in pt.rows:
        cells = [r.label, r.llm, *(r.info.get(c, "") for c in spec.info_columns)]
        for col in spec.metric_columns:
            cell = r.cells[col]
            cells.append(cell.text)
            if ci:
                lo_hi = cell.interval if cell.text else None
                cells += [format_value(lo_hi[0]), format_value(lo_hi[1])] if lo_hi else ["", ""]
        cells += _provenance(r) + [spec.version] + [r.cells[c].footnote for c in spec.metric_columns]
        rows.append(cells)
    return Table(header=header, rows=rows)


def render_paper(paper: str, results: str | Path | Iterable | None = None, ci: bool = False,
                 published_dir: str | Path | None = None, version: str | None = None) -> dict[str, str]:
    """Rendered text per format: {"md": ..., "csv": ..., "tex": ...}."""
    pt = paper_table(paper, results, version, published_dir)
    display = display_table(pt, ci)
    return {"md": RENDERERS["md"](display), "csv": RENDERERS["csv"](csv_table(pt, ci)),
            "tex": RENDERERS["tex"](display)}


def output_stem(spec: PaperSpec) -> str:
    """``<stem>_main``: vl_mamba_main, cobra_v4_main, cobra_v1_main (the version is in the stem)."""
    return f"{spec.stem}_main"


def write_paper(paper: str, results=None, out_dir: str | Path = "reports", ci: bool = False,
                published_dir: str | Path | None = None, version: str | None = None) -> list[Path]:
    """Write ``<out>/<stem>_main.{md,csv,tex}``; return the paths written."""
    from mmeval.report.published import load_spec

    spec = load_spec(paper, published_dir, version)
    texts = render_paper(paper, results, ci=ci, published_dir=published_dir, version=version)
    return write_texts(Path(out_dir), output_stem(spec), texts)
