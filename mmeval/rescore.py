"""`mmeval score`: score saved predictions without any model, under any protocol the task has.

The input is JSONL with one `{"doc_id": ..., "prediction": ...}` per line (optionally
`candidate_probs`, `n_tokens`, `error`); a run's own `<task>.samples.jsonl` is such a file, so a run
can be rescored. Each line is scored and the task summarised by `mmeval.scoring`, the functions a
run uses, so rescoring a run's samples under its protocol gives the run's metrics and intervals.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmeval.data.sources import read_text
from mmeval.errors import DataError
from mmeval.runner import load_task_docs
from mmeval.scoring import sample_record, summarize
from mmeval.task import Task
from mmeval.types import Prediction, SampleRecord
from mmeval.validation import prediction_from_record


def read_predictions(path: Path, known_ids: set[str]) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"--predictions {path}: no such file")
    out: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(read_text(path, "predictions").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not valid JSON ({exc})") from exc
        if not isinstance(obj, dict) or "doc_id" not in obj or ("prediction" not in obj and not obj.get("error")):
            raise DataError(f"{path}:{n}: expected an object with fields doc_id and prediction")
        doc_id = str(obj["doc_id"])
        if doc_id not in known_ids:
            raise DataError(f"{path}:{n}: unknown doc_id {doc_id!r} (not in this task's data)")
        if doc_id in out:
            raise DataError(f"{path}:{n}: duplicate doc_id {doc_id!r}")
        prediction_from_record(obj, f"{path}:{n}")  # every field checked before anything is scored
        out[doc_id] = obj
    if not out:
        raise DataError(f"{path}: no predictions")
    return out


def prediction_from_json(obj: dict[str, Any]) -> Prediction:
    """A saved prediction line as the model's answer (an `error` line: the model could not answer);
    `read_predictions` has checked its fields."""
    return prediction_from_record(obj, f"doc_id {obj.get('doc_id')!r}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def score_file(task: Task, protocol: str, predictions: Path, data: Path | None, n_boot: int = 1000,
               seed: int = 0, log: Callable[[str], None] = _stderr) -> tuple[dict[str, Any], list[SampleRecord]]:
    """The summary (with `coverage`: predictions scored / documents) and the scored records of a
    predictions file; documents without a prediction are left out, not counted as wrong. The
    task's `grade` runs after scoring (an LLM judge grades what is pending; `log` gets its line)."""
    docs = load_task_docs(task, protocol, data, None)
    preds = read_predictions(predictions, {d.doc_id for d in docs})
    records = []
    for doc in docs:
        obj = preds.get(doc.doc_id)
        if obj is None:
            continue
        records.append(sample_record(task, protocol, doc, task.request(doc, protocol), prediction_from_json(obj)))
    records = task.grade(records, {d.doc_id: d for d in docs}, protocol, log)
    summary = summarize(task, protocol, records, n_boot, seed)
    summary["coverage"] = {"predictions": len(records), "docs": len(docs)}
    return summary, records
