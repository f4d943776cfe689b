"""`mmeval check` fails closed: lost coverage is a regression, NaN and bad options are exit 2.

Each probe that once passed a broken candidate is a test here, plus two properties: a candidate
with k > 0 more unscored samples than the baseline never passes, and a candidate identical to
the baseline always passes.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmeval.registry import get_task
from mmeval.report import check as check_module
from mmeval.report.check import min_n_boot
from mmeval.report.commands import check
from mmeval.report.statistics import PairedBootstrap
from tests.report._report_helpers import write_task

N_POPE = 60


def invoke(base: Path, cand: Path, *extra: str):
    args = ["--baseline", str(base), "--candidate", str(cand), *extra]
    if "--n-boot" not in extra:
        args += ["--n-boot", "200"]
    return CliRunner().invoke(check, args)


def one_error_line(r) -> str:
    lines = r.output.strip().splitlines()
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    return lines[0]


# --------------------------------------------------------------------------- POPE runs in the real format
def labels(n: int = N_POPE) -> list[str]:
    return ["yes" if i % 2 else "no" for i in range(n)]


def pope_run(res: Path, run: str, preds: list[str], errors: set[int] = frozenset()) -> Path:
    """A POPE run as the runner writes it: samples (errored ones with empty scores) and metrics
    from the task's own aggregate over the scored samples."""
    samples = []
    for i, (pred, label) in enumerate(zip(preds, labels(len(preds)), strict=True)):
        err = "cannot identify image file" if i in errors else None
        scores = {} if err else {"category": ("random", "popular", "adversarial")[i % 3], "label": label,
                                 "pred": pred, "correct": float(pred == label)}
        samples.append({"doc_id": f"p{i}", "prompt": "q", "prediction": "" if err else pred, "target": label,
                        "scores": scores, "candidate_probs": None, "n_tokens": 1, "error": err})
    metrics = get_task("pope").aggregate([s["scores"] for s in samples if not s["error"]], "llava")
    path = write_task(res, run, "pope", headline="f1", metrics=metrics, samples=samples)
    data = json.loads(path.read_text())
    data["n"], data["n_errors"] = len(preds) - len(errors), len(errors)
    path.write_text(json.dumps(data))
    return res / run


def good_preds(n: int = N_POPE) -> list[str]:
    """Right on all but every fifth doc."""
    return [lab if i % 5 else ("no" if lab == "yes" else "yes") for i, lab in enumerate(labels(n))]


def f1_of(run: Path) -> float:
    return json.loads((run / "pope.json").read_text())["metrics"]["f1"]


# --------------------------------------------------------------------------- probe 1: failed samples
def test_55_of_60_failed_samples_fail_the_gate(tmp_path):
    base = pope_run(tmp_path, "base", good_preds())
    # the candidate fails on 55 docs; the 5 it answered are answered as the baseline did
    cand = pope_run(tmp_path, "cand", good_preds(), errors=set(range(5, N_POPE)))
    r = invoke(base, cand)
    assert r.exit_code == 1, r.output
    assert "55 more unscored samples than the baseline" in r.output
    assert "55 errored, e.g. p5: cannot identify image file" in r.output
    assert r.output.strip().splitlines()[-1] == "FAIL: 55 more unscored samples than the baseline in pope"


def test_failed_samples_from_a_real_mock_run_fail_the_gate(tmp_path):
    """End to end: the mock model on POPE data, the candidate's images broken for 55 of 60 docs."""
    from mmeval.cli import main
    from tasks.pope import Pope
    from tests.conftest import pope_rows

    rows = pope_rows(n_images=20, per_image=3)
    Pope.write_layout(tmp_path / "ok" / "pope", rows)
    Pope.write_layout(tmp_path / "broken" / "pope",
                      [dict(r, image=b"not an image") if i >= 5 else r for i, r in enumerate(rows)])
    for name, data, code in (("base", "ok", 0), ("cand", "broken", 3)):  # run exits 3 when samples failed
        r = CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", "pope", "--data", str(tmp_path / data),
                                      "--output", str(tmp_path / "out"), "--run-name", name, "--no-progress"])
        assert r.exit_code == code, r.output
    cand = json.loads((tmp_path / "out" / "cand" / "pope.json").read_text())
    assert cand["n"] == 5 and cand["n_errors"] == 55
    r = invoke(tmp_path / "out" / "base", tmp_path / "out" / "cand")
    assert r.exit_code == 1, r.output
    assert "55 more unscored samples than the baseline" in r.output and "55 errored" in r.output


