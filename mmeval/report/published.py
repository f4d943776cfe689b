"""Published reference tables: which papers and paper versions we reproduce, and where their numbers live.

Each table is committed verbatim under ``results/published/`` as ``<stem>.csv`` (every row and
column as printed, empty where the paper shows '-') with a JSON sidecar ``<stem>.json`` holding the
paper version it comes from, the citation, the protocol the paper's numbers were computed with and
the mapping from table columns to mmeval task names:

* main tables: VL-Mamba (one version) and Cobra arXiv v4 / AAAI 2025 (the default: the released
  checkpoint's) and arXiv v1;
* ablation tables: VL-Mamba tables 2-5, Cobra v4 tables 5 and 7.

This module only describes and reads those files; ``loading.py`` turns main tables into uniform
rows and ``ablation.py`` reads the ablation tables.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from mmeval.errors import UnknownNameError

#: ``results/published`` of this checkout (``mmeval/report/published.py`` -> repo root).
DEFAULT_PUBLISHED_DIR = Path(__file__).resolve().parents[2] / "results" / "published"

#: paper -> version -> file stem of its main table under results/published/.
MAIN_TABLES: dict[str, dict[str, str]] = {
    "vl-mamba": {"arxiv": "vl_mamba"},
    "cobra": {"v4": "cobra_v4", "v1": "cobra_v1"},
}
#: The version rendered when none is asked for. Cobra: v4, whose Cobra-3.5B row is the released
#: cobra+3b (new checkpoint and prompt-format fix of 2024-05-23, after v1).
DEFAULT_VERSION: dict[str, str] = {"vl-mamba": "arxiv", "cobra": "v4"}
#: paper -> file stem of its ablation tables (one paper version each).
ABLATION_TABLES: dict[str, str] = {"vl-mamba": "vl_mamba_ablations", "cobra": "cobra_ablations"}


@dataclass(frozen=True)
class PaperSpec:
    """What a paper's main table looks like and how its columns map onto our tasks."""

    key: str  # "vl-mamba" | "cobra"
    stem: str  # file stem under results/published/
    version: str  # "arxiv" | "v1" | "v4"
    version_label: str  # e.g. "arXiv v4 / AAAI 2025 (January 2025)"
    title: str
    citation: str
    source: str  # which table of which print
    table: str  # "main comparison table" | "Table 2"
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


@dataclass(frozen=True)
class AblationSpec:
    """A paper's ablation tables: one CSV with a ``table`` and an ``axis`` column per row."""

    key: str
    stem: str
    version: str
    version_label: str
    title: str
    citation: str
    source: str
    protocol: str
    tables: dict[str, str]  # table number -> what it varies
    config_columns: tuple[str, ...]  # the columns describing a row's configuration
    columns: dict[str, str | None]  # metric column -> task name (None: no mmeval task)
    variants: dict[str, str]  # metric column -> comparability key when not the task (e.g. textvqa_ocr_last)
    notes: tuple[str, ...] = ()
    header: tuple[str, ...] = field(default=())

    def benchmark(self, column: str) -> str | None:
        """The key ``comparability`` knows this column by (the task, or the task variant)."""
        return self.variants.get(column) or self.columns.get(column)


def paper_key(name: str) -> str:
    """Normalise 'vl_mamba' / 'VL-Mamba' / 'cobra' to a key of MAIN_TABLES."""
    k = name.strip().lower().replace("_", "-")
    if k not in MAIN_TABLES:
        raise UnknownNameError(f"unknown paper {name!r}; known: {', '.join(sorted(MAIN_TABLES))}")
    return k


def paper_versions(paper: str) -> list[str]:
    """The versions of a paper's main table, the default first."""
    key = paper_key(paper)
    default = DEFAULT_VERSION[key]
    return [default, *(v for v in MAIN_TABLES[key] if v != default)]


def resolve_version(paper: str, version: str | None = None) -> str:
    """``version`` checked against the paper's versions (None: the default)."""
    key = paper_key(paper)
    if version is None or version == "":
        return DEFAULT_VERSION[key]
    v = version.strip().lower()
    if v not in MAIN_TABLES[key]:
        raise UnknownNameError(f"paper {key} has no version {version!r}; known: {', '.join(paper_versions(key))}")
    return v


