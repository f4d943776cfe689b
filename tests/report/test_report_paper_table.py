"""Paper tables rendered from fixture result files (expected text written out by hand)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.report.commands import report
from mmeval.report.loading import load_table, measured_rows
from mmeval.report.paper_table import paper_table, render_paper
from mmeval.report.published import DEFAULT_PUBLISHED_DIR
from tests.report._report_helpers import write_task

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64
POPE_ORIGINAL = {"layout": "pope-original", "version": "pope-original@e3e3926", "split": "test",
                 "source": "/data/pope", "questions": 8910}
POPE_LMMS = {"layout": "lmms-lab-parquet", "version": "lmms-lab/POPE", "split": "test", "source": "lmms-lab/POPE",
             "questions": 9000}
MME = {"layout": "lmms-lab-parquet", "version": "lmms-lab/MME", "split": "test", "source": "/data/mme",
       "questions": 2374}


def add_keys(path: Path, **keys) -> Path:
    """Give a fixture result file the keys newer runners write (data, task_args, n)."""
    d = json.loads(path.read_text())
    d.update(keys)
    path.write_text(json.dumps(d))
    return path


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    # comparable: POPE's original release, all 8,910 questions
    add_keys(write_task(res, "vl-mamba_aaaa", "pope", headline="f1", metrics={"f1": 85.34, "accuracy": 86.0},
                        ci95={"f1": [84.12, 86.44]}, sha=SHA_A, args={"llm": "mamba-2.8b-slimpj"}),
             data=POPE_ORIGINAL, n=8910)
    # an old result: no data key -> marked "data source not recorded"
    write_task(res, "vl-mamba_aaaa", "gqa", metrics={"accuracy": 56.07}, sha=SHA_A, args={"llm": "mamba-2.8b-slimpj"})
    add_keys(write_task(res, "vl-mamba_aaaa", "mme", headline="perception", metrics={"perception": 1369.61},
                        sha=SHA_A, args={"llm": "mamba-2.8b-slimpj"}), data=MME, n=2374)
    # POPE on the lmms-lab copy -> marked with what differs
    add_keys(write_task(res, "vl-mamba_bbbb", "pope", headline="f1", metrics={"f1": 84.0}, sha=SHA_B,
                        args={"llm": "mamba-2.8b-slimpj"}), data=POPE_LMMS, n=9000)
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


EXPECTED_MD_TABLE = "\n".join([
    '| method | llm | pt | it | vqav2 | gqa | sqa_i | vqa_t | pope | mme | mmbench | mm_vet |'
    ' source | run | checkpoint | protocol |',
    '| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |'
    ' --- | --- |',
    '| InstructBLIP | Vicuna-7B | 129M | 1.2M |  | 49.2 | 60.5 | 50.1 |  |  | 36 | 26.2 |'
    ' published |  |  |  |',
    '| VL-Mamba | Mamba LLM-2.8B | 558K | 665K | 76.6 | 56.2 | 65.4 | 48.9 | 84.4 | 1369.6 | 57.0 |'
    ' 32.6 | published |  |  |  |',
    '| vl-mamba_aaaa | mamba-2.8b-slimpj |  |  |  | 56.1†1 |  |  | 85.3 | 1369.6 |  |  |'
    ' measured here | vl-mamba_aaaa | aaaaaaaaaaaa | llava |',
    '| vl-mamba_bbbb | mamba-2.8b-slimpj |  |  |  |  |  |  | 84.0†2 |  |  |  | measured here |'
    ' vl-mamba_bbbb | bbbbbbbbbbbb | llava |',
    "",
    "- †1 data source not recorded",
    "- †2 POPE on lmms-lab/POPE (9,000 questions); the paper: POPE's original release "
    "(AoiDragon/POPE@e3e3926, 8,910 questions)",
    "",
])


def test_vl_mamba_markdown_exact(results, mini_published):
    md = render_paper("vl-mamba", results, published_dir=mini_published)["md"]
    lines = md.splitlines()
    assert lines[0] == ("VL-Mamba: Exploring State Space Models for Multimodal Learning -- main comparison "
                        "table, version arxiv: the paper's only version (Qiao et al., 2024, arXiv 2403.13600)")
    assert "\n".join(lines[2:11]) + "\n" == EXPECTED_MD_TABLE
    assert lines[11] == ""
    assert any("protocol `llava`" in x for x in lines[12:])


def test_marks_exactly_on_non_comparable_cells(results):
    pt = paper_table("vl-mamba", results)
    marked = {(r.run, c): cell.footnote for r in pt.rows for c, cell in r.cells.items() if cell.mark}
    assert marked == {
        ("vl-mamba_aaaa", "gqa"): "data source not recorded",
        ("vl-mamba_bbbb", "pope"): pt.footnotes[1],
    }
    assert pt.footnotes[1].startswith("POPE on lmms-lab/POPE (9,000 questions)")
    measured = {(r.run, c): cell for r in pt.rows if r.source == "measured" for c, cell in r.cells.items() if cell.text}
    assert {k: v.comparable for k, v in measured.items()} == {
        ("vl-mamba_aaaa", "gqa"): False, ("vl-mamba_aaaa", "pope"): True, ("vl-mamba_aaaa", "mme"): True,
        ("vl-mamba_bbbb", "pope"): False}
    assert measured[("vl-mamba_aaaa", "pope")].interval == (84.12, 86.44)
    assert all(c.comparable is None and not c.mark for r in pt.rows if r.source == "published"
               for c in r.cells.values())
    # CSV: numbers stay bare; the footnote goes to <col>_note
    rows = list(csv.DictReader(render_paper("vl-mamba", results)["csv"].splitlines()))
    bbbb = next(r for r in rows if r["run"] == "vl-mamba_bbbb")
    assert (bbbb["pope"], bbbb["pope_note"]) == ("84.0", pt.footnotes[1])
    aaaa = next(r for r in rows if r["run"] == "vl-mamba_aaaa")
    assert (aaaa["pope"], aaaa["pope_note"], aaaa["gqa_note"]) == ("85.3", "", "data source not recorded")
    assert all(r["paper_version"] == "arxiv" for r in rows)
    # LaTeX: a dagger superscript and the footnote under the table
    tex = render_paper("vl-mamba", results)["tex"]
    assert "84.0\\textsuperscript{\\dag 2}" in tex and "\\textsuperscript{\\dag 1} data source not recorded" in tex


def test_vl_mamba_markdown_with_ci(results, mini_published):
    md = render_paper("vl-mamba", results, ci=True, published_dir=mini_published)["md"]
    row = next(x for x in md.splitlines() if x.startswith("| vl-mamba_aaaa"))
    assert "| 85.3 [84.1, 86.4] |" in row
    assert "| 56.1†1 |" in row  # no CI in the file -> value only, never an invented interval


def test_csv_and_latex(results, mini_published):
    out = render_paper("vl-mamba", results, ci=True, published_dir=mini_published)
    csv_lines = out["csv"].splitlines()
    assert csv_lines[0].startswith("method,llm,pt,it,vqav2,vqav2_ci95_lo,vqav2_ci95_hi,gqa,")
    assert csv_lines[0].endswith(",source,run,checkpoint,protocol,paper_version,vqav2_note,gqa_note,sqa_i_note,"
                                 "vqa_t_note,pope_note,mme_note,mmbench_note,mm_vet_note")
    assert csv_lines[1] == ("InstructBLIP,Vicuna-7B,129M,1.2M,,,,49.2,,,60.5,,,50.1,,,,,,,,,36,,,26.2,,,"
                            "published,,,,arxiv,,,,,,,,")
    aaaa = next(x for x in csv_lines if x.startswith("vl-mamba_aaaa"))
    assert ",85.3,84.1,86.4," in aaaa
    tex = out["tex"]
    assert "sqa\\_i & vqa\\_t" in tex
    assert "\\caption{VL-Mamba: Exploring State Space Models for Multimodal Learning -- main comparison table, " \
           "version arxiv" in tex
    body = tex.split("\\midrule")
    assert len(body) == 3  # header rule + one rule before the measured rows
    assert body[2].lstrip().startswith("vl-mamba\\_aaaa & mamba-2.8b-slimpj")


def test_cobra_default_is_v4_and_labelled(results):
    pt = paper_table("cobra", results)
    assert pt.spec.version == "v4"
    assert pt.caption.startswith("Cobra: Extending Mamba to Multi-Modal Large Language Model for Efficient Inference"
                                 " -- Table 2, version v4: arXiv v4 / AAAI 2025 (January 2025)")
    labels = [r.label for r in pt.rows if r.source == "published"]
    assert "Cobra-3.5B (ours)" in labels and "Cobra-8B (ours)" in labels and "Prism" not in labels
    out = render_paper("cobra", results)
    assert out["md"].splitlines()[0] == pt.caption
    assert "version v4: arXiv v4 / AAAI 2025" in out["tex"]
    rows = list(csv.DictReader(out["csv"].splitlines()))
    assert {r["paper_version"] for r in rows} == {"v4"}


def test_cobra_v1_on_request(results):
    pt = paper_table("cobra", results, version="v1")
    assert pt.spec.version == "v1" and "version v1: arXiv v1 (March 2024)" in pt.caption
    ours = next(r for r in pt.rows if r.label == "Cobra (ours)")
    assert [ours.cells[c].text for c in pt.spec.columns] == ["75.9", "58.5", "52.0", "46.0", "63.6", "88.0"]
    assert [ours.cells[c].value for c in pt.spec.columns] == [75.9, 58.5, 52.0, 46.0, 63.6, 88.0]
    assert any("compares with v4" in n for n in pt.notes())


def test_cobra_uses_prismatic_only_and_empty_missing_headline(results):
    _spec, rows = load_table("cobra", results)
    measured = [r for r in rows if r.source == "measured"]
    assert [r.label for r in measured] == ["cobra"]  # one run of that model -> model name
    r = measured[0]
    assert (r.run, r.protocol, r.checkpoint_sha256) == ("cobra_cccc", "prismatic", SHA_C)
    assert r.cells == {"vqav2": "", "gqa": "", "vizwiz": "", "vqa_t": "", "vsr": "", "pope": "88.0"}
    assert r.values["vsr"] is None
    assert len(rows) == 16 + 1
    assert len(load_table("cobra", results, version="v1")[1]) == 18 + 1


def test_measured_rows_skip_baselines_and_other_protocols(results):
    rows = measured_rows("vl-mamba", results)
    assert [r.run for r in rows] == ["vl-mamba_aaaa", "vl-mamba_bbbb"]
    assert all(r.protocol == "llava" for r in rows)
    assert rows[0].values["mme"] == pytest.approx(1369.61)


def test_cli_writes_reports_named_by_version(results, tmp_path):
    out = tmp_path / "reports"
    for args in (["--paper", "vl-mamba"], ["--paper", "cobra"], ["--paper", "cobra", "--version", "v1"]):
        r = CliRunner().invoke(report, ["paper", *args, "--results", str(results), "--out", str(out)])
        assert r.exit_code == 0, r.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cobra_v1_main.csv", "cobra_v1_main.md", "cobra_v1_main.tex",
                     "cobra_v4_main.csv", "cobra_v4_main.md", "cobra_v4_main.tex",
                     "vl_mamba_main.csv", "vl_mamba_main.md", "vl_mamba_main.tex"]
    md = (out / "vl_mamba_main.md").read_text()
    lines = [x for x in md.splitlines() if x.startswith("| ")]
    assert len(lines) == 2 + 16 + 2  # header, separator, published, measured
    assert lines[-2].startswith("| vl-mamba_aaaa |")
    assert "version v1" in (out / "cobra_v1_main.md").read_text().splitlines()[0]
    assert "version v4" in (out / "cobra_v4_main.md").read_text().splitlines()[0]


def test_cli_unknown_version_is_one_line(tmp_path):
    r = CliRunner().invoke(report, ["paper", "--paper", "vl-mamba", "--version", "v4", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert r.output.strip() == "error: paper vl-mamba has no version 'v4'; known: arxiv"


def test_cli_without_results_renders_published_only(tmp_path):
    out = tmp_path / "reports"
    r = CliRunner().invoke(report, ["paper", "--paper", "cobra", "--results", str(tmp_path / "nope"),
                                    "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    md = (out / "cobra_v4_main.md").read_text()
    assert "| Cobra-3.5B (ours) | Mamba-2.8B | 77.8 | 62.3 | 49.7 | 58.2 | 58.4 | 88.4 | published |  |  |  |" in md
    table = [x for x in md.splitlines() if x.startswith("| ")]
    assert len(table) == 2 + 16 and not any("measured here" in x or "†" in x for x in table)
    assert not any(x.startswith("- †") for x in md.splitlines())  # no footnotes


def test_nested_results_root(tmp_path):
    """`results/runs/<run>/` (the runner's default) is found from `results/` too."""
    write_task(tmp_path / "results" / "runs", "vl-mamba_x", "pope", headline="f1", metrics={"f1": 80.0})
    rows = measured_rows("vl-mamba", tmp_path / "results")
    assert [(r.label, r.run, r.cells["pope"]) for r in rows] == [("vl-mamba", "vl-mamba_x", "80.0")]
