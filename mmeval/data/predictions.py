"""Predictions files of mmeval and of other harnesses, read into one record type.

`mmeval score` takes any of these; the format is told from the content, never the file name:

- `mmeval`: JSONL of `{"doc_id", "prediction"[, "candidate_probs", "n_tokens", "error"]}` (a run's
  `<task>.samples.jsonl` is one);
- `llava`: LLaVA-1.5's answer files (`llava/eval/model_vqa*.py`, haotian-liu/LLaVA 32cebc38): JSONL of
  `{"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}`, `question_id` with the
  value and type of the question file's;
- `lmms-eval`: lmms-eval's `--log_samples` file (`<date>_samples_<task>.jsonl`, 0.7.3): JSONL of
  `{"doc_id", "target", ["resps",] "filtered_resps", ..., "input"}`; `doc_id` is the row index of the
  task's test split, the answer is the filtered response;
- `vlm-evaluation`: TRI's vlm-evaluation (and Cobra's fork) `results+rank-<r>.json`, a JSON object
  `{"<qid>": {"question_id"|"example_id", "question", "model_output" | "model_output_ocr" and
  "model_output_no_ocr" | "yes_no_probabilities" | "true_false_probabilities", "ground_truth_answer"}}`,
  or the `metrics.json` its score.py writes (the same records under `examples`). POPE's ids there
  are hashes: its `metadata-full.json` (given as `metadata`) maps them to (split, question id).

Every format becomes `PredictionLine`s: the id as the file writes it (`key`), the answer in mmeval's
fields, where it came from, and what an id mapping may check (`context`). The reader only checks
structure (fields present, ids of the right kind); values are checked where a line becomes a
`Prediction` (`mmeval.rescore`), the same for every format. Mapping `key` to a document id is the
task's business (`Task.doc_id_map`, defaults in `mmeval.data.external_ids`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmeval.data.sources import read_json, read_text
from mmeval.errors import DataError

MMEVAL, LLAVA, LMMS_EVAL, VLM_EVALUATION = "mmeval", "llava", "lmms-eval", "vlm-evaluation"
FORMATS = (MMEVAL, LLAVA, LMMS_EVAL, VLM_EVALUATION)
# what each format names its ids, for messages
ID_NAMES = {
    MMEVAL: "doc_id (mmeval's document id)",
    LLAVA: "question_id (LLaVA's question file's id)",
    LMMS_EVAL: "doc_id (lmms-eval's row index into the task's test split)",
    VLM_EVALUATION: "question_id (vlm-evaluation's question id)",
}
EXPECTED = ("expected an object with fields doc_id and prediction (mmeval), question_id, prompt and text "
            "(LLaVA answers), doc_id and filtered_resps (lmms-eval samples), or a vlm-evaluation results "
            "object of question id -> {question_id, model_output, ...}")

# vlm-evaluation's closed-set outputs: the field, and the candidate each probability belongs to
VLM_PROBABILITIES = {"yes_no_probabilities": ("Yes", "No"), "true_false_probabilities": ("True", "False")}
VLM_TEXTVQA = {"ocr": "model_output_ocr", "no_ocr": "model_output_no_ocr"}


@dataclass
class PredictionLine:
    """One prediction as read from a file of any format, before its id is mapped to a document."""

    key: Any  # the id as the file writes it
    prediction: Any = None  # the answer text (None where the file has several: see `variants`)
    candidate_probs: Any = None
    n_tokens: Any = None
    error: Any = None
    where: str = ""  # "file:line" or "file: entry 'id'", for messages
    # what the id mapping may check: LLaVA's prompt, lmms-eval's target and input, vlm-evaluation's
    # question and ground truth (and its metadata entry)
    context: dict[str, Any] = field(default_factory=dict)
    variants: dict[str, Any] | None = None  # several answers to one question (vlm-evaluation TextVQA)

    def choose(self, variant: str | None) -> PredictionLine:
        """This line with one of its `variants` as the prediction (a line without variants as it is)."""
        if self.variants is None:
            return self
        if variant not in self.variants:
            raise DataError(f"{self.where}: the file has one answer per variant ({', '.join(self.variants)}) "
                            f"and the task asks for {variant!r}")
        return PredictionLine(self.key, self.variants[variant], self.candidate_probs, self.n_tokens, self.error,
                              self.where, self.context)

    def as_json(self, doc_id: str) -> dict[str, Any]:
        """The line in mmeval's predictions format, answering `doc_id`."""
        out: dict[str, Any] = {"doc_id": doc_id, "prediction": self.prediction}
        # every field as the file has it, for the value checks (mmeval.validation.prediction_from_record)
        for key in ("candidate_probs", "n_tokens", "error"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


@dataclass
class PredictionFile:
    path: Path
    format: str  # one of FORMATS
    lines: list[PredictionLine]


def read_prediction_file(path: Path, metadata: Path | None = None) -> PredictionFile:
    """Read a predictions file in any of the FORMATS (told from its content). `metadata`:
    vlm-evaluation's dataset metadata, joined to its results by question id."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--predictions {path}: no such file")
    text = read_text(path, "predictions")
    whole = _whole_json(text)
    if isinstance(whole, dict) and _vlm_records(whole) is not None:
        pf = PredictionFile(path, VLM_EVALUATION, _read_vlm(path, _vlm_records(whole)))
    elif isinstance(whole, list):
        raise DataError(f"{path}: a JSON list is not a predictions file this command reads; {EXPECTED}")
    elif isinstance(whole, dict) and len(text.strip().splitlines()) > 1:
        keys = ", ".join(list(whole)[:5])
        raise DataError(f"{path}: a JSON object (keys: {keys}) that is not vlm-evaluation results; {EXPECTED}")
    else:
        pf = _read_jsonl(path, text)
    if metadata is not None:
        if pf.format != VLM_EVALUATION:
            raise DataError(f"--metadata {metadata}: only vlm-evaluation results take a metadata file "
                            f"({path} is {pf.format})")
        _attach_vlm_metadata(pf, metadata)
    if not pf.lines:
        raise DataError(f"{path}: no predictions")
    return pf


def _whole_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None  # JSONL, or not JSON at all (each line is then parsed and reported on its own)


# ------------------------------------------------------------------------------------------- JSONL
def jsonl_format(obj: Any) -> str | None:
    """The format one JSONL line belongs to, or None."""
    if not isinstance(obj, dict):
        return None
    if "doc_id" in obj and "filtered_resps" in obj:
        return LMMS_EVAL
    if "doc_id" in obj and ("prediction" in obj or obj.get("error")):
        return MMEVAL
    if {"question_id", "prompt", "text"} <= set(obj):
        return LLAVA
    return None


REQUIRED = {MMEVAL: "doc_id and prediction", LLAVA: "question_id, prompt and text",
            LMMS_EVAL: "doc_id and filtered_resps"}


def _read_jsonl(path: Path, text: str) -> PredictionFile:
    fmt: str | None = None
    lines: list[PredictionLine] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not valid JSON ({exc})") from exc
        this = jsonl_format(obj)
        if fmt is None:
            if this is None:
                fields = ", ".join(obj) if isinstance(obj, dict) else type(obj).__name__
                raise DataError(f"{where}: unrecognised predictions line (fields: {fields}); {EXPECTED}")
            fmt = this
        elif this != fmt:
            raise DataError(f"{where}: expected an object with fields {REQUIRED[fmt]} "
                            f"(the file's first line is {fmt})")
        lines.append(JSONL_READERS[fmt](obj, where))
    return PredictionFile(path, fmt or MMEVAL, lines)


def _mmeval_line(obj: dict, where: str) -> PredictionLine:
    return PredictionLine(key=obj["doc_id"], prediction=obj.get("prediction"),
                          candidate_probs=obj.get("candidate_probs"), n_tokens=obj.get("n_tokens"),
                          error=obj.get("error"), where=where)


def _llava_line(obj: dict, where: str) -> PredictionLine:
    return PredictionLine(key=obj["question_id"], prediction=obj["text"], where=where,
                          context={"prompt": obj["prompt"]})


def _lmms_eval_line(obj: dict, where: str) -> PredictionLine:
    key = obj["doc_id"]
    if isinstance(key, bool) or not isinstance(key, int) or key < 0:
        raise DataError(f"{where}: lmms-eval's doc_id must be a row index (an integer >= 0), got {key!r}")
    resp = obj["filtered_resps"]
    # 0.7.x logs a single-request task's response as the string; earlier versions as a one-item list
    if isinstance(resp, list) and len(resp) == 1 and isinstance(resp[0], str):
        resp = resp[0]
    if not isinstance(resp, str):
        raise DataError(f"{where}: filtered_resps is not one generated text (got {json.dumps(resp)[:80]}); "
                        "only generation tasks can be rescored")
    return PredictionLine(key=key, prediction=resp, where=where,
                          context={"target": obj.get("target"), "input": obj.get("input")})


JSONL_READERS = {MMEVAL: _mmeval_line, LLAVA: _llava_line, LMMS_EVAL: _lmms_eval_line}


# ---------------------------------------------------------------------------------- vlm-evaluation
def _is_vlm_record(value: Any) -> bool:
    return (isinstance(value, dict) and ("question_id" in value or "example_id" in value)
            and any(k in value for k in ("model_output", *VLM_TEXTVQA.values(), *VLM_PROBABILITIES)))


def _vlm_records(obj: dict) -> dict | None:
    """The per-example records of a results+rank-r.json (the object itself) or a metrics.json
    (`examples`); None when `obj` is neither."""
    if isinstance(obj.get("examples"), dict) and "summary" in obj:
        return obj["examples"]
    if obj and _is_vlm_record(next(iter(obj.values()))):
        return obj
    return None


def _read_vlm(path: Path, records: dict) -> list[PredictionLine]:
    lines = []
    for name, rec in records.items():
        where = f"{path}: entry {name!r}"
        if not _is_vlm_record(rec):
            raise DataError(f"{where}: expected a vlm-evaluation record with question_id (or example_id) and "
                            "model_output, model_output_ocr/_no_ocr, yes_no_probabilities or true_false_probabilities")
        key = rec.get("question_id", rec.get("example_id"))
        context = {k: rec[k] for k in ("question", "caption", "ground_truth_answer") if k in rec}
        line = PredictionLine(key=key, where=where, context=context)
        probs_field = next((k for k in VLM_PROBABILITIES if k in rec), None)
        if probs_field is not None:
            names = VLM_PROBABILITIES[probs_field]
            probs = rec[probs_field]
            if not isinstance(probs, list) or len(probs) != len(names):
                raise DataError(f"{where}: {probs_field} must be a list of {len(names)} probabilities "
                                f"([{', '.join(names)}])")
            line.candidate_probs = dict(zip(names, probs, strict=True))
            # vlm-evaluation's answer: np.argmax over the pair (a tie goes to the first)
            line.prediction = names[0] if _ge(probs[0], probs[1]) else names[1]
        elif "model_output" in rec:
            line.prediction = rec["model_output"]
        else:
            line.variants = {v: rec.get(f) for v, f in VLM_TEXTVQA.items()}
        lines.append(line)
    return lines


def _ge(a: Any, b: Any) -> bool:
    try:
        return a >= b
    except TypeError:  # not numbers: left to the value checks, which name the field
        return True


def _attach_vlm_metadata(pf: PredictionFile, metadata: Path) -> None:
    """vlm-evaluation's `metadata-full.json` ({qid: {question_id, question, img_path, answer, split,
    split_question_id}}): each result line gets its entry under context['metadata']."""
    meta = read_json(Path(metadata), "--metadata, vlm-evaluation's dataset metadata")
    if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
        raise DataError(f"--metadata {metadata}: expected vlm-evaluation's metadata, an object of "
                        "question id -> {question_id, split, ...}")
    for line in pf.lines:
        entry = meta.get(str(line.key))
        if entry is not None:
            line.context["metadata"] = entry
