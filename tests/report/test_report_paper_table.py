"""Paper tables rendered from fixture result files (expected text written out by hand)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.report.commands import report
from mmeval.report.loading import load_table, measured_rows
from mmeval.report.paper_table import render_paper
from mmeval.report.published import DEFAULT_PUBLISHED_DIR
from tests.report._report_helpers import write_task

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    write_task(res, "vl-mamba_aaaa", "pope", headline="f1", metrics={"f1": 85.34, "accuracy": 86.0},
               ci95={"f1": [84.12, 86.44]}, sha=SHA_A, args={"llm": "mamba-2.8b-slimpj"})
    write_task(res, "vl-mamba_aaaa", "gqa", metrics={"accuracy": 56.07}, sha=SHA_A, args={"llm": "mamba-2.8b-slimpj"})
    write_task(res, "vl-mamba_aaaa", "mme", headline="perception", metrics={"perception": 1369.61},
               sha=SHA_A, args={"llm": "mamba-2.8b-slimpj"})
    write_task(res, "vl-mamba_bbbb", "pope", headline="f1", metrics={"f1": 84.0}, sha=SHA_B,
               args={"llm": "mamba-2.8b-slimpj"})
    # same model, other protocol: must not feed the VL-Mamba (llava) table
    write_task(res, "vl-mamba_lmms", "pope", protocol="lmms-eval", headline="f1", metrics={"f1": 99.0}, sha=SHA_B)
    # Cobra under its own protocol; a headline that is missing from metrics stays empty
    write_task(res, "cobra_cccc", "pope", protocol="prismatic", headline="accuracy", metrics={"accuracy": 88.04},
               model="cobra", sha=SHA_C, args={"llm": "mamba-2.8b-zephyr"})
    write_task(res, "cobra_cccc", "vsr", protocol="prismatic", headline="accuracy", metrics={"f1": 1.0},
               model="cobra", sha=SHA_C, args={"llm": "mamba-2.8b-zephyr"})
    # files the loader must ignore
    (res / "vl-mamba_aaaa" / "run.json").write_text(json.dumps({"run": "vl-mamba_aaaa"}))
    write_task(res / "baselines", "old", "pope", headline="f1", metrics={"f1": 1.0})
    return res


@pytest.fixture()
def mini_published(tmp_path: Path) -> Path:
    """A two-row copy of VL-Mamba's table so the whole expected text fits in the test."""
    d = tmp_path / "published"
    d.mkdir()
    shutil.copy(DEFAULT_PUBLISHED_DIR / "vl_mamba.json", d / "vl_mamba.json")
    (d / "vl_mamba.csv").write_text(
        "method,llm,pt,it,vqav2,gqa,sqa_i,vqa_t,pope,mme,mmbench,mm_vet\n"
        "InstructBLIP,Vicuna-7B,129M,1.2M,,49.2,60.5,50.1,,,36,26.2\n"
        "VL-Mamba,Mamba LLM-2.8B,558K,665K,76.6,56.2,65.4,48.9,84.4,1369.6,57.0,32.6\n"
    )
    return d


EXPECTED_MD_TABLE = """\
| method | llm | pt | it | vqav2 | gqa | sqa_i | vqa_t | pope | mme | mmbench | mm_vet | source | run | checkpoint | protocol |
| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |
| InstructBLIP | Vicuna-7B | 129M | 1.2M |  | 49.2 | 60.5 | 50.1 |  |  | 36 | 26.2 | published |  |  |  |
| VL-Mamba | Mamba LLM-2.8B | 558K | 665K | 76.6 | 56.2 | 65.4 | 48.9 | 84.4 | 1369.6 | 57.0 | 32.6 | published |  |  |  |
| vl-mamba_aaaa | mamba-2.8b-slimpj |  |  |  | 56.1 |  |  | 85.3 | 1369.6 |  |  | measured here | vl-mamba_aaaa | aaaaaaaaaaaa | llava |
| vl-mamba_bbbb | mamba-2.8b-slimpj |  |  |  |  |  |  | 84.0 |  |  |  | measured here | vl-mamba_bbbb | bbbbbbbbbbbb | llava |
"""


