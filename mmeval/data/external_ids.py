"""How other harnesses' predictions name a task's documents: the defaults of `Task.doc_id_map`.

A mapper takes a `PredictionLine` and returns the id of the document it answers, or None when no
document of the task has that id (a question outside the task, e.g. ScienceQA's text-only questions
in LLaVA's answer file). Where an id could name the wrong document (ids that only look alike, a
file from another release of the data) the mapper checks the line against the document and raises
`DataError` naming both: a misjoined file is an error, never a silently wrong number.

- LLaVA answers: `question_id` as LLaVA's question file writes it. Documents read from LLaVA's
  bundle keep it in `fields["llava_question_id"]` and the question file's text in
  `fields["llava_prompt"]`, which tells apart the questions sharing an id (TextVQA's image ids,
  MME's image paths); other documents are matched on their doc id, and the document's question
  must then be in the answer's prompt (ScienceQA's problem ids never join a parquet copy's row numbers).
- lmms-eval samples: `doc_id` is the row index into the test split lmms-eval loaded, i.e. our
  documents in order when they were read from the same lmms-lab parquet files; the logged `target`
  must then be the document's.
- vlm-evaluation results: the question id is the doc id (VQAv2, GQA, TextVQA; VSR's line index);
  the logged question (VSR: caption) must be the document's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mmeval.data.predictions import LLAVA, LMMS_EVAL, MMEVAL, VLM_EVALUATION, PredictionLine
from mmeval.errors import DataError
from mmeval.types import Doc

if TYPE_CHECKING:
    from mmeval.task import Task

Mapper = Callable[[PredictionLine], "str | None"]

# layouts whose documents are lmms-eval's rows in lmms-eval's order (mmeval.data.provenance)
LMMS_LAB_LAYOUTS = ("lmms-lab-parquet", "hub")


def norm_text(text: Any) -> str:
    """Case and whitespace folded: how two copies of one question are compared."""
    return " ".join(str(text).lower().split())


def _short(text: Any, n: int = 70) -> str:
    s = str(text)
    return repr(s if len(s) <= n else s[:n] + "...")


def check_same_question(task_name: str, line: PredictionLine, doc: Doc, ours: Any, theirs: Any, what: str) -> None:
    """`ours` (the document's question) must be within `theirs` (the line's prompt or question)."""
    if not isinstance(ours, str) or not isinstance(theirs, str):
        return
    if norm_text(ours) not in norm_text(theirs):
        raise DataError(f"{line.where}: its {what} {_short(theirs)} is not the question of {task_name} document "
                        f"{doc.doc_id} ({_short(ours)}): the predictions are for other data than --data holds")


def has_llava_ids(docs: Sequence[Doc]) -> bool:
    return any("llava_question_id" in d.fields for d in docs)


def by_doc_id(task_name: str, docs: Sequence[Doc], text_field: str | None = None,
              key: Callable[[Any], str] = str) -> Mapper:
    """`key(line.key)` is the doc id; with `text_field`, the line's context[text_field] must hold
    the document's question."""
    by_id = {d.doc_id: d for d in docs}

    def mapper(line: PredictionLine) -> str | None:
        doc = by_id.get(key(line.key))
        if doc is None:
            return None
        if text_field is not None:
            check_same_question(task_name, line, doc, doc.fields.get("question"), line.context.get(text_field),
                                text_field)
        return doc.doc_id

    return mapper


def by_llava_question_id(task_name: str, docs: Sequence[Doc]) -> Mapper:
    """LLaVA answers: through the documents' `llava_question_id` (and `llava_prompt` where an id is
    shared), or, for documents not read from LLaVA's bundle, their doc id."""
    index: dict[str, list[Doc]] = {}
    for d in docs:
        if "llava_question_id" in d.fields:
            index.setdefault(str(d.fields["llava_question_id"]), []).append(d)
    if not index:
        return by_doc_id(task_name, docs, text_field="prompt")

    def mapper(line: PredictionLine) -> str | None:
        found = index.get(str(line.key), [])
        if len(found) > 1:  # model_vqa*.py writes the question file's text as the answer's prompt
            found = [d for d in found if d.fields.get("llava_prompt") == line.context.get("prompt")]
        return found[0].doc_id if len(found) == 1 else None

    return mapper


def by_row_index(task: Task, docs: Sequence[Doc]) -> Mapper:
    """lmms-eval samples: `doc_id` indexes the test split lmms-eval read; the target must agree."""
    source = task.data_source
    if source is not None and source.layout not in LMMS_LAB_LAYOUTS:
        raise DataError(f"{task.name}: lmms-eval's doc_id is a row index into lmms-lab's copy of the data, and "
                        f"these documents were read from the {source.layout} layout ({source.source}): "
                        "score lmms-eval logs against the lmms-lab parquet files (or the hub copy)")

    def mapper(line: PredictionLine) -> str | None:
        if line.key >= len(docs):
            return None
        doc = docs[line.key]
        target = line.context.get("target")
        if isinstance(doc.target, str) and isinstance(target, str) and _label(target) != _label(doc.target):
            raise DataError(f"{line.where}: lmms-eval's target {_short(target)} for row {line.key} is not the answer "
                            f"of {task.name} document {doc.doc_id} ({_short(doc.target)}): the log is of other "
                            "data (another split or release) than --data holds")
        return doc.doc_id

    return mapper


def _label(text: str) -> str:
    return norm_text(text).rstrip(".")


def by_vlm_question_id(task_name: str, docs: Sequence[Doc]) -> Mapper:
    """vlm-evaluation results: the question (or example) id is the doc id, or the document's
    `question_id` field; the logged question or caption must be the document's."""
    by_id = {d.doc_id: d for d in docs}
    by_field: dict[str, list[Doc]] = {}
    for d in docs:
        if d.fields.get("question_id") is not None:
            by_field.setdefault(str(d.fields["question_id"]), []).append(d)

    def mapper(line: PredictionLine) -> str | None:
        doc = by_id.get(str(line.key))
        if doc is None and len(by_field.get(str(line.key), [])) == 1:
            doc = by_field[str(line.key)][0]
        if doc is None:
            return None
        for name in ("question", "caption"):
            check_same_question(task_name, line, doc, doc.fields.get(name), line.context.get(name), name)
        return doc.doc_id

    return mapper


def default_doc_id_map(task: Task, docs: Sequence[Doc], source: str) -> Mapper:
    if source == MMEVAL:
        return by_doc_id(task.name, docs)
    if source == LLAVA:
        return by_llava_question_id(task.name, docs)
    if source == LMMS_EVAL:
        return by_row_index(task, docs)
    if source == VLM_EVALUATION:
        return by_vlm_question_id(task.name, docs)
    raise ValueError(f"unknown predictions format {source!r}")
