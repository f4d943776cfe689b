"""Ablation grids pivot runs over model.args; the papers' ablation tables place our runs beside their rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.report.ablation import (
    build_grid,
    grid_table,
    paper_ablation,
    paper_config,
    render_paper_ablation,
    run_config,
)
from mmeval.report.commands import report
from mmeval.report.loading import load_results, load_task_result
from mmeval.report.ranking import HOLDS, NOT_MEASURED, REVERSED, UNRESOLVED
from mmeval.report.render import to_latex, to_markdown
from tests.report._report_helpers import write_task


def cfg(encoder, mmc, scan=None):
    args = {"encoder": encoder, "mmc": mmc, "llm": "mamba-2.8b-slimpj"}
    if scan:
        args["scan"] = scan
    return args


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    w = write_task
    w(res, "r1", "pope", headline="f1", metrics={"f1": 84.0, "accuracy": 85.0}, args=cfg("clip", "mlp", "bsm"))
    w(res, "r1", "gqa", metrics={"accuracy": 55.0}, args=cfg("clip", "mlp", "bsm"))
    w(res, "r2", "pope", headline="f1", metrics={"f1": 85.0, "accuracy": 86.5}, args=cfg("siglip", "mlp", "bsm"))
    w(res, "r3", "pope", headline="f1", metrics={"f1": 86.0, "accuracy": 86.0}, args=cfg("siglip", "vss-l2", "bsm"))
    w(res, "r3", "gqa", metrics={"accuracy": 57.0}, args=cfg("siglip", "vss-l2", "bsm"))
    w(res, "r4", "gqa", metrics={"accuracy": 56.5}, args=cfg("siglip", "vss-l2", "csm"))
    w(res, "r5", "gqa", metrics={"accuracy": 57.5}, args=cfg("siglip", "vss-l2", "bsm"),
      created="2026-11-26T10:00:00Z")  # same configuration as r3, newer
    w(res, "r6", "mme", headline="perception", metrics={"perception": 1300.0}, args=cfg("clip", "vss-l2", "bsm"))
    w(res, "r7", "pope", headline="f1", metrics={"f1": 86.0}, args=cfg("siglip", "vss-l2"))  # no scan arg
    w(res, "r8", "pope", protocol="prismatic", headline="f1", metrics={"f1": 99.0}, args=cfg("dino", "mlp", "bsm"))
    return res


EXPECTED = """\
| encoder | mmc | scan | pope | gqa | pope:accuracy |
| --- | --- | --- | ---: | ---: | ---: |
| clip | mlp | bsm | 84.0 | 55.0 | 85.0 |
| siglip | mlp | bsm | 85.0 |  | **86.5** |
| siglip | vss-l2 | - | **86.0** |  |  |
| siglip | vss-l2 | bsm | **86.0** | **57.5** | 86.0 |
| siglip | vss-l2 | csm |  | 56.5 |  |

