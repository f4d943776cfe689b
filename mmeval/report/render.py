"""Render a plain table (header + rows of strings) as Markdown, CSV or LaTeX.

Cells are written exactly as given: no number re-parsing or re-rounding happens here, so
published cells keep their printed form ("36" stays "36", "-" stays "-").  Emphasis (best value
of a column) is passed as a set of (row, column) positions and rendered per format; so are marks
("†1": the cell is not comparable with the paper's number, footnote 1 says why).  CSV carries no
marks: the table builders give it its own columns for them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)  # column indices to right-align
    bold: set[tuple[int, int]] = field(default_factory=set)  # (row, col) cells to emphasise
    rules_before: set[int] = field(default_factory=set)  # row indices preceded by a rule (LaTeX)
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    marks: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, col) -> e.g. "†1"
    footnotes: list[str] = field(default_factory=list)  # footnote k is footnotes[k - 1]


DAGGER = "†"


def footnote_mark(number: int) -> str:
    """The mark of footnote ``number`` (1-based), e.g. "†1"."""
    return f"{DAGGER}{number}"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|")


def to_markdown(t: Table) -> str:
    lines = []
    if t.caption:
        lines += [t.caption, ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in t.header) + " |")
    lines.append("| " + " | ".join("---:" if j in t.numeric else "---" for j in range(len(t.header))) + " |")
    for i, row in enumerate(t.rows):
        cells = [(f"**{c}**" if (i, j) in t.bold and c else c) + t.marks.get((i, j), "") for j, c in enumerate(row)]
        lines.append("| " + " | ".join(_md_escape(c) for c in cells) + " |")
    if t.footnotes:
        lines.append("")
        lines += [f"- {footnote_mark(k)} {text}" for k, text in enumerate(t.footnotes, 1)]
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
                 + _tex_mark(t.marks.get((i, j), "")) for j, c in enumerate(row)]
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    if t.footnotes:
        out.append("\\par\\footnotesize")
        out += [f"{_tex_mark(footnote_mark(k))} {tex_escape(text)}\\\\" for k, text in enumerate(t.footnotes, 1)]
    out.append("\\end{table}")
    return "\n".join(out) + "\n"


def _tex_mark(mark: str) -> str:
    return "\\textsuperscript{" + tex_escape(mark).replace(DAGGER, "\\dag ") + "}" if mark else ""


RENDERERS = {"md": to_markdown, "csv": to_csv, "tex": to_latex}


def write_texts(out: Path, stem: str, texts: dict[str, str]) -> list[Path]:
    """Write each rendering as `<out>/<stem>.<ext>` (ext: md, csv, tex, ...); the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, text in texts.items():
        p = out / f"{stem}.{ext}"
        p.write_text(text)
        paths.append(p)
    return paths
