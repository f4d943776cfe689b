"""End to end on the mock model: run writes both files, score reproduces, resume is exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.cli import main

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def only_run_dir(out: Path) -> Path:
    dirs = [d for d in out.iterdir() if d.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def test_run_writes_samples_and_results(pope_data, tmp_path):
    out = tmp_path / "out"
    r = run_cli("run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data), "--output", str(out),
                "--no-progress", "--batch-size", "4")
    assert r.exit_code == 0, r.output
    run_dir = only_run_dir(out)
    lines = [json.loads(x) for x in (run_dir / "pope.samples.jsonl").read_text().splitlines()]
    assert len(lines) == 18 and len({x["doc_id"] for x in lines}) == 18
    assert {"doc_id", "prompt", "prediction", "target", "scores"} <= set(lines[0])
    res = json.loads((run_dir / "pope.json").read_text())
    assert res["n"] == 18 and res["protocol"] == "llava" and res["headline"] == "f1"
    for key in ("accuracy", "f1", "precision", "recall", "yes_ratio", "random/f1", "popular/f1", "adversarial/f1"):
        assert key in res["metrics"]
    lo, hi = res["ci95"]["accuracy"]
    assert lo <= res["metrics"]["accuracy"] <= hi
    assert res["model"]["name"] == "mock" and "torch" in res["versions"] and res["device"].startswith("cpu")
    assert res["timings"]["samples_per_s"] > 0
    # the accuracy equals the share of correct samples in the log, averaged per category
    per_cat = {}
    for x in lines:
        per_cat.setdefault(x["scores"]["category"], []).append(x["scores"]["correct"])
    expected = 100 * sum(sum(v) / len(v) for v in per_cat.values()) / len(per_cat)
    assert res["metrics"]["accuracy"] == pytest.approx(expected)


@pytest.mark.parametrize("protocol", ["llava", "prismatic", "lmms-eval"])
def test_score_reproduces_run_metrics(pope_data, tmp_path, protocol):
    out = tmp_path / "out"
    r = run_cli("run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data), "--output", str(out),
                "--protocol", protocol, "--no-progress")
    assert r.exit_code == 0, r.output
    run_dir = only_run_dir(out)
    res = json.loads((run_dir / "pope.json").read_text())
    scored = tmp_path / "scored.json"
    r = run_cli("score", "--task", "pope", "--predictions", str(run_dir / "pope.samples.jsonl"),
                "--data", str(pope_data), "--protocol", protocol, "--output", str(scored))
    assert r.exit_code == 0, r.output
    again = json.loads(scored.read_text())
    assert again["metrics"] == res["metrics"]
    assert again["ci95"] == res["ci95"]
    if protocol == "prismatic":
        assert "aucroc" in res["metrics"] and res["headline"] == "accuracy"


def test_samples_rescored_under_another_protocol(pope_data, tmp_path):
    """A prismatic run keeps candidate probabilities, a llava run keeps text: each rescoring
    that needs what the file lacks fails clearly."""
    out = tmp_path / "out"
    assert run_cli("run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data), "--output", str(out),
                   "--no-progress").exit_code == 0
    samples = only_run_dir(out) / "pope.samples.jsonl"
    r = CliRunner().invoke(main, ["score", "--task", "pope", "--predictions", str(samples), "--data", str(pope_data),
                                  "--protocol", "prismatic"])
    assert r.exit_code == 2 and "probabilities" in r.output
    r = run_cli("score", "--task", "pope", "--predictions", str(samples), "--data", str(pope_data),
                "--protocol", "lmms-eval")
    assert r.exit_code == 0


def test_run_and_score_load_the_protocols_reference_split(tmp_path):
    """VQAv2's default split is each protocol's reference (vlm-evaluation: val): `run` and `score`
    tell the task the protocol before it loads its documents."""
    from PIL import Image

    from tasks.vqav2 import VQAv2

    rows = [{"question_id": 7 + i, "question": f"What number is this {i}?", "image_id": i, "answers": [str(i)] * 10,
             "image": Image.new("RGB", (8, 8), (9 * i, 9, 9))} for i in range(3)]
    VQAv2.write_layout(tmp_path / "data" / "vqav2", rows, split="val", layout="parquet")  # no test-dev files
    out = tmp_path / "out"
    r = run_cli("run", "--model", "mock", "--tasks", "vqav2", "--data", str(tmp_path / "data"), "--output", str(out),
                "--protocol", "prismatic", "--no-progress")
    assert r.exit_code == 0, r.output
    res = json.loads((only_run_dir(out) / "vqav2.json").read_text())
    assert res["n"] == 3 and res["data"]["split"] == "validation"  # the lmms-lab split name
    scored = tmp_path / "scored.json"
    r = run_cli("score", "--task", "vqav2", "--predictions", str(only_run_dir(out) / "vqav2.samples.jsonl"),
                "--data", str(tmp_path / "data"), "--protocol", "prismatic", "--output", str(scored))
    assert r.exit_code == 0, r.output
    assert json.loads(scored.read_text())["metrics"] == res["metrics"]


def test_rerun_resumes_without_redoing(pope_data, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data), "--output", str(out),
            "--no-progress"]
    assert run_cli(*args, "--limit", "7").exit_code == 0
    run_dir = only_run_dir(out)
    first = (run_dir / "pope.samples.jsonl").read_text().splitlines()
    assert len(first) == 7
    assert run_cli(*args).exit_code == 0
    second = (run_dir / "pope.samples.jsonl").read_text().splitlines()
    assert second[:7] == first and len(second) == 18  # the first 7 were not redone
    res = json.loads((run_dir / "pope.json").read_text())
    assert res["timings"]["resumed_samples"] == 7 and res["timings"]["samples_timed"] == 11


def test_changed_protocol_never_mixes_into_old_run(pope_data, tmp_path):
    out = tmp_path / "out"
    base = ["run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data), "--output", str(out),
            "--no-progress", "--run-name", "fixed"]
    assert run_cli(*base).exit_code == 0
    r = CliRunner().invoke(main, base + ["--protocol", "prismatic"])
    assert r.exit_code == 2 and "different protocol" in r.output
    r = CliRunner().invoke(main, base + ["--model-args", "seed=3"])
    assert r.exit_code == 2 and "different model" in r.output
    # without a fixed run name, a different config gets its own folder
    assert run_cli(*base[:-2], "--protocol", "prismatic").exit_code == 0
    assert len([d for d in out.iterdir() if d.is_dir()]) == 2


@pytest.mark.slow  # three `mmeval run` subprocesses, one of them slowed down to be killed mid-run
def test_kill_9_mid_run_then_resume_matches_uninterrupted(tmp_path):
    """A run killed with SIGKILL mid-way, re-run, ends with the metrics of a clean run."""
    from tasks.pope import Pope
    from tests.conftest import pope_rows

    data = tmp_path / "data"
    Pope.write_layout(data / "pope", pope_rows(n_images=20, per_image=3))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "mmeval", "run", "--model", "mock", "--model-args", "delay=0.2", "--tasks", "pope",
           "--data", str(data), "--batch-size", "3", "--no-progress"]
    killed_out = tmp_path / "killed"
    proc = subprocess.Popen(cmd + ["--output", str(killed_out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    samples = None
    while time.time() < deadline:
        found = list(killed_out.glob("*/pope.samples.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 9:
            samples = found[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert samples is not None, "the run never got going"
    n_before = len(samples.read_text().splitlines())
    assert n_before < 60 and not (samples.parent / "pope.json").exists()
    fast = [c if c != "delay=0.2" else "delay=0" for c in cmd]
    # delay is a model arg, so it is part of the run's identity: resume with the same one
    subprocess.run(cmd + ["--output", str(killed_out)], env=env, check=True, capture_output=True)
    subprocess.run(fast + ["--output", str(tmp_path / "clean")], env=env, check=True, capture_output=True)
    resumed = json.loads((samples.parent / "pope.json").read_text())
    clean = json.loads(next((tmp_path / "clean").glob("*/pope.json")).read_text())
    assert resumed["timings"]["resumed_samples"] >= n_before - 1
    assert resumed["n"] == clean["n"] == 60
    assert resumed["metrics"] == clean["metrics"]
    assert resumed["ci95"] == clean["ci95"]
