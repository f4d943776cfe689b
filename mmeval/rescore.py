"""`mmeval score`: score saved predictions without any model, under any protocol the task has.

The input is mmeval's own JSONL (one `{"doc_id": ..., "prediction": ...}` per line, optionally
`candidate_probs`, `n_tokens`, `error`; a run's `<task>.samples.jsonl` is such a file, so a run can
be rescored) or another harness's output: LLaVA-1.5's answer files, lmms-eval's sample logs,
vlm-evaluation's results (`mmeval.data.predictions` reads them, telling the format from the
content). The task maps their ids to its documents (`Task.doc_id_map`). Each line is then scored
and the task summarised by `mmeval.scoring`, the functions a run uses, so rescoring a run's samples
under its protocol gives the run's metrics and intervals.

What was not scored is said in one line each: predictions for questions outside the task's
documents (ignored), and documents without a prediction (left out of the metrics, not counted wrong).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mmeval.data.predictions import ID_NAMES, MMEVAL, PredictionLine, read_prediction_file
from mmeval.errors import DataError
from mmeval.runner import load_task_docs
from mmeval.scoring import sample_record, summarize
from mmeval.task import Task
from mmeval.types import Doc, Prediction, SampleRecord
from mmeval.validation import prediction_from_record


def read_predictions(task: Task, docs: Sequence[Doc], paths: Sequence[Path], protocol: str,
                     metadata: Path | None = None, log: Callable[[str], None] = print
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The predictions of one or more files (e.g. one per rank), by doc id, each in mmeval's line
    format; and what was read (`format`, `lines`, `ignored`)."""
    files = [read_prediction_file(Path(p), metadata) for p in paths]
    formats = {f.format for f in files}
    if len(formats) > 1:
        raise DataError("--predictions: the files are of different formats ("
                        + ", ".join(f"{f.path.name}: {f.format}" for f in files) + ")")
    fmt = files[0].format
    mapper = task.doc_id_map(docs, fmt)
    variant = task.prediction_variant(protocol)
    out: dict[str, dict[str, Any]] = {}
    seen: dict[str, PredictionLine] = {}
    unmatched: list[PredictionLine] = []
    lines = [line for f in files for line in f.lines]
    for line in lines:
        doc_id = mapper(line)
        if doc_id is None:
            if fmt == MMEVAL:  # our own ids: every one must be a document of the data
                raise DataError(f"{line.where}: unknown doc_id {str(line.key)!r} (not in this task's data)")
            unmatched.append(line)
            continue
        if doc_id in seen:
            raise DataError(f"{line.where}: duplicate doc_id {doc_id!r}" if fmt == MMEVAL else
                            f"{line.where}: a second prediction for document {doc_id!r} "
                            f"(the first: {seen[doc_id].where})")
        seen[doc_id] = line
        out[doc_id] = line.choose(variant).as_json(doc_id)
        prediction_from_record(out[doc_id], line.where)  # every field checked before anything is scored
    if unmatched:
        first = unmatched[0]
        if not out:
            raise DataError(f"{first.where}: none of the {len(lines)} predictions ({fmt}) matches a document of "
                            f"{task.name} in this data (first unmatched {ID_NAMES[fmt]}: {first.key!r})")
        log(f"{task.name}: {len(unmatched)} of {len(lines)} predictions are for questions outside this task's "
            f"{len(docs)} documents (first: {first.key!r}, {first.where}); ignored")
    return out, {"format": fmt, "lines": len(lines), "ignored": len(unmatched)}


def prediction_from_json(obj: dict[str, Any]) -> Prediction:
    """A saved prediction line as the model's answer (an `error` line: the model could not answer);
    `read_predictions` has checked its fields."""
    return prediction_from_record(obj, f"doc_id {obj.get('doc_id')!r}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def score_file(task: Task, protocol: str, predictions: Path | Sequence[Path], data: Path | None, n_boot: int = 1000,
               seed: int = 0, metadata: Path | None = None,
               log: Callable[[str], None] = _stderr) -> tuple[dict[str, Any], list[SampleRecord]]:
    """The summary (with `coverage`: predictions scored / documents) and the scored records of one or
    more predictions files; documents without a prediction are left out, not counted as wrong
    (`mmeval score` says so), predictions for questions outside the task are ignored (`log` says so).
    The task's `grade` runs after scoring (an LLM judge grades what is pending; `log` gets its line)."""
    paths = [predictions] if isinstance(predictions, (str, Path)) else list(predictions)
    docs = load_task_docs(task, protocol, data, None)
    preds, _ = read_predictions(task, docs, paths, protocol, metadata, log)
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
