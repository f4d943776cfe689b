"""Published tables round-trip exactly from results/published/ (and match ../shared/papers when present).

Every number the loaders return is checked against the CSV parsed here with the csv module alone.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import pytest

from mmeval.errors import UnknownNameError
from mmeval.report.ablation import paper_ablation
from mmeval.report.loading import published_rows
from mmeval.report.paper_table import render_paper
from mmeval.report.published import (
    DEFAULT_PUBLISHED_DIR,
    load_ablation_spec,
    load_spec,
    paper_versions,
    read_ablation_csv,
)

REPO = Path(__file__).resolve().parents[2]
SHARED_CANDIDATES = [REPO.parent / "shared" / "papers", Path("/work/shared/papers")]
MAIN = {("vl-mamba", "arxiv"): "vl_mamba.csv", ("cobra", "v4"): "cobra_v4.csv", ("cobra", "v1"): "cobra_v1.csv"}
SHARED_NAMES = {"vl_mamba.csv": "vl_mamba_main_table.csv", "cobra_v1.csv": "cobra_main_table.csv",
                "cobra_v4.csv": "cobra_main_table_v4.csv", "vl_mamba_ablations.csv": "vl_mamba_ablations.csv",
                "cobra_ablations.csv": "cobra_ablations.csv"}


def _raw(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _number(cell: str) -> float | None:
    return float(cell) if cell.strip() not in ("", "-") else None


@pytest.mark.parametrize("paper,version", list(MAIN))
def test_every_main_table_cell_round_trips(paper, version):
    spec = load_spec(paper, version=version)
    raw = _raw(DEFAULT_PUBLISHED_DIR / MAIN[(paper, version)])
    assert tuple(raw[0]) == spec.header
    rows = published_rows(spec)
    assert len(rows) == len(raw) - 1
    metric_at = {c: raw[0].index(c) for c in spec.columns}
    for rec, row in zip(raw[1:], rows, strict=True):
        rebuilt = [row.label, row.llm, *(row.cells[c] for c in (*spec.info_columns, *spec.columns))]
        assert rebuilt == rec
        assert row.values == {c: _number(rec[i]) for c, i in metric_at.items()}
        assert row.source == "published" and row.citation == spec.citation


@pytest.mark.parametrize("paper,version", list(MAIN))
def test_rendered_csv_keeps_printed_strings_and_labels_the_version(paper, version):
    spec = load_spec(paper, version=version)
    raw = _raw(DEFAULT_PUBLISHED_DIR / MAIN[(paper, version)])
    out_csv = list(csv.reader(render_paper(paper, version=version)["csv"].splitlines()))
    assert out_csv[0][: len(spec.header)] == list(spec.header)
    assert [r[: len(spec.header)] for r in out_csv[1:]] == raw[1:]
    src, ver = out_csv[0].index("source"), out_csv[0].index("paper_version")
    assert all(r[src] == "published" and r[ver] == version for r in out_csv[1:])


@pytest.mark.parametrize("paper", ["vl-mamba", "cobra"])
def test_every_ablation_cell_round_trips(paper):
    """The paper rows of the ablation report hold the CSV's strings and numbers, table by table."""
    spec = load_ablation_spec(paper)
    raw = _raw(DEFAULT_PUBLISHED_DIR / f"{spec.stem}.csv")
    assert tuple(raw[0]) == spec.header
    assert read_ablation_csv(paper) == [dict(zip(raw[0], r, strict=True)) for r in raw[1:]]
    pa = paper_ablation(paper)
    paper_rows = [(t, r) for t in pa.tables for r in t.rows if r.source == "paper"]
    assert len(paper_rows) == len(raw) - 1
    for rec, (table, row) in zip(raw[1:], paper_rows, strict=True):
        d = dict(zip(raw[0], rec, strict=True))
        assert (table.number, row.axis) == (d["table"], d["axis"])
        assert all(row.config[c] == d[c] for c in spec.config_columns)
        for c in spec.columns:
            if c in table.columns:
                assert (row.cells[c].text, row.cells[c].value) == (d[c], _number(d[c]))
            else:
                assert d[c] == ""  # a column a table leaves empty is not shown
        assert all(r.source in ("paper", "measured") for r in table.rows)


# sha256 of each shipped table, taken when it was byte-identical to the papers' transcription in
# shared/papers (SHARED_NAMES): a changed table must be re-checked against the paper.
PUBLISHED_SHA256 = {
    "vl_mamba.csv": "9acfdc45bdea797f7c7bfd92d0053fe860c831b241a7ec8b51fcecba22210722",
    "cobra_v1.csv": "aa78c261391d5820021326774f1d30e41a4fa55b07fb692342415bb2f05b05b9",
    "cobra_v4.csv": "a4d5288d7387eb0a854550e93fc60f9614cb0226298aa79240406e0a05ed57b3",
    "vl_mamba_ablations.csv": "2dafccf8ffef87fa731d8aa4c3adaf8d2ed1000aa55a1fccc7de6ff6d6b23d65",
    "cobra_ablations.csv": "e813aa81b6375a06bcba23474a87e47ed971f5517fb397308b88bfe7a611d16b",
}


