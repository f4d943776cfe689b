"""Published reference tables: which papers we reproduce and where their numbers live.

Each paper's main comparison table is committed verbatim as ``results/published/<key>.csv``
(every row and column as printed, empty where the paper shows '-') with a JSON sidecar
``results/published/<key>.json`` holding the citation, the protocol the paper's numbers were
computed with, and the mapping from table columns to mmeval task names.  This module only
describes and reads those files; ``loading.py`` turns them into uniform table rows.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

#: ``results/published`` of this checkout (``mmeval/report/published.py`` -> repo root).
DEFAULT_PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "results" / "published"

#: CLI spelling -> file stem under results/published/.
PAPERS = {"vl-mamba": "vl_mamba", "cobra": "cobra"}


@dataclass(frozen=True)
class PaperSpec:
    """What a paper's main table looks like and how its columns map onto our tasks."""

    key: str  # "vl-mamba" | "cobra"
    stem: str  # file stem under results/published/
    title: str
    citation: str
    protocol: str  # the protocol that reproduces the paper's numbers
    label_column: str  # "method" | "model"
    llm_column: str
    info_columns: tuple[str, ...]  # non-metric columns besides label and llm (e.g. pt, it)
    columns: dict[str, str]  # metric column -> task name, in table order
    notes: tuple[str, ...] = ()
    header: tuple[str, ...] = field(default=())  # CSV header, as published

    @property
    def metric_columns(self) -> list[str]:
        return list(self.columns)


def paper_key(name: str) -> str:
    """Normalise 'vl_mamba' / 'VL-Mamba' / 'cobra' to a key of PAPERS, or raise KeyError."""
    k = name.strip().lower().replace("_", "-")
    if k not in PAPERS:
        raise KeyError(f"unknown paper {name!r}; known: {', '.join(sorted(PAPERS))}")
    return k


def load_spec(paper: str, published_dir: str | Path | None = None) -> PaperSpec:
    """Read the JSON sidecar (and the CSV header) of a paper's published table."""
    key = paper_key(paper)
    pdir = Path(published_dir) if published_dir else DEFAULT_PUBLISHED_DIR
    stem = PAPERS[key]
    meta = json.loads((pdir / f"{stem}.json").read_text())
    with open(pdir / f"{stem}.csv", newline="") as f:
        header = tuple(next(csv.reader(f)))
    spec = PaperSpec(
        key=key,
        stem=stem,
        title=meta["title"],
        citation=meta["citation"],
        protocol=meta["protocol"],
        label_column=meta["label_column"],
        llm_column=meta["llm_column"],
        info_columns=tuple(meta.get("info_columns", ())),
        columns=dict(meta["columns"]),
        notes=tuple(meta.get("notes", ())),
        header=header,
    )
    expected = (spec.label_column, spec.llm_column, *spec.info_columns, *spec.columns)
    if header != expected:
        raise ValueError(f"{pdir / stem}.csv header {header} does not match its sidecar {expected}")
    return spec


def read_published_csv(paper: str, published_dir: str | Path | None = None) -> list[dict[str, str]]:
    """The published rows as dicts of the exact cell strings (no parsing, no rounding)."""
    pdir = Path(published_dir) if published_dir else DEFAULT_PUBLISHED_DIR
    with open(pdir / f"{PAPERS[paper_key(paper)]}.csv", newline="") as f:
        return list(csv.DictReader(f))
