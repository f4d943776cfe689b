"""Paper-style main tables: every published row, then our measured rows, marked as such.

``mmeval report paper --paper vl-mamba`` renders VL-Mamba's main table (protocol ``llava``) and
``--paper cobra`` Cobra's (protocol ``prismatic``) as Markdown, CSV and LaTeX.  A measured cell is
``metrics[headline]`` of the run's ``<task>.json`` with the paper's protocol; a missing result is
an empty cell.  Each run is its own row, with model, run, checkpoint hash and protocol shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mmeval.report.loading import Row, format_value, load_table
from mmeval.report.published import PaperSpec
from mmeval.report.render import RENDERERS, Table

PROVENANCE = ["source", "run", "checkpoint", "protocol"]


def _cell(row: Row, col: str, ci: bool) -> str:
    text = row.cells.get(col, "")
    if ci and text and col in row.ci:
        lo, hi = row.ci[col]
        text = f"{text} [{format_value(lo)}, {format_value(hi)}]"
    return text


def build_table(spec: PaperSpec, rows: list[Row], ci: bool = False, csv: bool = False) -> Table:
    """The table for one paper.  ``csv=True`` puts CIs in their own ``<col>_ci95_lo/hi`` columns."""
    metric_cols = spec.metric_columns
    header = [spec.label_column, spec.llm_column, *spec.info_columns]
    if csv:
        for c in metric_cols:
            header += [c, f"{c}_ci95_lo", f"{c}_ci95_hi"] if ci else [c]
    else:
        header += metric_cols
    header += PROVENANCE
    first_metric = 2 + len(spec.info_columns)
    numeric = set(range(first_metric, len(header) - len(PROVENANCE)))
    out_rows, rules = [], set()
    for i, r in enumerate(rows):
        if r.source == "measured" and (i == 0 or rows[i - 1].source != "measured"):
            rules.add(i)
        cells = [r.label, r.llm, *(r.cells.get(c, "") for c in spec.info_columns)]
        for c in metric_cols:
            if csv:
                cells.append(r.cells.get(c, ""))
                if ci:
                    lo_hi = r.ci.get(c) if r.cells.get(c) else None
                    cells += [format_value(lo_hi[0]), format_value(lo_hi[1])] if lo_hi else ["", ""]
            else:
                cells.append(_cell(r, c, ci))
        if r.source == "measured":
            cells += ["measured here", r.run, r.checkpoint_sha256[:12], r.protocol]
        else:
            cells += ["published", "", "", ""]
        out_rows.append(cells)
    notes = [
        f"Published rows: {spec.title} ({spec.citation}), {'main comparison table'}; cells as printed, empty = '-'.",
        *spec.notes,
        f"Measured rows: computed here with protocol `{spec.protocol}`; each cell is the task file's "
        "metrics[headline]; an empty cell means no result file (never a guess); "
        "checkpoint = first 12 hex digits of the checkpoint's sha256."
        + (" Brackets: bootstrap 95% CI." if ci else ""),
    ]
    return Table(header=header, rows=out_rows, numeric=numeric, rules_before=rules,
                 caption=f"{spec.title} -- main comparison table ({spec.citation})", notes=notes)


def render_paper(paper: str, results: str | Path | Iterable | None = None, ci: bool = False,
                 published_dir: str | Path | None = None) -> dict[str, str]:
    """Rendered text per format: {"md": ..., "csv": ..., "tex": ...}."""
    spec, rows = load_table(paper, results, published_dir)
    display = build_table(spec, rows, ci=ci)
    return {
        "md": RENDERERS["md"](display),
        "csv": RENDERERS["csv"](build_table(spec, rows, ci=ci, csv=True)),
        "tex": RENDERERS["tex"](display),
    }


def write_paper(paper: str, results=None, out_dir: str | Path = "reports", ci: bool = False,
                published_dir: str | Path | None = None) -> list[Path]:
    """Write ``<out>/<stem>_main.{md,csv,tex}``; return the paths written."""
    from mmeval.report.published import load_spec

    spec = load_spec(paper, published_dir)
    texts = render_paper(paper, results, ci=ci, published_dir=published_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, text in texts.items():
        p = out / f"{spec.stem}_main.{ext}"
        p.write_text(text)
        paths.append(p)
    return paths