def test_shipped_tables_are_the_transcribed_ones():
    assert set(PUBLISHED_SHA256) == set(SHARED_NAMES)
    for name, digest in PUBLISHED_SHA256.items():
        assert hashlib.sha256((DEFAULT_PUBLISHED_DIR / name).read_bytes()).hexdigest() == digest, name
    shared = next((d for d in SHARED_CANDIDATES if (d / "cobra_main_table_v4.csv").is_file()), None)
    for ours, theirs in SHARED_NAMES.items() if shared is not None else ():  # a dev checkout has them too
        assert (DEFAULT_PUBLISHED_DIR / ours).read_bytes() == (shared / theirs).read_bytes(), ours


def test_every_csv_has_a_sidecar_naming_its_version():
    for csv_path in sorted(DEFAULT_PUBLISHED_DIR.glob("*.csv")):
        meta = json.loads(csv_path.with_suffix(".json").read_text())
        assert meta["file"] == csv_path.name
        assert meta["paper"] in ("vl-mamba", "cobra") and meta["kind"] in ("main", "ablations")
        assert meta["version"] and meta["version_label"] and meta["source"] and meta["protocol"]


def _cell(paper: str, label: str, llm: str, col: str, version: str | None = None) -> str:
    spec = load_spec(paper, version=version)
    (row,) = [r for r in published_rows(spec) if (r.label, r.llm) == (label, llm)]
    return row.llm if col == spec.llm_column else row.cells[col]


@pytest.mark.parametrize("paper,version,label,llm,col,expected", [
    ("vl-mamba", None, "VL-Mamba", "Mamba LLM-2.8B", "vqav2", "76.6"),
    ("vl-mamba", None, "VL-Mamba", "Mamba LLM-2.8B", "mme", "1369.6"),
    ("vl-mamba", None, "InstructBLIP", "Vicuna-7B", "mmbench", "36"),  # printed without a decimal
    ("vl-mamba", None, "BLIP-2", "Vicuna-13B", "it", "-"),
    ("vl-mamba", None, "BLIP-2", "Vicuna-13B", "mmbench", ""),
    ("vl-mamba", None, "Otter", "LLaMA-7B", "pt", ""),
    ("cobra", "v1", "Cobra (ours)", "Mamba-2.8B", "vqav2", "75.9"),
    ("cobra", "v1", "Cobra (ours)", "Mamba-2.8B", "vqa_t", "46.0"),
    ("cobra", "v1", "Prism", "LLaMA-7B", "vqav2", "81.0"),
    ("cobra", "v1", "LLaVA v1.5", "Vicuna-7B", "vsr", ""),
    ("cobra", "v4", "Cobra-3.5B (ours)", "Mamba-2.8B", "vqav2", "77.8"),
    ("cobra", "v4", "Cobra-3.5B (ours)", "Mamba-2.8B", "vqa_t", "58.2"),
    ("cobra", "v4", "Cobra-3.5B (ours)", "Mamba-2.8B", "pope", "88.4"),
    ("cobra", None, "Cobra-8B (ours)", "Mamba-7B", "vizwiz", "56.2"),
    ("cobra", None, "LLaVA v1.5", "Vicuna-7B", "vsr", "51.5"),
    ("cobra", None, "MoE-LLaVA", "Phi2-2.7B", "vqav2", "79.9"),
])
def test_spot_checks(paper, version, label, llm, col, expected):
    assert _cell(paper, label, llm, col, version) == expected


def test_versions_specs_and_citations():
    assert paper_versions("cobra") == ["v4", "v1"] and paper_versions("VL_Mamba") == ["arxiv"]
    v, c4, c1 = load_spec("vl-mamba"), load_spec("cobra"), load_spec("cobra", version="v1")
    assert (c4.version, c4.stem, c4.table) == ("v4", "cobra_v4", "Table 2") and "AAAI 2025" in c4.version_label
    assert (c1.version, c1.stem) == ("v1", "cobra_v1") and "March 2024" in c1.version_label
    assert v.citation == "Qiao et al., 2024, arXiv 2403.13600" and v.protocol == "llava"
    assert c4.citation == c1.citation == "Zhao et al., 2024, arXiv 2403.14520" and c4.protocol == "prismatic"
    assert v.columns == {"vqav2": "vqav2", "gqa": "gqa", "sqa_i": "scienceqa_img", "vqa_t": "textvqa",
                         "pope": "pope", "mme": "mme", "mmbench": "mmbench", "mm_vet": "mmvet"}
    assert c4.columns == c1.columns == {"vqav2": "vqav2", "gqa": "gqa", "vizwiz": "vizwiz", "vqa_t": "textvqa",
                                        "vsr": "vsr", "pope": "pope"}
    assert len(published_rows(v)) == 16 and len(published_rows(c1)) == 18 and len(published_rows(c4)) == 16
    a = load_ablation_spec("cobra")
    assert a.version == "v4" and a.tables == {"5": a.tables["5"], "7": a.tables["7"]}
    assert a.benchmark("vqa_v2") == "vqav2" and a.benchmark("textvqa_ocr_last") == "textvqa_ocr_last"
    assert a.benchmark("refcoco") is None
    assert list(load_ablation_spec("vl-mamba").tables) == ["2", "3", "4", "5"]
    with pytest.raises(UnknownNameError, match="unknown paper 'llava'"):
        load_spec("llava")
    with pytest.raises(UnknownNameError, match="paper vl-mamba has no version 'v1'; known: arxiv"):
        load_spec("vl-mamba", version="v1")
