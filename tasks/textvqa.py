"""TextVQA: questions that need reading text in the image; ten answers each, VQA accuracy with
EvalAI's answer processing (the m4c evaluator).

Splits (`--task-args split=val|test`, default `val`, the split the papers report): `test` has no
public answers; `finalize` then writes `textvqa_test_submission.json` ([{"question_id", "answer"}])
for the TextVQA EvalAI server.

OCR tokens (`--task-args ocr=auto|true|false`, default `auto`: on for `llava` and `prismatic`, off
for `lmms-eval`, its default `ocr: false`) and their place under `prismatic` (`ocr_order=first|last`,
default `first`, Cobra's fork; `last` is TRI's original; Cobra's Table 7 (arXiv v4) compares the two
and `ocr=false`).

Layouts (`--data DIR/textvqa/`, or LLaVA's `playground/data/eval/textvqa/` as it is):
- lmms-lab parquet (hub `lmms-lab-encoder/textvqa`, formerly `lmms-lab/textvqa`, splits `validation`
  / `test`; columns question_id, question, image_id, image, answers (strings), ocr_tokens), hub or
  local folder;
- official files: `TextVQA_0.5.1_{val,test}.json` ({"data": [...]}) with images
  `train_images/<image_id>.jpg` (val) or `test_images/<image_id>.jpg`; OCR tokens from each entry's
  `ocr_tokens`, else `TextVQA_Rosetta_OCR_v0.2_{val,test}.json` by image_id;
- LLaVA-1.5's bundle (val): its question file `llava_textvqa_val_v051_ocr.jsonl` beside
  `TextVQA_0.5.1_val.json`, where scripts/v1_5/eval/textvqa.sh points eval_textvqa.py (images
  `train_images/`). Its `question_id` is the image id (16 hex digits, repeated for every question of
  an image) and its `text` "<Question>\\nReference OCR token: t1, t2, ...\\nAnswer the question using a
  single word or phrase."; each line is joined to its annotation as eval_textvqa.py does, by
  (image id, the question line lower-cased) (also with the parquet rows as annotations);
- vlm-evaluation's files (val): the same question file under TRI's name `textvqa_val_v051_ocr.jsonl`
  beside `TextVQA_0.5.1_val.json`, paired by position as its text-vqa builder does (line i with
  `data[i]`; the counts and each line's image id are checked).
With a question file, the docs are its lines and its text is the prompt as it is. Doc ids are
TextVQA's question_id (found by the join). Images are read when a model runs: scoring saved answers
from the LLaVA or vlm-evaluation layout needs none.

Protocols:
- `llava`: LLaVA's question-file text (built as it is when the data came without the file: first
  letter upper-cased, OCR line, instruction), greedy, 128 new tokens; eval_textvqa.py's m4c
  TextVQAAccuracyEvaluator (LLaVA c121f04 `llava/eval/eval_textvqa.py`, `m4c_evaluator.py`).
- `prismatic`: vlm-evaluation's text-vqa harness, whose "question" is LLaVA's text; the message is
  that of Cobra's fork (h-zhao1997/vlm-evaluation b0a691f, `vlm_eval/models/cobra.py`
  `vqa_prompt_fn`): with OCR (`ocr_order=first`) the text is split at "\\nReference OCR token: " and
  rebuilt as "Reference OCR token: <tokens>\\nAnswer the question using a single word or
  phrase.\\n<Question>" (the split leaves the first instruction with the tokens) + the instruction;
  `ocr_order=last` is TRI's `vlm_eval/models/prismatic.py` (fork point 2092905, = Cobra's first
  commit fce0502): the text + the instruction, which appears twice. Without OCR both cut the text
  at "\\nReference OCR token:" and add the instruction once. Leading whitespace is stripped as their
  prompt builder does. The harness reports both variants (TextVQA-OCR, TextVQA-Pure); here one run
  gives one of them. m4c scoring.
- `lmms-eval`: "<question.capitalize()>[\\nReference OCR token: ...]\\nAnswer the question using a
  single word or phrase." (lmms-eval 0.7.3 `textvqa/utils.py` textvqa_doc_to_text), stop at
  "ASSISTANT:", 1024 new tokens (the llava model's default there); textvqa_process_results (EvalAI
  processing, leave-one-out accuracy).
Headline: `accuracy` (percent).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmeval.data.external_ids import Mapper, has_llava_ids
from mmeval.data.predictions import LLAVA, PredictionLine
from mmeval.data.provenance import FileDigest
from mmeval.data.sources import (
    find_path,
    folder_source,
    has_parquet,
    image_ref,
    read_json,
    read_lmms_lab_with_source,
)
from mmeval.errors import DataError, UnknownNameError
from mmeval.metrics.vqa import evalai_answer, m4c_accuracy
from mmeval.task import Task, take_options
from mmeval.types import Doc, ImageRef, Prediction, Request
from tasks._common.cells import answer_texts
from tasks._common.llava import LLAVA_BUNDLE, missing_annotation, read_llava_questions, without_suffix
from tasks._common.outputs import record_scores, write_result_file
from tasks._common.prompts import SHORT_ANSWER, open_answer_request, prismatic_message
from tasks._common.scoring import AccuracyHeadline, accuracy_metrics

OCR_MARK = "\nReference OCR token:"
COBRA_OCR_SPLIT = "\nReference OCR token: "  # cobra.py splits on the mark with its space
HUB_SPLIT = {"val": "validation", "test": "test"}
PARQUET_COLUMNS = ("question_id", "question", "image_id", "image")
LLAVA_QUESTION_FILE = "llava_textvqa_val_v051_ocr.jsonl"
TRI_QUESTION_FILE = "textvqa_val_v051_ocr.jsonl"  # vlm-evaluation's name for the same file
RELEASE = "textvqa-0.5.1"
OCR_ORDERS = {"first": "OCR tokens first (Cobra's fork h-zhao1997/vlm-evaluation b0a691f)",
              "last": "OCR tokens after the question (TRI's vlm-evaluation)"}


def ocr_line(tokens: Sequence[str]) -> str:
    return f"{OCR_MARK} {', '.join(str(t) for t in tokens)}"


def llava_prompt_question(prompt: str) -> str:
    """eval_textvqa.py's prompt_processor: the question of a LLaVA TextVQA prompt, lower-cased (the
    second half of its join key, the image id being the first)."""
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL)
        if match is None:
            raise DataError(f"textvqa: prompt {prompt[:60]!r} has 'OCR tokens: ' but no 'Question: ... Short answer:'")
        question = match.group(1)
    elif "Reference OCR token: " in prompt and len(lines) == 3:
        question = lines[1] if prompt.startswith("Reference OCR token:") else lines[0]
    elif len(lines) == 2:
        question = lines[0]
    else:
        raise DataError(f"textvqa: prompt {prompt[:60]!r} is none of the forms eval_textvqa.py reads")
    return question.lower()


@dataclass
class Entry:
    """One annotated question, from the parquet rows or the official JSON."""

    question_id: int
    question: str
    image_id: str
    answers: list[str] | None
    ocr_tokens: list[str] | None
    image: ImageRef


class TextVQA(AccuracyHeadline, Task):
    name = "textvqa"
    description = "TextVQA (m4c VQA accuracy), with or without LLaVA's OCR-token prompt"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    version = "2"
    hub_id = ("lmms-lab-encoder/textvqa", "lmms-lab/textvqa")

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, {"split": ("val", "validation", "test"),
                                                 "ocr": ("auto", "true", "false", "1", "0", "yes", "no"),
                                                 "ocr_order": ("auto", *OCR_ORDERS)})
        split = opts.get("split", "val")
        self.split = "val" if split == "validation" else split
        ocr = opts.get("ocr", "auto")
        self.ocr: bool | None = None if ocr == "auto" else ocr in ("true", "1", "yes")
        order = opts.get("ocr_order", "auto")
        self.ocr_order: str | None = None if order == "auto" else order

    def use_ocr(self, protocol: str) -> bool:
        return (protocol != "lmms-eval") if self.ocr is None else self.ocr

    def ocr_first(self, protocol: str) -> bool:
        if protocol == "prismatic":
            return self.ocr_order != "last"
        if self.ocr_order == "first":
            raise UnknownNameError(f"textvqa: ocr_order=first is a prismatic variant (Cobra's fork); under {protocol} "
                                   "the OCR tokens follow the question")
        return False

    # -- data
    def load_docs(self, data: Path | None) -> list[Doc]:
        llava_file = tri_file = None
        if data is not None and self.split == "val":
            llava_file = find_path(data, [LLAVA_QUESTION_FILE])
            tri_file = None if llava_file else find_path(data, [TRI_QUESTION_FILE])
        if data is None or has_parquet(data):
            required = PARQUET_COLUMNS + (("answers",) if self.split == "val" else ())
            rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, required,
                                                               HUB_SPLIT[self.split])
            entries = self._entries_from_rows(rows, data)
            qfile = llava_file or tri_file
            if qfile is None:
                return [self._doc(e) for e in entries]
            docs = self._docs_by_key(qfile, entries)
            self.data_source.files.append(FileDigest.of(qfile, data))
            self.data_source.questions = len(docs)
            return docs
        name = f"TextVQA_0.5.1_{self.split}.json"
        qfile = find_path(data, [name])
        if qfile is None:
            if llava_file or tri_file:
                script = "LLaVA's eval_textvqa.py" if llava_file else "vlm-evaluation's text-vqa builder"
                raise missing_annotation(self.name, llava_file or tri_file, name,
                                         "./playground/data/eval/textvqa/TextVQA_0.5.1_val.json (scripts/v1_5/eval/"
                                         "textvqa.sh; dl.fbaipublicfiles.com/textvqa/data/TextVQA_0.5.1_val.json)",
                                         script)
            raise DataError(f"textvqa ({self.split}): {data} has neither lmms-lab parquet files nor {name}")
        entries, files = self._entries_from_official(data, qfile, need_images=not (llava_file or tri_file))
        if llava_file is not None:
            docs = self._docs_by_key(llava_file, entries)
            layout, version, files = "llava-bundle", LLAVA_BUNDLE, files + [llava_file]
        elif tri_file is not None:
            docs = self._docs_by_position(tri_file, qfile, entries)
            layout, version, files = "vlm-evaluation", RELEASE, files + [tri_file]
        else:
            docs, layout, version = [self._doc(e) for e in entries], "official", RELEASE
        self.data_source = folder_source(layout, version, self.split, data, files, len(docs))
        return docs

    def _entries_from_rows(self, rows, root: Path | None) -> list[Entry]:
        entries = []
        for row in rows:
            qid = int(row["question_id"])
            tokens = row.get("ocr_tokens")
            entries.append(Entry(qid, str(row["question"]), str(row["image_id"]), answer_texts(row.get("answers")),
                                 [str(t) for t in tokens] if tokens is not None else None,
                                 image_ref(row["image"], f"textvqa {qid}", root)))
        return entries

    def _entries_from_official(self, data: Path, qfile: Path, need_images: bool) -> tuple[list[Entry], list[Path]]:
        entries = read_json(qfile, "TextVQA questions/answers")["data"]
        folder = "train_images" if self.split == "val" else "test_images"
        images = find_path(data, [folder, f"images/{folder}", "images"], want_dir=True)
        if images is None:
            if need_images:
                raise DataError(f"textvqa ({self.split}): no image folder {folder}/ under {data}")
            images = data / folder  # where LLaVA's textvqa.sh has them; read only when a model runs
        files = [qfile]
        ocr_by_image: dict[str, list[str]] = {}
        ocr_file = find_path(data, [f"TextVQA_Rosetta_OCR_v0.2_{self.split}.json"])
        if ocr_file is not None:
            files.append(ocr_file)
            ocr_by_image = {str(e["image_id"]): list(e.get("ocr_tokens") or [])
                            for e in read_json(ocr_file, "TextVQA Rosetta OCR")["data"]}
        out = []
        for e in entries:
            qid = int(e["question_id"])
            tokens = e.get("ocr_tokens", ocr_by_image.get(str(e["image_id"])))
            path = images / f"{e['image_id']}.jpg"
            answers = answer_texts(e.get("answers")) if self.split == "val" else None
            out.append(Entry(qid, str(e["question"]), str(e["image_id"]), answers,
                             [str(t) for t in tokens] if tokens is not None else None,
                             ImageRef(source=f"textvqa {qid} ({path.name})", path=str(path))))
        return out, files

    def _docs_by_key(self, qfile: Path, entries: list[Entry]) -> list[Doc]:
        """eval_textvqa.py's join: (image id, question lower-cased) <-> (question_id, prompt question)."""
        by_key = {(e.image_id, e.question.lower()): e for e in entries}
        docs = []
        for i, q in enumerate(read_llava_questions(qfile), 1):
            key = (str(q["question_id"]), llava_prompt_question(str(q["text"])))
            entry = by_key.get(key)
            if entry is None:
                raise DataError(f"{qfile}:{i}: no TextVQA question '{key[1]}' on image {key[0]} in the annotations "
                                "(eval_textvqa.py joins on image id and lower-cased question)")
            docs.append(self._doc(entry, q))
        return docs

    def _docs_by_position(self, qfile: Path, annotations: Path, entries: list[Entry]) -> list[Doc]:
        """vlm-evaluation's text-vqa builder: line i of its question file is question i of the annotations."""
        questions = read_llava_questions(qfile)
        if len(questions) != len(entries):
            raise DataError(f"textvqa: {qfile.name} has {len(questions)} lines but {annotations.name} has "
                            f"{len(entries)} questions; vlm-evaluation pairs them by position (both 5000)")
        docs = []
        for i, (q, entry) in enumerate(zip(questions, entries, strict=True), 1):
            if str(q["question_id"]) != entry.image_id:
                raise DataError(f"{qfile}:{i}: image {q['question_id']}, but question {i} of {annotations.name} is "
                                f"on image {entry.image_id}: the files are not in the order vlm-evaluation pairs")
            docs.append(self._doc(entry, q))
        return docs

    @staticmethod
    def _doc(e: Entry, llava: dict | None = None) -> Doc:
        fields = {"question": e.question, "question_id": e.question_id, "image_id": e.image_id,
                  "ocr_tokens": e.ocr_tokens}
        if llava is not None:
            fields.update(llava_question_id=llava["question_id"], llava_prompt=str(llava["text"]))
        return Doc(doc_id=str(e.question_id), fields=fields, target=e.answers or None, images=(e.image,),
                   group_key=e.image_id)

    # -- other harnesses' predictions
    def doc_id_map(self, docs: Sequence[Doc], source: str) -> Mapper:
        """LLaVA's answers name a question by its image id and prompt: joined on (image id, question
        lower-cased) as eval_textvqa.py joins them to TextVQA_0.5.1_val.json."""
        if source != LLAVA or has_llava_ids(docs):
            return super().doc_id_map(docs, source)
        by_key = {(str(d.fields["image_id"]), d.fields["question"].lower()): d.doc_id for d in docs}

        def mapper(line: PredictionLine) -> str | None:
            try:
                question = llava_prompt_question(str(line.context.get("prompt")))
            except DataError as exc:
                raise DataError(f"{line.where}: {exc}") from exc
            return by_key.get((str(line.key), question))

        return mapper

    def prediction_variant(self, protocol: str) -> str:
        """vlm-evaluation's TextVQA results hold an answer with and one without OCR tokens."""
        return "ocr" if self.use_ocr(protocol) else "no_ocr"

    # -- protocol
    def _ocr_text(self, doc: Doc) -> str:
        tokens = doc.fields.get("ocr_tokens")
        if tokens is None:
            raise DataError(f"textvqa {doc.doc_id}: the OCR prompt needs OCR tokens and this data has none "
                            "(use the lmms-lab copy, LLaVA's question file or TextVQA_Rosetta_OCR_v0.2_*.json, "
                            "or --task-args ocr=false)")
        return ocr_line(tokens)

    def llava_text(self, doc: Doc) -> str:
        """LLaVA's question-file text: as read, else built the way the file is (first letter
        upper-cased, OCR line, instruction)."""
        text = doc.fields.get("llava_prompt")
        if text is None:
            q = doc.fields["question"].strip()
            text = q[:1].upper() + q[1:] + self._ocr_text(doc) + SHORT_ANSWER
        return text

    def prompt(self, doc: Doc, protocol: str) -> str:
        ocr, first = self.use_ocr(protocol), self.ocr_first(protocol)
        if protocol == "lmms-eval":
            return doc.fields["question"].capitalize() + (self._ocr_text(doc) if ocr else "") + SHORT_ANSWER
        if not ocr:
            if doc.fields.get("llava_prompt") is not None:
                base = doc.fields["llava_prompt"].split(OCR_MARK)[0]
            else:
                q = doc.fields["question"].strip()
                base = q[:1].upper() + q[1:]
            if protocol == "llava":
                return without_suffix(base, SHORT_ANSWER) + SHORT_ANSWER
            return prismatic_message("\n" + base + SHORT_ANSWER)
        text = self.llava_text(doc)
        if protocol == "llava":
            return text
        if first:
            parts = text.split(COBRA_OCR_SPLIT, 1)
            if len(parts) == 2:
                text = f"Reference OCR token: {parts[1]}\n{parts[0]}"
        return prismatic_message("\n" + text + SHORT_ANSWER)

    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        return open_answer_request(doc, self.prompt(doc, protocol), protocol)

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        text = prediction.text.strip()
        out: dict[str, Any] = {"question_id": doc.fields["question_id"], "answer": evalai_answer(text)}
        if not doc.target:
            out.update(correct=0.0, scored=False)
        else:
            out.update(correct=m4c_accuracy(text, doc.target, lmms_eval=protocol == "lmms-eval"), scored=True)
        return out

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        return accuracy_metrics(scores)

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        notes: dict[str, Any] = {"ocr_tokens_in_prompt": self.use_ocr(protocol)}
        if protocol == "prismatic" and self.use_ocr(protocol):
            notes["ocr_order"] = OCR_ORDERS["first" if self.ocr_first(protocol) else "last"]
        if self.split != "test":
            return notes
        entries = [{"question_id": int(s["question_id"]), "answer": s.get("answer", "")}
                   for s in map(record_scores, records) if "question_id" in s]
        path = write_result_file(Path(out_dir) / "textvqa_test_submission.json", entries)
        notes.update(submission=str(path),
                     note=f"TextVQA test has no public answers: no local score. Upload {path.name} to the TextVQA "
                          "challenge on EvalAI.")
        return notes

    # -- fixtures / synthetic data
    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], split: str = "val",
                     layout: str = "parquet") -> Path:
        """Rows: question_id, question, image_id (str), image (PIL), answers (10 strings, val),
        ocr_tokens (list). `layout`: 'parquet' (lmms-lab) or 'official' (TextVQA_0.5.1 JSON with the
        OCR tokens in the Rosetta file)."""
        from mmeval.data.writers import write_json, write_parquet

        directory = Path(directory)
        if layout == "parquet":
            cells = [{"question_id": int(r["question_id"]), "question": r["question"], "image_id": str(r["image_id"]),
                      "answers": list(r["answers"]) if r.get("answers") else None,
                      "ocr_tokens": list(r.get("ocr_tokens", [])), "image": r["image"]} for r in rows]
            return write_parquet(directory, HUB_SPLIT[split], cells)
        write_json(directory / f"TextVQA_0.5.1_{split}.json", {"dataset_type": split, "data": [
            {"question_id": int(r["question_id"]), "question": r["question"], "image_id": str(r["image_id"]),
             **({"answers": list(r["answers"])} if r.get("answers") else {})} for r in rows]})
        write_json(directory / f"TextVQA_Rosetta_OCR_v0.2_{split}.json", {"data": [
            {"image_id": str(r["image_id"]), "ocr_tokens": list(r.get("ocr_tokens", []))} for r in rows]})
        images = directory / ("train_images" if split == "val" else "test_images")
        images.mkdir(parents=True, exist_ok=True)
        for r in rows:
            r["image"].save(images / f"{r['image_id']}.jpg")
        return directory