def _dir(published_dir: str | Path | None) -> Path:
    return Path(published_dir) if published_dir else DEFAULT_PUBLISHED_DIR


def _read_header(path: Path) -> tuple[str, ...]:
    with open(path, newline="") as f:
        return tuple(next(csv.reader(f)))


def _read_sidecar(pdir: Path, stem: str, key: str, kind: str, version: str | None) -> dict:
    meta = json.loads((pdir / f"{stem}.json").read_text())
    found = (meta.get("paper"), meta.get("kind"), meta.get("version"))
    if found[0] != key or found[1] != kind or (version is not None and found[2] != version):
        raise ValueError(f"{pdir / stem}.json says paper/kind/version {found}, expected {(key, kind, version)}")
    return meta


def _described(meta: dict) -> dict:
    """The sidecar fields every table has: where it comes from and how its numbers were computed."""
    return {"version_label": meta["version_label"], "title": meta["title"], "citation": meta["citation"],
            "source": meta["source"], "protocol": meta["protocol"], "notes": tuple(meta.get("notes", ()))}


def load_spec(paper: str, published_dir: str | Path | None = None, version: str | None = None) -> PaperSpec:
    """Read the JSON sidecar (and the CSV header) of a paper's main table (default version unless asked)."""
    key = paper_key(paper)
    ver = resolve_version(key, version)
    pdir = _dir(published_dir)
    stem = MAIN_TABLES[key][ver]
    meta = _read_sidecar(pdir, stem, key, "main", ver)
    header = _read_header(pdir / f"{stem}.csv")
    spec = PaperSpec(
        key=key, stem=stem, version=ver, **_described(meta), header=header,
        table=meta["table"],
        label_column=meta["label_column"],
        llm_column=meta["llm_column"],
        info_columns=tuple(meta.get("info_columns", ())),
        columns=dict(meta["columns"]),
    )
    expected = (spec.label_column, spec.llm_column, *spec.info_columns, *spec.columns)
    if header != expected:
        raise ValueError(f"{pdir / stem}.csv header {header} does not match its sidecar {expected}")
    return spec


def read_published_csv(paper: str | PaperSpec, published_dir: str | Path | None = None,
                       version: str | None = None) -> list[dict[str, str]]:
    """The published rows of a main table as dicts of the exact cell strings (no parsing, no rounding)."""
    if isinstance(paper, PaperSpec):
        stem = paper.stem
    else:
        key = paper_key(paper)
        stem = MAIN_TABLES[key][resolve_version(key, version)]
    with open(_dir(published_dir) / f"{stem}.csv", newline="") as f:
        return list(csv.DictReader(f))


def load_ablation_spec(paper: str, published_dir: str | Path | None = None) -> AblationSpec:
    """Read the sidecar and header of a paper's ablation tables."""
    key = paper_key(paper)
    pdir = _dir(published_dir)
    stem = ABLATION_TABLES[key]
    meta = _read_sidecar(pdir, stem, key, "ablations", None)
    header = _read_header(pdir / f"{stem}.csv")
    spec = AblationSpec(
        key=key, stem=stem, version=meta["version"], **_described(meta), header=header,
        tables={str(k): v for k, v in meta["tables"].items()},
        config_columns=tuple(meta["config_columns"]),
        columns=dict(meta["columns"]),
        variants=dict(meta.get("variants", {})),
    )
    expected = ("table", "axis", *spec.config_columns, *spec.columns)
    if header != expected:
        raise ValueError(f"{pdir / stem}.csv header {header} does not match its sidecar {expected}")
    return spec


def read_ablation_csv(paper: str | AblationSpec, published_dir: str | Path | None = None) -> list[dict[str, str]]:
    """The published ablation rows as dicts of the exact cell strings."""
    stem = paper.stem if isinstance(paper, AblationSpec) else ABLATION_TABLES[paper_key(paper)]
    with open(_dir(published_dir) / f"{stem}.csv", newline="") as f:
        return list(csv.DictReader(f))
