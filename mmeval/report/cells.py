"""Table cells as data: the shown text, the number, its interval, and whether it compares with the paper.

The paper and ablation tables build rows of :class:`Cell` so every renderer (Markdown, CSV, LaTeX,
the HTML page) shows the same values, intervals, marks and footnotes.  A measured cell that is not
comparable with the paper's number carries a mark ("†1") and the footnote that says what differs;
:class:`Footnotes` numbers the distinct footnote texts of one table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mmeval.report.loading import format_value
from mmeval.report.render import footnote_mark


@dataclass(frozen=True)
class Cell:
    """One cell.  Published cells keep the printed string; measured cells carry interval and verdict."""

    text: str  # as shown: the printed string, or the measured value formatted like the paper's
    value: float | None = None
    interval: tuple[float, float] | None = None  # bootstrap 95% interval of a measured value
    comparable: bool | None = None  # None: published (or empty) -- nothing to compare
    footnote: str = ""  # why a measured value is not comparable ("" when it is)
    mark: str = ""  # e.g. "†1": footnote 1 of the table

    def with_interval(self) -> str:
        """The text with its interval, e.g. "85.3 [84.1, 86.4]" (the text alone when there is none)."""
        if not self.text or self.interval is None:
            return self.text
        return f"{self.text} [{format_value(self.interval[0])}, {format_value(self.interval[1])}]"


@dataclass
class Footnotes:
    """The distinct footnote texts of one table, numbered in order of first use."""

    texts: list[str] = field(default_factory=list)

    def mark(self, text: str) -> str:
        if text not in self.texts:
            self.texts.append(text)
        return footnote_mark(self.texts.index(text) + 1)


def published_cell(text: str, value: float | None) -> Cell:
    return Cell(text=text, value=value)


def measured_cell(value: float | None, interval: tuple[float, float] | None, verdict: tuple[bool, Sequence[str]],
                  footnotes: Footnotes, digits: int = 1) -> Cell:
    """A measured value, marked when ``verdict`` (from ``comparability``) says it is not comparable."""
    if value is None:
        return Cell(text="")
    comparable, reasons = verdict
    text = "; ".join(reasons) if not comparable else ""
    return Cell(text=format_value(value, digits), value=value, interval=interval, comparable=comparable,
                footnote=text, mark=footnotes.mark(text) if text else "")
