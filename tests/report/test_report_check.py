"""`mmeval check`: exit 1 on a planted significant regression, 0 on noise and improvements, 2 on bad inputs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.report.commands import check, report
from tests.report._report_helpers import accuracy, binary_samples, write_task

N = 400
BASE = [1] * 320 + [0] * 80  # 80% correct


def flip(correct, to_wrong=(), to_right=()):
    out = list(correct)
    for i in to_wrong:
        assert out[i] == 1
        out[i] = 0
    for i in to_right:
        assert out[i] == 0
        out[i] = 1
    return out


def make(res: Path, run: str, correct, task="pope", protocol="llava", prefix="d", **kw):
    return write_task(res, run, task, protocol=protocol, headline="accuracy",
                      metrics={"accuracy": accuracy(correct)}, samples=binary_samples(correct, prefix), **kw)


def invoke(base: Path, cand: Path, *extra: str):
    return CliRunner().invoke(check, ["--baseline", str(base), "--candidate", str(cand), "--n-boot", "1000", *extra])


def test_planted_regression_exits_1(tmp_path):
    make(tmp_path, "base", BASE)
    make(tmp_path, "cand", flip(BASE, to_wrong=range(40)))  # -10 points
    r = invoke(tmp_path / "base", tmp_path / "cand")
    assert r.exit_code == 1, r.output
    assert "REGRESSION" in r.output and "FAIL" in r.output and "pope/accuracy" in r.output
    assert "-10.00" in r.output


def test_noise_level_difference_exits_0(tmp_path):
    make(tmp_path, "base", BASE)
    make(tmp_path, "cand", flip(BASE, to_wrong=range(3), to_right=range(320, 322)))  # -0.25 points
    r = invoke(tmp_path / "base", tmp_path / "cand")
    assert r.exit_code == 0, r.output
    assert "PASS" in r.output and "REGRESSION" not in r.output


def test_drop_beyond_tolerance_but_not_significant_exits_0(tmp_path):
    make(tmp_path, "base", BASE)
    make(tmp_path, "cand", flip(BASE, to_wrong=range(4)))  # -1.0 point, SE ~0.5
    assert invoke(tmp_path / "base", tmp_path / "cand", "--max-drop", "0.5").exit_code == 0
    # 4 of 4 discordant pairs down is not enough evidence even against zero tolerance (McNemar p = 1/16)
    assert invoke(tmp_path / "base", tmp_path / "cand", "--max-drop", "0").exit_code == 0
    make(tmp_path, "cand10", flip(BASE, to_wrong=range(10)))  # -2.5 points: 10 of 10 down
    assert invoke(tmp_path / "base", tmp_path / "cand10", "--max-drop", "0").exit_code == 1
    assert invoke(tmp_path / "base", tmp_path / "cand10", "--max-drop", "2").exit_code == 0


def test_improvement_exits_0(tmp_path):
    make(tmp_path, "base", BASE)
    make(tmp_path, "cand", flip(BASE, to_right=range(320, 360)))
    r = invoke(tmp_path / "base", tmp_path / "cand")
    assert r.exit_code == 0, r.output
    assert "improved" in r.output


def test_tasks_filter_and_single_files(tmp_path):
    make(tmp_path, "base", BASE)
    make(tmp_path, "base", BASE, task="gqa")
    make(tmp_path, "cand", BASE)
    make(tmp_path, "cand", flip(BASE, to_wrong=range(40)), task="gqa")
    assert invoke(tmp_path / "base", tmp_path / "cand", "--tasks", "pope").exit_code == 0
    assert invoke(tmp_path / "base", tmp_path / "cand").exit_code == 1
    assert invoke(tmp_path / "base" / "gqa.json", tmp_path / "cand" / "gqa.json").exit_code == 1
    assert invoke(tmp_path / "base" / "pope.json", tmp_path / "cand").exit_code == 0


def test_errored_samples_fail_the_gate(tmp_path):
    make(tmp_path, "base", BASE)
    cand = flip(BASE, to_wrong=range(40))
    write_task(tmp_path, "cand", "pope", headline="accuracy", metrics={"accuracy": 80.0},
               samples=binary_samples(cand, errors=set(range(40))))  # the flipped ones errored
    r = invoke(tmp_path / "base", tmp_path / "cand")
    assert r.exit_code == 1, r.output
    assert " 360 " in r.output  # the paired comparison sees only the 360 docs both runs scored ...
    assert "40 more unscored samples than the baseline" in r.output and "40 errored" in r.output  # and the rest
    assert r.output.strip().splitlines()[-1].startswith("FAIL: 40 more unscored samples than the baseline in pope")


def test_errors_the_baseline_had_too_pass(tmp_path):
    errors = set(range(320, 330))  # e.g. the same broken images in both runs
    write_task(tmp_path, "base", "pope", metrics={"accuracy": 80.0}, samples=binary_samples(BASE, errors=errors))
    write_task(tmp_path, "cand", "pope", metrics={"accuracy": 80.0}, samples=binary_samples(BASE, errors=errors))
    r = invoke(tmp_path / "base", tmp_path / "cand")
    assert r.exit_code == 0, r.output
    assert " 390 " in r.output and "coverage ok" in r.output and "PASS" in r.output


@pytest.mark.parametrize("case", ["missing_dir", "missing_task", "protocol", "no_common", "no_samples"])
def test_bad_inputs_exit_2(tmp_path, case):
    make(tmp_path, "base", BASE)
    cand = tmp_path / "cand"
    if case == "missing_task":
        make(tmp_path, "cand", BASE, task="gqa")
    elif case == "protocol":
        make(tmp_path, "cand", BASE, protocol="prismatic")
    elif case == "no_common":
        make(tmp_path, "cand", BASE, prefix="other")
    elif case == "no_samples":
        make(tmp_path, "cand", BASE)
        (cand / "pope.samples.jsonl").unlink()
    r = invoke(tmp_path / "base", cand)
    assert r.exit_code == 2, r.output
    msg = r.output.strip().splitlines()
    assert len(msg) == 1 and msg[0].startswith("error: ")


def test_compare_command(tmp_path):
    make(tmp_path, "a", BASE)
    make(tmp_path, "b", flip(BASE, to_wrong=range(10)))
    r = CliRunner().invoke(report, ["compare", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                                    "--task", "pope", "--n-boot", "500"])
    assert r.exit_code == 0, r.output
    assert "-2.50" in r.output and "McNemar" in r.output and "0.00195" in r.output
    r = CliRunner().invoke(report, ["compare", "--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"),
                                    "--task", "gqa"])
    assert r.exit_code == 2


def pope_samples(wrong: set[int], n: int = 300) -> list[dict]:
    """POPE-like samples with the fields the task's aggregate needs (category, label, pred, correct)."""
    out = []
    for i in range(n):
        label = "yes" if i % 2 else "no"
        pred = label if i not in wrong else ("no" if label == "yes" else "yes")
        out.append({"doc_id": f"p{i}", "prompt": "q", "prediction": pred, "target": label,
                    "scores": {"category": ("random", "popular", "adversarial")[i % 3], "label": label,
                               "pred": pred, "correct": float(pred == label)},
                    "candidate_probs": None, "n_tokens": 1, "error": None})
    return out


def write_pope(res: Path, run: str, wrong: set[int]):
    return write_task(res, run, "pope", headline="f1", metrics={"f1": 0.0}, samples=pope_samples(wrong))


@pytest.mark.parametrize("cand_wrong,code", [(set(range(0, 300, 4)) | set(range(1, 120, 4)), 1),
                                             (set(range(0, 300, 4)) | {1}, 0),
                                             (set(range(0, 200, 4)), 0)])
def test_pope_f1_gate(tmp_path, cand_wrong, code):
    write_pope(tmp_path, "base", set(range(0, 300, 4)))  # 75 wrong
    write_pope(tmp_path, "cand", cand_wrong)
    r = invoke(tmp_path / "base", tmp_path / "cand")
    assert r.exit_code == code, r.output
    assert " aggregate " in r.output  # POPE's F1 recomputed on each resample
    r = invoke(tmp_path / "base", tmp_path / "cand", "--method", "mean")
    assert r.exit_code == code and " correct " in r.output, r.output
