"""The files a run writes keep their shape: the keys, their order and their types (results files
stay comparable across versions; `mmeval report` and `mmeval check` read old ones)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from click.testing import CliRunner

from mmeval.cli import main
from mmeval.runner import RunConfig, Runner, TaskPlan
from mmeval.task import Task
from mmeval.types import Doc, Request
from model_adapters.mock import MockAdapter
from tests.conftest import pope_rows

RESULTS_KEYS = ["task", "protocol", "n", "n_errors", "metrics", "ci95", "headline", "task_args", "data", "model",
                "generation", "timings",
                "versions", "device", "created", "run"]
TIMINGS_KEYS = ["wall_s", "samples_timed", "samples_per_s", "tokens_per_s", "peak_memory_mb", "resumed_samples",
                "processes", "batch_size", "data_s", "load_s", "first_answer_s", "warmup_s", "steady_samples_per_s",
                "gpu_busy_pct"]
SAMPLE_KEYS = ["doc_id", "prompt", "prediction", "target", "scores", "candidate_probs", "n_tokens", "error"]


def test_mock_run_results_samples_and_manifest_shapes(tmp_path):
    from tasks.pope import Pope

    data = tmp_path / "data"
    Pope.write_layout(data / "pope", pope_rows(broken={1}))  # image 1's three questions fail
    r = CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", "pope", "--data", str(data), "--output",
                                  str(tmp_path / "out"), "--run-name", "r", "--no-progress", "--bootstrap", "50"])
    assert r.exit_code == 3, r.output  # failed samples: exit 3
    run_dir = tmp_path / "out" / "r"
    text = (run_dir / "pope.json").read_text()
    res = json.loads(text)
    assert text == json.dumps(res, indent=2) + "\n"  # the byte layout: indent 2, keys as written, final newline
    assert list(res) == RESULTS_KEYS + ["notes"]  # POPE's lmms-lab copy under llava: a note says so
    assert "not compare" in res["notes"]["data_note"]
    assert (res["task"], res["protocol"], res["headline"], res["run"]) == ("pope", "llava", "f1", "r")
    assert (res["n"], res["n_errors"]) == (15, 3)
    assert res["metrics"] and all(type(v) is float for v in res["metrics"].values())
    ci_keys = Pope().ci_metrics("llava")
    assert list(res["ci95"]) == [k for k in res["metrics"] if k in ci_keys]  # in the metrics' order
    for lo, hi in res["ci95"].values():
        assert type(lo) is float and type(hi) is float and lo <= hi
    assert list(res["model"]) == ["name", "args", "checkpoint", "checkpoint_sha256", "config"]
    assert res["model"]["name"] == "mock"
    assert res["generation"] == {"max_new_tokens": 128, "greedy": True, "stop": [], "candidates": []}
    t = res["timings"]
    assert list(t) == TIMINGS_KEYS
    assert (t["samples_timed"], t["resumed_samples"], t["processes"]) == (18, 0, 1)
    assert type(t["wall_s"]) is float and t["samples_per_s"] > 0 and type(t["peak_memory_mb"]) is float
    # the CLI's default batch size is auto: on the CPU 8 requests, so 18 pending run as 8 + 8 + 2
    assert t["batch_size"] == 8 and type(t["load_s"]) is float and type(t["data_s"]) is float
    assert t["load_s"] >= 0 and t["data_s"] > 0
    assert type(t["first_answer_s"]) is float and t["first_answer_s"] > 0  # from the process's start
    assert 0 <= t["warmup_s"] <= t["wall_s"]  # the first batch of 8 and the last of 2 are warm-up
    assert t["steady_samples_per_s"] > 0 and t["gpu_busy_pct"] is None  # no GPU
    assert isinstance(res["versions"], dict) and "numpy" in res["versions"]
    assert res["device"].startswith("cpu")
    assert dt.datetime.fromisoformat(res["created"]).tzinfo is not None

    lines = [json.loads(line) for line in (run_dir / "pope.samples.jsonl").read_text().splitlines()]
    assert len(lines) == 18 and all(list(line) == SAMPLE_KEYS for line in lines)
    failed = [line for line in lines if line["error"]]
    assert len(failed) == 3
    for line in failed:
        assert (line["prediction"], line["scores"], line["candidate_probs"], line["n_tokens"]) == ("", {}, None, 0)
        assert line["error"].startswith("unreadable image")

    manifest = json.loads((run_dir / "run.json").read_text())
    assert list(manifest) == ["model_fingerprint", "model", "tasks"]
    assert manifest["model"] == res["model"]
    assert list(manifest["tasks"]["pope"]) == ["fingerprint", "description"]
    description = manifest["tasks"]["pope"]["description"]
    assert list(description) == ["task", "protocol", "task_version", "generation", "task_args", "data"]
    assert description["generation"] == res["generation"] and description["task_args"] == {}
    assert list(description["data"]) == ["basis", "digest", "files"]
    assert description["data"]["basis"] == "provenance" and len(description["data"]["digest"]) == 16
    assert description["data"]["files"] == 1  # the one parquet file

    # beside the samples file: the model and task fingerprints its lines were answered under
    ident = json.loads((run_dir / "pope.samples.identity.json").read_text())
    assert list(ident) == ["task", "model_fingerprint", "task_fingerprint", "model", "description"]
    assert ident["model_fingerprint"] == manifest["model_fingerprint"] and ident["model"] == manifest["model"]
    assert ident["task_fingerprint"] == manifest["tasks"]["pope"]["fingerprint"]
    assert ident["description"] == description
    assert sorted(p.name for p in run_dir.iterdir()) == [".lock", "pope.json", "pope.samples.identity.json",
                                                         "pope.samples.jsonl", "run.json"]
    assert (run_dir / ".lock").read_text() == ""  # released: no holder named


class Noted(Task):
    """In-memory docs and a `finalize` that writes a file and returns notes (as test-server splits do)."""

    name = "noted"
    protocols = ("llava",)

    def load_docs(self, data: Path | None) -> list[Doc]:
        return [Doc(doc_id=str(i), fields={}, target="Yes") for i in range(4)]

    def request(self, doc: Doc, protocol: str) -> Request:
        return Request(doc_id=doc.doc_id, prompt=f"question {doc.doc_id}")

    def score(self, doc, prediction, protocol):
        return {"correct": float(prediction.text == doc.target)}

    def aggregate(self, scores, protocol):
        return {"accuracy": 100.0 * sum(s["correct"] for s in scores) / len(scores)}

    def headline(self, protocol):
        return "accuracy"

    def finalize(self, records, out_dir, protocol):
        (out_dir / "noted_submission.json").write_text(json.dumps([r.prediction for r in records]))
        return {"submission_file": str(out_dir / "noted_submission.json")}


def test_notes_come_last_and_run_plans_returns_what_it_wrote(tmp_path):
    task = Noted()
    docs = task.load_docs(None)
    plan = TaskPlan(task, "llava", docs, [task.request(d, "llava") for d in docs])
    runner = Runner(RunConfig(model="mock", tasks=["noted"], output=tmp_path, run_name="r", n_boot=0,
                              progress=False), log=lambda m: None)
    results = runner.run_plans([plan], MockAdapter, MockAdapter(answers=("Yes", "No")))
    written = json.loads((tmp_path / "r" / "noted.json").read_text())
    assert list(written) == RESULTS_KEYS + ["notes"]
    assert written["notes"] == {"submission_file": str(tmp_path / "r" / "noted_submission.json")}
    assert results == {"noted": written}
    samples = [json.loads(line) for line in (tmp_path / "r" / "noted.samples.jsonl").read_text().splitlines()]
    expected = 100.0 * sum(s["prediction"] == "Yes" for s in samples) / len(samples)
    assert written["metrics"] == {"accuracy": expected} and written["ci95"] == {}  # n_boot=0: no intervals
