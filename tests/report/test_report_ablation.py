"""Ablation grids pivot runs over model.args, merge runs of one configuration, leave gaps empty."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.report.ablation import build_grid, grid_table
from mmeval.report.commands import report
from mmeval.report.loading import load_results
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
