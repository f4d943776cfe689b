"""Efficiency table and plot from fixture timings."""

from __future__ import annotations

from click.testing import CliRunner

from mmeval.report.commands import check, report
from tests.report._report_helpers import write_task


def test_efficiency_table_and_png(tmp_path):
    res = tmp_path / "results"
    write_task(res, "cobra_1", "pope", protocol="prismatic", headline="accuracy", metrics={"accuracy": 88.04},
               model="cobra", timings={"samples_per_s": 12.345, "tokens_per_s": 40.0, "peak_memory_mb": 6123.4},
               device="cuda:NVIDIA H100")
    write_task(res, "vlm_1", "pope", headline="f1", metrics={"f1": 84.4}, timings={"samples_per_s": 3.0})
    write_task(res, "vlm_1", "gqa", metrics={"accuracy": 56.2})
    out = tmp_path / "reports"
    r = CliRunner().invoke(report, ["efficiency", "--results", str(res), "--tasks", "pope", "--out", str(out)])
    assert r.exit_code == 0, r.output
    md = (out / "efficiency.md").read_text().splitlines()
    assert md[0] == ("| task | protocol | run | model | metric | value | samples/s | tokens/s | peak memory (MB) "
                     "| device |")
    assert md[2] == "| pope | llava | vlm_1 | vl-mamba | f1 | 84.4 | 3.00 |  |  | cpu |"
    assert md[3] == "| pope | prismatic | cobra_1 | cobra | accuracy | 88.0 | 12.35 | 40.0 | 6123 | cuda:NVIDIA H100 |"
    assert len([x for x in md if x.startswith("| ")]) == 4  # gqa filtered out
    png = (out / "efficiency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_help_texts_have_examples():
    for args, obj in [([], report), (["paper"], report), (["ablation"], report), (["efficiency"], report),
                      (["compare"], report), ([], check)]:
        r = CliRunner().invoke(obj, [*args, "--help"])
        assert r.exit_code == 0 and "Example" in r.output, (args, r.output)
