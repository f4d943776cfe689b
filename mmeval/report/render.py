"""Render a plain table (header + rows of strings) as Markdown, CSV or LaTeX.

Cells are written exactly as given: no number re-parsing or re-rounding happens here, so
published cells keep their printed form ("36" stays "36", "-" stays "-").  Emphasis (best value
of a column) is passed as a set of (row, column) positions and rendered per format.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # column indices to right-align
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells to emphasise
    rules_before: set[int] = field(default_factory=set)  # row indices preceded by a rule (LaTeX)
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(t: Table) -> str:
    lines = []
    if t.caption:
        lines += [t.caption, ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in t.header) + " |")
    lines.append("| " + " | ".join("---:" if j in t.numeric else "---" for j in range(len(t.header))) + " |")
    for i, row in enumerate(t.rows):
        cells = [(f"**{c}**" if (i, j) in t.bold and c else c) for j, c in enumerate(row)]
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    if t.notes:
        lines.append("")
        lines += [f"- {n}" for n in t.notes]
    return "\n".join(lines) + "\n"


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(t.header)
    w.writerows(t.rows)
    return buf.getvalue()


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in s)


def to_latex(t: Table) -> str:
    """A booktabs ``tabular`` inside a ``table`` float; notes become a comment block."""
    spec = "".join("r" if j in t.numeric else "l" for j in range(len(t.header)))
    out = []
    for n in t.notes:
        out.append(f"% {n}")
    out += ["\\begin{table}[t]", "\\centering", "\\small"]
    if t.caption:
        out.append(f"\\caption{{{tex_escape(t.caption)}}}")
    out += [f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
            " & ".join(tex_escape(h) for h in t.header) + " \\\\", "\\midrule"]
    for i, row in enumerate(t.rows):
        if i in t.rules_before and i > 0:
            out.append("\\midrule")
        cells = [(f"\\textbf{{{tex_escape(c)}}}" if (i, j) in t.bold and c else tex_escape(c))
                 for j, c in enumerate(row)]
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(out) + "\n"


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex}