def test_vl_mamba_markdown_exact(results, mini_published):
    md = render_paper("vl-mamba", results, published_dir=mini_published)["md"]
    lines = md.splitlines()
    assert lines[0] == ("VL-Mamba: Exploring State Space Models for Multimodal Learning -- main comparison "
                        "table (Qiao et al., 2024, arXiv 2403.13600)")
    table = "\n".join(lines[2:8]) + "\n"
    assert table == EXPECTED_MD_TABLE
    assert lines[8] == ""
    assert any("BLIP-2 row caveat" in x for x in lines[9:])
    assert any("protocol `llava`" in x for x in lines[9:])


def test_vl_mamba_markdown_with_ci(results, mini_published):
    md = render_paper("vl-mamba", results, ci=True, published_dir=mini_published)["md"]
    row = next(x for x in md.splitlines() if x.startswith("| vl-mamba_aaaa"))
    assert "| 85.3 [84.1, 86.4] |" in row
    assert "| 56.1 |" in row  # no CI in the file -> value only, never an invented interval


def test_csv_and_latex(results, mini_published):
    out = render_paper("vl-mamba", results, ci=True, published_dir=mini_published)
    csv_lines = out["csv"].splitlines()
    assert csv_lines[0].startswith("method,llm,pt,it,vqav2,vqav2_ci95_lo,vqav2_ci95_hi,gqa,")
    assert csv_lines[1] == ("InstructBLIP,Vicuna-7B,129M,1.2M,,,,49.2,,,60.5,,,50.1,,,,,,,,,36,,,26.2,,,"
                            "published,,,")
    aaaa = next(x for x in csv_lines if x.startswith("vl-mamba_aaaa"))
    assert ",85.3,84.1,86.4," in aaaa
    tex = out["tex"]
    assert "sqa\\_i & vqa\\_t" in tex
    body = tex.split("\\midrule")
    assert len(body) == 3  # header rule + one rule before the measured rows
    assert body[2].lstrip().startswith("vl-mamba\\_aaaa & mamba-2.8b-slimpj")


def test_cobra_uses_prismatic_only_and_empty_missing_headline(results):
    _spec, rows = load_table("cobra", results)
    measured = [r for r in rows if r.source == "measured"]
    assert [r.label for r in measured] == ["cobra"]  # one run of that model -> model name
    r = measured[0]
    assert (r.run, r.protocol, r.checkpoint_sha256) == ("cobra_cccc", "prismatic", SHA_C)
    assert r.cells == {"vqav2": "", "gqa": "", "vizwiz": "", "vqa_t": "", "vsr": "", "pope": "88.0"}
    assert r.values["vsr"] is None
    assert len(rows) == 18 + 1


def test_measured_rows_skip_baselines_and_other_protocols(results):
    rows = measured_rows("vl-mamba", results)
    assert [r.run for r in rows] == ["vl-mamba_aaaa", "vl-mamba_bbbb"]
    assert all(r.protocol == "llava" for r in rows)
    assert rows[0].values["mme"] == pytest.approx(1369.61)


def test_cli_writes_reports(results, tmp_path):
    out = tmp_path / "reports"
    for paper in ("vl-mamba", "cobra"):
        r = CliRunner().invoke(report, ["paper", "--paper", paper, "--results", str(results), "--out", str(out)])
        assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cobra_main.csv", "cobra_main.md", "cobra_main.tex",
                     "vl_mamba_main.csv", "vl_mamba_main.md", "vl_mamba_main.tex"]
    md = (out / "vl_mamba_main.md").read_text()
    lines = [x for x in md.splitlines() if x.startswith("| ")]
    assert len(lines) == 2 + 16 + 2  # header, separator, published, measured
    assert lines[-2].startswith("| vl-mamba_aaaa |")


def test_cli_without_results_renders_published_only(tmp_path):
    out = tmp_path / "reports"
    r = CliRunner().invoke(report, ["paper", "--paper", "cobra", "--results", str(tmp_path / "nope"),
                                    "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    md = (out / "cobra_main.md").read_text()
    assert "| Cobra (ours) | Mamba-2.8B | 75.9 | 58.5 | 52.0 | 46.0 | 63.6 | 88.0 | published |  |  |  |" in md
    assert "measured here" not in md


def test_nested_results_root(tmp_path):
    """`results/runs/<run>/` (the runner's default) is found from `results/` too."""
    write_task(tmp_path / "results" / "runs", "vl-mamba_x", "pope", headline="f1", metrics={"f1": 80.0})
    rows = measured_rows("vl-mamba", tmp_path / "results")
    assert [(r.label, r.run, r.cells["pope"]) for r in rows] == [("vl-mamba", "vl-mamba_x", "80.0")]
