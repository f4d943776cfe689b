"""`mmeval score`: score saved predictions without any model, under any protocol the task has.

The input is JSONL with one `{"doc_id": ..., "prediction": ...}` per line (optionally
`candidate_probs`); a run's own `<task>.samples.jsonl` is such a file, so a run can be rescored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmeval.errors import DataError
from mmeval.runner import load_task_docs, summarize
from mmeval.task import Task
from mmeval.types import Prediction, SampleRecord


def read_predictions(path: Path, known_ids: set[str]) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"--predictions {path}: no such file")
    out: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
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
        out[doc_id] = obj
    if not out:
        raise DataError(f"{path}: no predictions")
    return out


def score_file(task: Task, protocol: str, predictions: Path, data: Path | None, n_boot: int = 1000,
               seed: int = 0) -> tuple[dict[str, Any], list[SampleRecord]]:
    docs = load_task_docs(task, data, None)
    preds = read_predictions(predictions, {d.doc_id for d in docs})
    records = []
    for doc in docs:
        obj = preds.get(doc.doc_id)
        if obj is None:
            continue
        request = task.request(doc, protocol)
        if obj.get("error"):
            records.append(SampleRecord(doc.doc_id, request.prompt, "", doc.target, {}, error=str(obj["error"])))
            continue
        pred = Prediction(text=str(obj.get("prediction") or ""), candidate_probs=obj.get("candidate_probs"),
                          n_tokens=int(obj.get("n_tokens") or 0))
        records.append(SampleRecord(doc.doc_id, request.prompt, pred.text, doc.target,
                                    task.score(doc, pred, protocol), pred.candidate_probs, pred.n_tokens))
    summary = summarize(task, protocol, records, n_boot, seed)
    summary["coverage"] = {"predictions": len(records), "docs": len(docs)}
    return summary, records