@pytest.mark.parametrize("kind", ["missing", "no_score"])
def test_missing_and_unscored_samples_fail_the_gate(tmp_path, kind):
    base = pope_run(tmp_path, "base", good_preds())
    cand = pope_run(tmp_path, "cand", good_preds())
    path = cand / "pope.samples.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    if kind == "missing":  # e.g. an interrupted candidate run
        lines = lines[:-7]
    else:  # scored without a usable score
        for s in lines[:7]:
            s["scores"] = {"category": s["scores"]["category"], "label": s["target"], "pred": "yes"}
    path.write_text("".join(json.dumps(s) + "\n" for s in lines))
    r = invoke(base, cand)
    assert r.exit_code == 1, r.output
    assert "7 more unscored samples than the baseline" in r.output
    assert ("7 missing from its samples file" if kind == "missing" else "7 without a finite 'f1' or 'correct' score") \
        in r.output


def test_the_baselines_own_failures_are_allowed_but_no_more(tmp_path):
    base = pope_run(tmp_path, "base", good_preds(), errors={1, 2, 3})
    # the same count on other docs passes (the comparison pairs the 54 docs both scored) ...
    same = pope_run(tmp_path, "same", good_preds(), errors={10, 11, 12})
    r = invoke(base, same)
    assert r.exit_code == 0, r.output
    assert "coverage ok" in r.output and " 54 " in r.output
    # ... one more is a regression
    more = pope_run(tmp_path, "more", good_preds(), errors={1, 2, 3, 4})
    r = invoke(base, more)
    assert r.exit_code == 1, r.output
    assert "1 more unscored samples than the baseline" in r.output


def test_a_retried_sample_counts_once_with_its_last_record(tmp_path):
    base = pope_run(tmp_path, "base", good_preds())
    cand = pope_run(tmp_path, "cand", good_preds())
    path = cand / "pope.samples.jsonl"
    lines = path.read_text().splitlines()
    errored = dict(json.loads(lines[0]), scores={}, error="timeout")
    path.write_text(json.dumps(errored) + "\n" + "\n".join(lines) + "\n")  # failed first, then retried on resume
    r = invoke(base, cand)
    assert r.exit_code == 0, r.output
    assert " 60 " in r.output and "unscored" not in r.output


def test_extra_docs_and_tasks_of_the_candidate_are_stated(tmp_path):
    base = pope_run(tmp_path, "base", good_preds())
    cand = pope_run(tmp_path, "cand", good_preds(N_POPE + 6))
    write_task(tmp_path, "cand", "gqa", metrics={"accuracy": 50.0}, samples=[])
    r = invoke(base, cand)
    assert r.exit_code == 0, r.output
    assert "pope: the candidate has 6 docs the baseline lacks (not compared)" in r.output
    assert "candidate tasks without baseline (not checked): gqa" in r.output
    r = invoke(tmp_path / "cand", tmp_path / "base" / "pope.json")  # a dir baseline against one task file
    assert "baseline tasks not checked (the candidate is one task file): gqa" in r.output
    assert r.exit_code == 1 and "6 missing from its samples file" in r.output, r.output


# --------------------------------------------------------------------------- probe 2: NaN
def f1_collapse(tmp_path) -> tuple[Path, Path]:
    """Baseline says 'yes' to everything (F1 66.7, accuracy 50), the candidate 'no' (F1 0, accuracy 50)."""
    base = pope_run(tmp_path, "base", ["yes"] * N_POPE)
    cand = pope_run(tmp_path, "cand", ["no"] * N_POPE)
    assert f1_of(base) - f1_of(cand) > 58
    return base, cand


def test_the_f1_collapse_fails_with_valid_options(tmp_path):
    base, cand = f1_collapse(tmp_path)
    r = invoke(base, cand)
    assert r.exit_code == 1, r.output
    assert "significant drop > 0.5 in pope/f1" in r.output


@pytest.mark.parametrize("n_boot", ["0", "-5", "1", "99"])
def test_too_few_resamples_are_bad_input(tmp_path, n_boot):
    base, cand = f1_collapse(tmp_path)
    line = one_error_line(invoke(base, cand, "--n-boot", n_boot))
    assert f"--n-boot {n_boot}: must be an integer >= 100" in line


def test_n_boot_must_allow_a_p_value_below_alpha(tmp_path):
    base, cand = f1_collapse(tmp_path)
    assert min_n_boot(0.001) == 1000 and min_n_boot(0.05) == 100 and min_n_boot(0.5) == 100
    line = one_error_line(invoke(base, cand, "--alpha", "0.001", "--n-boot", "999"))
    assert "--n-boot 999: must be an integer >= 1000" in line
    assert invoke(base, cand, "--alpha", "0.001", "--n-boot", "1000").exit_code == 1


