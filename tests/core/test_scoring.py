"""mmeval.scoring: the one place a prediction becomes a sample record and records become a summary."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mmeval.rescore import prediction_from_json
from mmeval.scoring import sample_record, summarize
from mmeval.task import Task
from mmeval.types import Doc, Prediction, Request, SampleRecord


class Counting(Task):
    """A task small enough to score by hand: the answer is a number, correct when it equals the target."""

    name = "counting"
    protocols = ("llava",)

    def load_docs(self, data: Path | None) -> list[Doc]:
        return []

    def request(self, doc: Doc, protocol: str) -> Request:
        return Request(doc_id=doc.doc_id, prompt=f"How many shapes? ({doc.doc_id})")

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict:
        answer = prediction.text.strip()
        return {"correct": float(answer == str(doc.target)), "answer": answer}

    def aggregate(self, scores, protocol: str) -> dict:
        answers = Counter(s["answer"] for s in scores)
        return {"accuracy": 100.0 * sum(s["correct"] for s in scores) / len(scores),
                "answered": float(len(scores)), "commonest": answers.most_common(1)[0][0]}

    def headline(self, protocol: str) -> str:
        return "accuracy"

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        return ("accuracy",)


TASK = Counting()


def doc(i: int, target: int) -> Doc:
    return Doc(doc_id=f"d{i}", fields={}, target=target)


def record(i: int, target: int, pred: Prediction) -> SampleRecord:
    d = doc(i, target)
    return sample_record(TASK, "llava", d, TASK.request(d, "llava"), pred)


def test_answered_sample_is_scored_with_its_probabilities_and_tokens():
    rec = record(1, 3, Prediction(text=" 3", candidate_probs={"3": 0.7}, n_tokens=2))
    assert rec.to_json() == {"doc_id": "d1", "prompt": "How many shapes? (d1)", "prediction": " 3", "target": 3,
                             "scores": {"correct": 1.0, "answer": "3"}, "candidate_probs": {"3": 0.7},
                             "n_tokens": 2, "error": None}


def test_failed_sample_keeps_only_its_error():
    rec = record(2, 3, Prediction(text="ignored", n_tokens=5, error="unreadable image x.png"))
    assert rec.to_json() == {"doc_id": "d2", "prompt": "How many shapes? (d2)", "prediction": "", "target": 3,
                             "scores": {}, "candidate_probs": None, "n_tokens": 0, "error": "unreadable image x.png"}


def test_a_saved_line_rescored_is_the_record_the_run_wrote():
    """`mmeval score` reads a run's samples lines back as predictions: same record, both kinds of line."""
    for i, pred in enumerate([Prediction(text="4", candidate_probs={"4": 0.4, "5": 0.1}, n_tokens=1),
                              Prediction(error="unreadable image y.png")]):
        written = record(i, 4, pred)
        line = json.loads(json.dumps(written.to_json()))
        assert record(i, 4, prediction_from_json(line)) == written


def test_summary_counts_errors_apart_and_bootstraps_only_the_ci_metrics():
    answers = ["3", "3", "2", "3", "1"]  # targets all 3: 3 of 5 correct
    records = [record(i, 3, Prediction(text=a)) for i, a in enumerate(answers)]
    records.append(record(9, 3, Prediction(error="unreadable image z.png")))
    summary = summarize(TASK, "llava", records, n_boot=200, seed=0)
    assert list(summary) == ["task", "protocol", "n", "n_errors", "metrics", "ci95", "headline", "task_args", "data"]
    assert summary["task_args"] == {} and summary["data"] is None  # built directly: no options, no provenance
    assert (summary["task"], summary["protocol"], summary["headline"]) == ("counting", "llava", "accuracy")
    assert (summary["n"], summary["n_errors"]) == (5, 1)
    assert summary["metrics"] == {"accuracy": pytest.approx(60.0), "answered": 5.0, "commonest": "3"}
    assert list(summary["ci95"]) == ["accuracy"]  # not "answered": the task names its CI metrics
    lo, hi = summary["ci95"]["accuracy"]
    assert isinstance(lo, float) and 0.0 <= lo < 60.0 < hi <= 100.0
    assert summarize(TASK, "llava", records, n_boot=200, seed=0) == summary  # seeded
    assert summarize(TASK, "llava", records, n_boot=0, seed=0)["ci95"] == {}


def test_summary_of_only_failed_samples_has_no_metrics():
    records = [record(i, 3, Prediction(error="unreadable")) for i in range(3)]
    summary = summarize(TASK, "llava", records, n_boot=100, seed=0)
    assert (summary["n"], summary["n_errors"], summary["metrics"], summary["ci95"]) == (0, 3, {}, {})