- siglip/vss-l2/bsm gqa: runs r3 and r5 both report it; showing r5 (most recent)
"""


def test_grid_markdown(results):
    grid = build_grid(load_results(results), ["encoder", "mmc", "scan"], ["pope", "gqa", "pope:accuracy"],
                      protocol="llava")
    assert to_markdown(grid_table(grid)) == EXPECTED


def test_grid_cells(results):
    grid = build_grid(load_results(results), ["encoder", "mmc"], ["gqa", "mme"], protocol="llava")
    assert grid.keys == [("clip", "mlp"), ("clip", "vss-l2"), ("siglip", "vss-l2")]
    assert grid.values[(("clip", "vss-l2"), "mme")] == 1300.0
    assert (("clip", "vss-l2"), "gqa") not in grid.values
    assert (("siglip", "mlp"), "gqa") not in grid.values  # r2 has no gqa -> no row at all
    assert grid.values[(("siglip", "vss-l2"), "gqa")] == 57.5  # r3, r4, r5 merged; newest wins
    tex = to_latex(grid_table(grid))
    assert "\\textbf{57.5}" in tex and "\\textbf{1300.0}" in tex


def test_cli_ablation(results, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(report, ["ablation", "--axes", "encoder,mmc,scan", "--metrics", "pope,gqa,pope:accuracy",
                                    "--results", str(results), "--protocol", "llava", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert EXPECTED in r.output
    assert (out / "ablation_encoder_mmc_scan.md").read_text() == EXPECTED
    assert (out / "ablation_encoder_mmc_scan.csv").read_text().splitlines()[3] == "siglip,vss-l2,-,86.0,,"
    r = CliRunner().invoke(report, ["ablation", "--axes", "encoder", "--metrics", "pope", "--results", str(results)])
    assert "| dino | **99.0** |" in r.output  # without --protocol every protocol counts


# =========================================================================== the papers' ablation tables
POPE = {"layout": "pope-original", "version": "pope-original@e3e3926", "split": "test", "questions": 8910}
GQA = {"layout": "lmms-lab-parquet", "version": "lmms-lab/GQA", "split": "testdev", "questions": 12578}
TEXTVQA = {"layout": "official", "version": "textvqa-0.5.1", "split": "val", "questions": 5000}


def measured(res: Path, run: str, task: str, value: float, ci: tuple[float, float], *, config: dict | None,
             args: dict | None = None, data: dict | None = None, task_args: dict | None = None,
             protocol: str = "llava", model: str = "vl-mamba", created: str = "2026-11-25T21:00:00Z") -> Path:
    """A result file as the runner writes it: model.config resolved by the adapter, data, task_args."""
    headline = {"pope": "f1" if protocol == "llava" else "accuracy"}.get(task, "accuracy")
    p = write_task(res, run, task, protocol=protocol, headline=headline, metrics={headline: value},
                   ci95={headline: list(ci)}, model=model, args=args or {}, created=created)
    d = json.loads(p.read_text())
    if config is not None:
        d["model"]["config"] = config
    else:
        del d["model"]["config"]
    if data is not None:
        d.update(data=data, n=data["questions"])
    if task_args is not None:
        d["task_args"] = task_args
    p.write_text(json.dumps(d))
    return p


def vcfg(encoder, mmc, scan="bsm", llm="mamba-2.8b-slimpj"):
    return {"encoder": encoder, "mmc": mmc, "scan": scan, "llm": llm, "vision_select_layer": -2}


def ccfg(model_id="cobra+3b", arch="no-align+fused-gelu-mlp", vision="dinosiglip-vit-so-384px",
         llm="mamba-2.8b-zephyr"):
    return {"model_id": model_id, "arch_specifier": arch, "vision_backbone_id": vision, "llm_backbone_id": llm}


@pytest.fixture()
def vl_runs(tmp_path: Path) -> Path:
    res = tmp_path / "vl"
    m = measured
    m(res, "clip_mlp", "pope", 81.0, (80.0, 82.0), config=vcfg("clip", "mlp"), data=POPE)
    m(res, "clip_mlp", "gqa", 55.0, (54.0, 56.0), config=vcfg("clip", "mlp"), data=GQA)
    m(res, "sig_mlp", "pope", 85.0, (84.0, 86.0), config=vcfg("siglip", "mlp", scan="csm"), data=POPE)
    m(res, "sig_mlp", "gqa", 50.0, (49.0, 51.0), config=vcfg("siglip", "mlp", scan="csm"), data=GQA)
    m(res, "sig_l2_bsm", "pope", 84.0, (83.0, 85.0), config=vcfg("siglip", "vss-l2"), data=POPE)
    m(res, "sig_l2_bsm", "gqa", 57.0, (56.5, 57.5), config=vcfg("siglip", "vss-l2"), data=GQA)
    m(res, "sig_l2_csm", "gqa", 56.0, (55.8, 56.4), config=vcfg("siglip", "vss-l2", scan="csm"), data=GQA)
    # an old result: only --model-args, the paper's "Pile" LLM under our name, no data record
    m(res, "pile_old", "gqa", 53.5, (52.5, 54.5), config=None,
      args={"encoder": "clip", "mmc": "mlp", "llm": "mamba-2.8b-pile"})
    # same configuration as sig_mlp under another protocol: placed only if nothing comparable exists
    m(res, "sig_mlp_lmms", "pope", 99.0, (98.0, 99.5), config=vcfg("siglip", "mlp"), data=POPE, protocol="lmms-eval",
      created="2026-12-01T00:00:00Z")
    return res


def _table(pa, number):
    return next(t for t in pa.tables if t.number == number)


def _pairs(table):
    """(paper row, the measured row right after it or None), in order."""
    out = []
    for i, r in enumerate(table.rows):
        if r.source == "paper":
            nxt = table.rows[i + 1] if i + 1 < len(table.rows) else None
            out.append((r, nxt if nxt is not None and nxt.source == "measured" else None))
    return out


def test_paper_rows_translate_to_our_option_values():
    assert paper_config("vl-mamba", "llm", {"encoder": "clip-vit-l", "mmc": "mlp", "scan": "",
                                            "llm": "mamba-2.8b-pile"}) == {
        "encoder": "clip", "mmc": "mlp", "llm": "mamba-2.8b"}
    assert paper_config("vl-mamba", "mmc", {"encoder": "siglip-so", "mmc": "vss-l2", "scan": "csm",
                                            "llm": "mamba-2.8b-slimpj"}) == {
        "encoder": "siglip", "mmc": "vss-l2", "scan": "csm", "llm": "mamba-2.8b-slimpj"}
    printed = {"model_id": "", "vision": "dinov2+siglip-so", "projector": "ldpv2", "llm": "mamba-2.8b-zephyr"}
    assert paper_config("cobra", "projector", printed) == {
        "vision": "dinosiglip-vit-so-384px", "projector": "ldpnet", "llm": "mamba-2.8b-zephyr", "epochs": "2",
        "pre_alignment": "no"}
    assert paper_config("cobra", "finetune_epochs", {**printed, "projector": "mlp"})["epochs"] == "1"
    assert paper_config("cobra", "pre_alignment", {**printed, "projector": "mlp"})["pre_alignment"] == "yes"
    assert paper_config("cobra", "comparison", {"model_id": "", "vision": "", "projector": "", "llm": "vicuna-7b"}) \
        is None


def test_vl_mamba_rows_match_axis_by_axis(vl_runs):
    pa = paper_ablation("vl-mamba", vl_runs)
    got = {t.number: [(p.config["encoder"], p.config["mmc"], p.config["scan"], p.config["llm"],
                       m.runs if m else None) for p, m in _pairs(t)] for t in pa.tables}
    assert got == {
        "2": [("clip-vit-l", "mlp", "", "mamba-1.4b", None),
              ("clip-vit-l", "mlp", "", "mamba-2.8b-pile", {"gqa": "pile_old"}),
              ("clip-vit-l", "mlp", "", "mamba-2.8b-slimpj", {"pope": "clip_mlp", "gqa": "clip_mlp"})],
        "3": [("clip-vit-l", "mlp", "", "mamba-2.8b-slimpj", {"pope": "clip_mlp", "gqa": "clip_mlp"}),
              ("siglip-so", "mlp", "", "mamba-2.8b-slimpj", {"pope": "sig_mlp", "gqa": "sig_mlp"})],
        # an MLP connector has no scan: the csm-configured MLP run is the paper's MLP row
        "4": [("siglip-so", "mlp", "bsm", "mamba-2.8b-slimpj", {"pope": "sig_mlp", "gqa": "sig_mlp"}),
              ("siglip-so", "vss-mlp", "bsm", "mamba-2.8b-slimpj", None),
              ("siglip-so", "vss-l2", "bsm", "mamba-2.8b-slimpj", {"pope": "sig_l2_bsm", "gqa": "sig_l2_bsm"})],
        "5": [("siglip-so", "vss-l2", "bsm", "mamba-2.8b-slimpj", {"pope": "sig_l2_bsm", "gqa": "sig_l2_bsm"}),
              ("siglip-so", "vss-l2", "csm", "mamba-2.8b-slimpj", {"gqa": "sig_l2_csm"})],
    }
    # measured rows show our option values for the same axes
    (_, m), = [x for x in _pairs(_table(pa, "2")) if x[1] and "gqa" in x[1].runs and x[1].runs["gqa"] == "pile_old"]
    assert m.config == {"encoder": "clip", "mmc": "mlp", "llm": "mamba-2.8b"}
    t3 = _table(pa, "3")
    clip = _pairs(t3)[0][1]
    assert (clip.cells["pope"].text, clip.cells["pope"].interval, clip.cells["pope"].mark) == ("81.0", (80.0, 82.0), "")
    assert clip.cells["vqav2"].text == ""
    # the old result is placed, marked "data source not recorded"
    pile = _pairs(_table(pa, "2"))[1][1].cells["gqa"]
    assert (pile.value, pile.comparable, pile.footnote) == (53.5, False, "data source not recorded")
    assert any("2 runs match; showing sig_mlp" in n for n in _table(pa, "4").notes)


def test_vl_mamba_ranking_verdicts(vl_runs):
    pa = paper_ablation("vl-mamba", vl_runs)
    verdict = {t.number: {c: v.verdict for c, v in t.verdicts.items()} for t in pa.tables}
    # Table 3: paper CLIP 84.9 < SigLIP 85.2 on POPE, ours [80, 82] < [84, 86]; GQA 54.4 < 55.4, ours the reverse
    assert verdict["3"]["pope"] == HOLDS and verdict["3"]["gqa"] == REVERSED
    # Table 4 POPE: paper MLP 85.2 > VSS-L2 84.4, ours [84, 86] vs [83, 85] overlap
    assert verdict["4"]["pope"] == UNRESOLVED
    # Table 5 GQA: paper BSM 56.2 > CSM 55.8, ours [56.5, 57.5] vs [55.8, 56.4]
    assert verdict["5"]["gqa"] == HOLDS
    # Table 2 GQA: the old result has no data record, so it cannot be ranked against clip_mlp
    assert _table(pa, "2").verdicts["gqa"].pairs[0].why == "data not recorded"
    assert verdict["3"]["mme"] == NOT_MEASURED
    md = render_paper_ablation(pa)["md"]
    assert "| ranking |  |  |  |  | paper's order |" in md
    row = next(x for x in md.split("Table 3:")[1].splitlines() if x.startswith("| ranking |"))
    assert row.split(" | ")[6:9] == ["not measured", "reversed", "not measured"]  # vqav2, gqa, sqa_i
    assert row.split(" | ")[10] == "holds"  # pope


@pytest.fixture()
def cobra_runs(tmp_path: Path) -> Path:
    res = tmp_path / "cobra"

    def m(run, task, value, ci, config, **kw):
        return measured(res, run, task, value, ci, config=config, protocol="prismatic", model="cobra", **kw)

    m("released", "pope", 88.0, (87.5, 88.5), ccfg(), data=POPE)
    m("released", "textvqa", 58.0, (57.0, 59.0), ccfg(), data=TEXTVQA, task_args={"ocr_order": "first"})
    m("released_last", "textvqa", 43.5, (42.5, 44.5), ccfg(), data=TEXTVQA, task_args={"ocr_order": "last"})
    m("released_pure", "textvqa", 48.0, (47.0, 49.0), ccfg(), data=TEXTVQA, task_args={"ocr": "false"})
    m("ldp", "pope", 87.0, (86.0, 87.4), ccfg("cobra-ldpnet+3b", "no-align+fused-ldpnet"), data=POPE)
    m("base", "pope", 89.2, (88.8, 89.6), ccfg("cobra-base+3b", llm="mamba-2.8b-slimpj"), data=POPE)
    m("one_epoch", "pope", 88.1, (87.0, 89.0), ccfg("cobra-one-epoch+3b"), data=POPE)
    m("tiny", "pope", 50.0, (45.0, 55.0), ccfg("cobra-tiny"), data=POPE)  # no known recipe: matches no row
    # --model-args only (model= preset, projector=): resolved through Cobra's presets
    m("siglip_args", "pope", 87.9, (87.6, 88.2), None, args={"model": "cobra-siglip+3b", "random_init": "1"},
      data=POPE)
    return res


def test_cobra_run_config_from_config_args_and_presets(cobra_runs):
    r = load_task_result(cobra_runs / "siglip_args" / "pope.json")
    assert run_config("cobra", r) == {"vision": "siglip-vit-so400m-384px", "projector": "gelu-mlp",
                                      "llm": "mamba-2.8b-zephyr", "epochs": "2", "pre_alignment": "no"}
    r = load_task_result(cobra_runs / "ldp" / "pope.json")
    assert run_config("cobra", r)["projector"] == "ldpnet"
    r = load_task_result(cobra_runs / "tiny" / "pope.json")
    assert run_config("cobra", r)["epochs"] is None


def test_cobra_table5_and_table7(cobra_runs):
    pa = paper_ablation("cobra", cobra_runs)
    t5, t7 = _table(pa, "5"), _table(pa, "7")
    assert [(p.axis, m.runs if m else None) for p, m in _pairs(t5)] == [
        ("reference", {"pope": "released", "textvqa": "released"}),
        ("vision", {"pope": "siglip_args"}),
        ("projector", {"pope": "ldp"}),
        ("llm", {"pope": "base"}),
        ("finetune_epochs", {"pope": "one_epoch"}),
        ("pre_alignment", None),
    ]
    ref = _pairs(t5)[0][1]
    assert ref.cells["textvqa"].comparable is True  # the OCR-first run is the paper's number
    assert any("textvqa: 3 runs match; showing released" in n for n in t5.notes)
    assert t5.verdicts["refcoco"].verdict == "no mmeval task"
    # POPE, paper: llm 89.0 > ref 88.4 > vision 88.2 > one-epoch 88.1 > ldp 87.7
    pope = t5.verdicts["pope"]
    outcomes = {(p.higher.split(":")[0], p.lower.split(":")[0]): p.outcome for p in pope.pairs}
    assert outcomes[("llm", "reference")] == "holds"  # [88.8, 89.6] above [87.5, 88.5]
    assert outcomes[("vision", "projector")] == "holds"  # [87.6, 88.2] above [86.0, 87.4]
    assert outcomes[("reference", "vision")] == "unresolved"
    assert pope.verdict == UNRESOLVED
    # Table 7: each prompt order from the runs whose task options say so; other rows published only
    assert [(p.axis, m.runs if m else None) for p, m in _pairs(t7)] == [
        ("comparison", None),
        ("reference", {"textvqa_ocr_first": "released", "textvqa_ocr_last": "released_last",
                       "textvqa_wo_ocr_tokens": "released_pure"}),
        ("vision", None), ("projector", None), ("llm", None), ("finetune_epochs", None), ("pre_alignment", None),
        ("model_scale", None),
    ]
    ref7 = _pairs(t7)[1][1]
    assert [ref7.cells[c].text for c in t7.columns] == ["58.0", "43.5", "48.0"]
    assert all(ref7.cells[c].comparable for c in t7.columns)
    assert [p.cells["textvqa_ocr_last"].text for p, _ in _pairs(t7)] == [
        "58.2", "43.0", "47.3", "44.7", "47.6", "45.4", "47.4", "43.0"]


def test_cli_paper_ablation(cobra_runs, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(report, ["ablation", "--paper", "cobra", "--table", "7", "--results", str(cobra_runs),
                                    "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "-- Table 7: TextVQA prompt order" in r.output and "-- Table 5:" not in r.output
    assert "| 58.0 [57.0, 59.0] | 43.5 [42.5, 44.5] | 48.0 [47.0, 49.0] |" in r.output
    assert sorted(p.name for p in out.iterdir()) == ["cobra_v4_ablations.csv", "cobra_v4_ablations.md",
                                                     "cobra_v4_ablations.tex"]
    rows = (out / "cobra_v4_ablations.csv").read_text().splitlines()
    assert rows[0].startswith("table,axis,model_id,vision,projector,llm,epochs,pre_alignment,source,runs,"
                              "paper_version,textvqa_ocr_first,textvqa_ocr_first_ci95_lo,")
    r = CliRunner().invoke(report, ["ablation", "--paper", "vl-mamba", "--table", "9", "--results", str(cobra_runs)])
    assert r.exit_code == 2 and "vl-mamba has no ablation table 9; known: 2, 3, 4, 5" in r.output
    r = CliRunner().invoke(report, ["ablation", "--results", str(cobra_runs)])
    assert r.exit_code == 2 and "give --paper vl-mamba|cobra or --axes" in r.output