@pytest.mark.parametrize("side", ["base", "cand"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_non_finite_gated_metric_is_bad_input(tmp_path, side, value):
    runs = dict(zip(("base", "cand"), f1_collapse(tmp_path), strict=True))
    path = runs[side] / "pope.json"
    data = json.loads(path.read_text())
    data["metrics"]["f1"] = value
    path.write_text(json.dumps(data))  # json writes NaN / Infinity as Python reads them back
    line = one_error_line(invoke(runs["base"], runs["cand"]))
    assert f"{path}: metrics.f1 is {value!r}, not a finite number" in line


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_per_sample_score_is_bad_input(tmp_path, value):
    base, cand = f1_collapse(tmp_path)
    path = cand / "pope.samples.jsonl"
    lines = path.read_text().splitlines()
    assert '"correct": 0.0' in lines[3]  # the candidate says 'no', doc p3 is a 'yes'
    lines[3] = lines[3].replace('"correct": 0.0', f'"correct": {value}')
    path.write_text("\n".join(lines) + "\n")
    line = one_error_line(invoke(base, cand))
    assert f"{path}: doc p3: scores.correct is not finite" in line


def test_a_non_finite_interval_is_bad_input_not_ok(tmp_path, monkeypatch):
    """Should the bootstrap ever return NaN (as --n-boot 0 once did), the gate stops instead of reading 'ok'."""
    base, cand = f1_collapse(tmp_path)
    nan = float("nan")
    monkeypatch.setattr(check_module, "paired_bootstrap",
                        lambda a, b, **kw: PairedBootstrap(-66.7, (nan, nan), nan, nan, nan, len(a)))
    line = one_error_line(invoke(base, cand, "--method", "mean"))
    assert "pope/f1: the paired comparison gave a non-finite interval low (nan)" in line


# --------------------------------------------------------------------------- probe 3: options
def test_a_metric_typo_is_bad_input_not_a_pass_on_the_rest(tmp_path):
    base, cand = f1_collapse(tmp_path)
    assert invoke(base, cand, "--metrics", "accuracy").exit_code == 0  # accuracy really did not move
    line = one_error_line(invoke(base, cand, "--metrics", "f1x,accuracy"))
    assert "unknown metric 'f1x' for pope" in line
    assert "accuracy, adversarial/accuracy," in line and ", f1, " in line  # lists what there is
    r = invoke(base, cand, "--metrics", "f1,accuracy")
    assert r.exit_code == 1 and "significant drop > 0.5 in pope/f1" in r.output, r.output


def test_a_metric_the_candidate_lacks_is_bad_input(tmp_path):
    base, cand = f1_collapse(tmp_path)
    data = json.loads((cand / "pope.json").read_text())
    del data["metrics"]["f1"]
    (cand / "pope.json").write_text(json.dumps(data))
    line = one_error_line(invoke(base, cand))
    assert "unknown metric 'f1'" in line and "(it has: accuracy," in line


@pytest.mark.parametrize("option,value,expected", [
    ("--alpha", "1.5", "--alpha 1.5: must be a number strictly between 0 and 1"),
    ("--alpha", "0", "--alpha 0.0: must be a number strictly between 0 and 1"),
    ("--alpha", "1", "--alpha 1.0: must be a number strictly between 0 and 1"),
    ("--alpha", "nan", "--alpha nan: must be a number strictly between 0 and 1"),
    ("--max-drop", "-0.1", "--max-drop -0.1: must be a finite number >= 0"),
    ("--max-drop", "inf", "--max-drop inf: must be a finite number >= 0"),
    ("--max-drop", "nan", "--max-drop nan: must be a finite number >= 0"),
    ("--seed", "-1", "--seed -1: must be an integer >= 0"),
])
def test_options_out_of_range_are_bad_input(tmp_path, option, value, expected):
    base, cand = f1_collapse(tmp_path)
    assert expected in one_error_line(invoke(base, cand, option, value))


def test_a_baseline_without_headline_is_bad_input(tmp_path):
    base, cand = f1_collapse(tmp_path)
    data = json.loads((base / "pope.json").read_text())
    data["headline"] = None
    (base / "pope.json").write_text(json.dumps(data))
    assert "no headline metric; name one with --metrics" in one_error_line(invoke(base, cand))


# --------------------------------------------------------------------------- properties
def toy_run(res: Path, run: str, scores: list[float | None], kinds: dict[int, str]) -> Path:
    """A run of an unregistered task (the per-sample-mean test): doc i scores ``scores[i]``;
    ``kinds[i]`` makes doc i 'errored', 'no_score' or 'missing'."""
    samples = []
    for i, v in enumerate(scores):
        kind = kinds.get(i)
        if kind == "missing":
            continue
        samples.append({"doc_id": f"t{i}", "prompt": "q", "prediction": "", "target": "",
                        "scores": {} if kind else {"correct": v},
                        "candidate_probs": None, "n_tokens": 1, "error": "timeout" if kind == "errored" else None})
    scored = [s["scores"]["correct"] for s in samples if s["scores"]]
    acc = 100.0 * sum(scored) / len(scored) if scored else None
    write_task(res, run, "toy", headline="accuracy", metrics={"accuracy": acc} if scored else {}, samples=samples)
    return res / run


settings_ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
options = st.fixed_dictionaries({
    "alpha": st.sampled_from([0.001, 0.01, 0.05, 0.2, 0.5]),
    "max_drop": st.sampled_from([0.0, 0.5, 5.0, 50.0]),
    "seed": st.integers(0, 2**16),
})
score_values = st.sampled_from([0.0, 1.0, 0.3, 0.6])


def gate_args(o: dict) -> list[str]:
    return ["--alpha", str(o["alpha"]), "--max-drop", str(o["max_drop"]), "--seed", str(o["seed"]),
            "--n-boot", str(min_n_boot(o["alpha"]))]


@st.composite
def lost_coverage(draw):
    """Baseline and candidate scores, the baseline's failures, and a candidate with k > 0 more."""
    n = draw(st.integers(2, 40))
    base = draw(st.lists(score_values, min_size=n, max_size=n))
    cand = draw(st.lists(score_values, min_size=n, max_size=n))  # anything, improvements included
    kind = st.sampled_from(["errored", "no_score", "missing"])
    base_fail = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))  # the baseline scores >= 1 doc
    k = draw(st.integers(1, n - len(base_fail)))
    cand_fail = draw(st.lists(st.integers(0, n - 1), unique=True, min_size=len(base_fail) + k,
                              max_size=len(base_fail) + k))
    base_kinds = {i: draw(st.sampled_from(["errored", "no_score"])) for i in base_fail}  # docs of its samples file
    return base, base_kinds, cand, {i: draw(kind) for i in cand_fail}, k


