"""Scoring: a model's answer to one document becomes a sample record, and a task's sample records
become its summary (metrics, bootstrap 95% intervals, counts).

`mmeval run` (the runner, batch by batch) and `mmeval score` (`mmeval.rescore`, from a predictions
file) both go through these two functions, so rescoring a run's samples file gives the run's numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mmeval.bootstrap import bootstrap_ci
from mmeval.task import Task
from mmeval.types import Doc, Prediction, Request, SampleRecord


def sample_record(task: Task, protocol: str, doc: Doc, request: Request, prediction: Prediction) -> SampleRecord:
    """One line of the samples log: the prediction scored under the protocol, or, when the model
    could not answer (e.g. an unreadable image), the error with no scores (excluded from the metrics)."""
    if prediction.error is not None:
        return SampleRecord(doc_id=doc.doc_id, prompt=request.prompt, prediction="", target=doc.target,
                            scores={}, error=prediction.error)
    return SampleRecord(doc_id=doc.doc_id, prompt=request.prompt, prediction=prediction.text, target=doc.target,
                        scores=task.score(doc, prediction, protocol), candidate_probs=prediction.candidate_probs,
                        n_tokens=prediction.n_tokens)


def summarize(task: Task, protocol: str, records: Sequence[SampleRecord], n_boot: int, seed: int) -> dict[str, Any]:
    """Metrics, their bootstrap 95% intervals, and the counts, from scored sample records.

    Errored records are counted in `n_errors` and left out of everything else. Intervals cover the
    task's `ci_metrics` (all metrics when it names none) and resample the task's `bootstrap_units`;
    `n_boot=0` skips them.
    """
    scored = [r for r in records if r.error is None]
    scores = [r.scores for r in scored]
    metrics = task.aggregate(scores, protocol) if scores else {}
    wanted = task.ci_metrics(protocol)

    def statistic(sample: Sequence[dict]) -> dict[str, float]:
        m = task.aggregate(sample, protocol)
        return {k: v for k, v in m.items() if wanted is None or k in wanted}

    ci = {}
    if scores and n_boot > 0:
        ci = bootstrap_ci(scores, statistic, n_boot=n_boot, seed=seed, units=task.bootstrap_units(scores, protocol))
    return {
        "task": task.name, "protocol": protocol, "n": len(scored), "n_errors": len(records) - len(scored),
        "metrics": metrics, "ci95": {k: [float(lo), float(hi)] for k, (lo, hi) in ci.items()},
        "headline": task.headline(protocol),
        "task_args": task.recorded_options(),  # judge keys and URL secrets redacted
        # what the documents were read from (None: the task does not record it)
        "data": task.data_source.to_json() if task.data_source is not None else None,
    }