@settings_
@given(case=lost_coverage(), o=options)
def test_property_more_unscored_samples_never_pass(case, o):
    base, base_kinds, cand, cand_kinds, k = case
    with tempfile.TemporaryDirectory() as d:
        res = Path(d)
        r = invoke(toy_run(res, "base", base, base_kinds), toy_run(res, "cand", cand, cand_kinds), *gate_args(o))
    if all(cand_kinds.get(i) == "missing" for i in range(len(base))):  # an empty samples file: no common doc
        assert "no common doc_ids for toy" in one_error_line(r)
        return
    assert r.exit_code == 1, r.output
    assert f"{k} more unscored samples than the baseline in toy" in r.output.strip().splitlines()[-1]


@settings_
@given(data=st.data(), o=options, method=st.sampled_from(["auto", "mean"]))
def test_property_an_identical_candidate_always_passes(data, o, method):
    n = data.draw(st.integers(1, 40))
    scores = data.draw(st.lists(score_values, min_size=n, max_size=n))
    fail = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1))
    kinds = {i: data.draw(st.sampled_from(["errored", "no_score"])) for i in fail}
    with tempfile.TemporaryDirectory() as d:
        res = Path(d)
        r = invoke(toy_run(res, "base", scores, kinds), toy_run(res, "cand", scores, kinds),
                   *gate_args(o), "--method", method)
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].startswith("PASS")


@settings(max_examples=10, deadline=None)
@given(wrong=st.sets(st.integers(0, N_POPE - 1), max_size=N_POPE), errors=st.sets(st.integers(0, N_POPE - 1),
                                                                                 max_size=N_POPE - 1))
def test_property_an_identical_pope_run_passes_on_its_recomputed_f1(wrong, errors):
    preds = [("no" if lab == "yes" else "yes") if i in wrong else lab for i, lab in enumerate(labels())]
    with tempfile.TemporaryDirectory() as d:
        res = Path(d)
        r = invoke(pope_run(res, "base", preds, errors), pope_run(res, "cand", preds, errors))
    assert r.exit_code == 0, r.output
    assert " aggregate " in r.output and r.output.strip().splitlines()[-1].startswith("PASS")
