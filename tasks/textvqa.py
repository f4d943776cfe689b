"""TextVQA: questions that need reading text in the image; ten answers each, VQA accuracy with
EvalAI's answer processing (the m4c evaluator).

Splits (`--task-args split=val|test`, default `val`, the split the papers report): `test` has no
public answers; `finalize` then writes `textvqa_test_submission.json` ([{"question_id", "answer"}])
for the TextVQA EvalAI server.

OCR tokens (`--task-args ocr=auto|true|false`, default `auto`): LLaVA-1.5's question file
(llava_textvqa_val_v051_ocr.jsonl) inserts "\\nReference OCR token: t1, t2, ..." after the question,
and VL-Mamba's/LLaVA's TextVQA numbers use it; `auto` means on for `llava` and `prismatic` (TRI's
harness builds its prompts from that same file) and off for `lmms-eval` (its default, ocr: false).

Sources:
- lmms-lab parquet (hub `lmms-lab/textvqa`, splits `validation` / `test`; columns question_id,
  question, image_id, image, answers (strings), ocr_tokens), hub or local folder;
- official files: `TextVQA_0.5.1_{val,test}.json` ({"data": [...]}) with images
  `train_images/<image_id>.jpg` (val) or `test_images/<image_id>.jpg`; OCR tokens from each entry's
  `ocr_tokens`, else `TextVQA_Rosetta_OCR_v0.2_{val,test}.json` by image_id. If LLaVA's
  `llava_textvqa_val_v051_ocr.jsonl` is in the folder, its prompts (matched by question_id) are
  used verbatim for the OCR prompt.

Protocols:
- `llava`: "<Question>[\\nReference OCR token: ...]\\nAnswer the question using a single word or
  phrase." (first letter capitalised as in LLaVA's file), greedy, 128 new tokens; eval_textvqa.py's
  m4c TextVQAAccuracyEvaluator.
- `prismatic`: TRI's textvqa harness: its prompt function appends "\\nAnswer the question using a
  single word or phrase." to the LLaVA question text, which already ends with that sentence, so with
  OCR tokens the instruction appears twice (reproduced as written); without OCR the question is cut
  at "\\nReference OCR token:" and the instruction appears once. It reports both variants
  (TextVQA-OCR, TextVQA-Pure); here one run gives one of them (choose with `ocr=`). m4c scoring.
- `lmms-eval`: "<question.capitalize()>[\\nReference OCR token: ...]\\nAnswer the question using a
  single word or phrase.", stop at "ASSISTANT:", 1024 new tokens (the llava model's default there);
  textvqa_process_results (EvalAI processing, leave-one-out accuracy).
Headline: `accuracy` (percent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import find_path, has_parquet, image_ref, read_json, read_jsonl, read_lmms_lab
from mmeval.errors import DataError
from mmeval.metrics.vqa import evalai_answer, m4c_accuracy
from mmeval.task import Task, take_options
from mmeval.types import Doc, GenerationConfig, ImageRef, Prediction, Request
from tasks._common.cells import answer_texts
from tasks._common.outputs import record_scores, write_result_file
from tasks._common.prompts import ASSISTANT_STOP, SHORT_ANSWER
from tasks._common.scoring import AccuracyHeadline, accuracy_metrics

OCR_MARK = "\nReference OCR token:"
HUB_SPLIT = {"val": "validation", "test": "test"}
PARQUET_COLUMNS = ("question_id", "question", "image_id", "image")
LLAVA_QUESTION_FILE = "llava_textvqa_val_v051_ocr.jsonl"


def ocr_line(tokens: Sequence[str]) -> str:
    return f"{OCR_MARK} {', '.join(str(t) for t in tokens)}"


class TextVQA(AccuracyHeadline, Task):
    name = "textvqa"
    description = "TextVQA (m4c VQA accuracy), with or without LLaVA's OCR-token prompt"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    hub_id = ("lmms-lab-encoder/textvqa", "lmms-lab/textvqa")

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, {"split": ("val", "validation", "test"),
                                                 "ocr": ("auto", "true", "false", "1", "0", "yes", "no")})
        split = opts.get("split", "val")
        self.split = "val" if split == "validation" else split
        ocr = opts.get("ocr", "auto")
        self.ocr: bool | None = None if ocr == "auto" else ocr in ("true", "1", "yes")

    def use_ocr(self, protocol: str) -> bool:
        return (protocol != "lmms-eval") if self.ocr is None else self.ocr

    # -- data
    def load_docs(self, data: Path | None) -> list[Doc]:
        required = PARQUET_COLUMNS + (("answers",) if self.split == "val" else ())
        llava_prompts = self._llava_prompts(data)
        if data is None or has_parquet(data):
            rows = read_lmms_lab(self.hub_id, self.name, data, required, HUB_SPLIT[self.split])
            return self._docs_from_rows(rows, data, llava_prompts)
        return self._docs_from_official(data, llava_prompts)

    def _llava_prompts(self, data: Path | None) -> dict[int, str]:
        """LLaVA's val question texts by question_id, when its question file is in the data folder."""
        llava_file = find_path(data, [LLAVA_QUESTION_FILE]) if data is not None and self.split == "val" else None
        if llava_file is None:
            return {}
        return {int(r["question_id"]): str(r["text"]) for r in read_jsonl(llava_file, "LLaVA TextVQA questions")}

    def _docs_from_rows(self, rows, root: Path | None, llava_prompts: dict[int, str]) -> list[Doc]:
        docs = []
        for row in rows:
            qid = int(row["question_id"])
            tokens = row.get("ocr_tokens")
            docs.append(self._doc(qid, row["question"], row["image_id"], answer_texts(row.get("answers")),
                                  list(tokens) if tokens is not None else None,
                                  image_ref(row["image"], f"textvqa {qid}", root), llava_prompts.get(qid)))
        return docs

    def _docs_from_official(self, data: Path, llava_prompts: dict[int, str]) -> list[Doc]:
        name = f"TextVQA_0.5.1_{self.split}.json"
        qfile = find_path(data, [name])
        if qfile is None:
            raise DataError(f"textvqa ({self.split}): {data} has neither lmms-lab parquet files nor {name}")
        entries = read_json(qfile, "TextVQA questions/answers")["data"]
        folder = "train_images" if self.split == "val" else "test_images"
        images = find_path(data, [folder, f"images/{folder}", "images"], want_dir=True)
        if images is None:
            raise DataError(f"textvqa ({self.split}): no image folder {folder}/ under {data}")
        ocr_by_image: dict[str, list[str]] = {}
        ocr_file = find_path(data, [f"TextVQA_Rosetta_OCR_v0.2_{self.split}.json"])
        if ocr_file is not None:
            ocr_by_image = {str(e["image_id"]): list(e.get("ocr_tokens") or [])
                            for e in read_json(ocr_file, "TextVQA Rosetta OCR")["data"]}
        docs = []
        for e in entries:
            qid = int(e["question_id"])
            tokens = e.get("ocr_tokens", ocr_by_image.get(str(e["image_id"])))
            path = images / f"{e['image_id']}.jpg"
            answers = answer_texts(e.get("answers")) if self.split == "val" else None
            docs.append(self._doc(qid, e["question"], e["image_id"], answers, tokens,
                                  ImageRef(source=f"textvqa {qid} ({path.name})", path=str(path)),
                                  llava_prompts.get(qid)))
        return docs

    @staticmethod
    def _doc(qid, question, image_id, answers, tokens, image, llava_prompt) -> Doc:
        fields = {"question": str(question), "question_id": qid, "image_id": str(image_id),
                  "ocr_tokens": [str(t) for t in tokens] if tokens is not None else None}
        if llava_prompt is not None:
            fields["llava_prompt"] = llava_prompt
        return Doc(doc_id=str(qid), fields=fields, target=answers or None, images=(image,), group_key=str(image_id))

    # -- protocol
    def _ocr_text(self, doc: Doc) -> str:
        tokens = doc.fields.get("ocr_tokens")
        if tokens is None:
            raise DataError(f"textvqa {doc.doc_id}: the OCR prompt needs OCR tokens and this data has none "
                            "(use the lmms-lab copy or TextVQA_Rosetta_OCR_v0.2_*.json, or --task-args ocr=false)")
        return ocr_line(tokens)

    def prompt(self, doc: Doc, protocol: str) -> str:
        q = doc.fields["question"].strip()
        ocr = self.use_ocr(protocol)
        if protocol == "lmms-eval":
            return q.capitalize() + (self._ocr_text(doc) if ocr else "") + SHORT_ANSWER
        # LLaVA's question file: question (first letter upper-cased), OCR line, instruction.
        llava_text = doc.fields.get("llava_prompt")
        if llava_text is None or not ocr:
            llava_text = q[:1].upper() + q[1:] + (self._ocr_text(doc) if ocr else "") + SHORT_ANSWER
        if protocol == "llava":
            return llava_text
        # prismatic: prompt_fn(question) appends the instruction to the LLaVA text; without OCR
        # the text is cut at the OCR line first.
        base = llava_text if ocr else llava_text.split(OCR_MARK)[0]
        if not ocr and base.endswith(SHORT_ANSWER):
            base = base[: -len(SHORT_ANSWER)]
        return base + SHORT_ANSWER

    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        if protocol == "lmms-eval":
            gen = GenerationConfig(max_new_tokens=1024, stop=ASSISTANT_STOP)
        else:
            gen = GenerationConfig(max_new_tokens=128)
        return Request(doc_id=doc.doc_id, prompt=self.prompt(doc, protocol), images=doc.images,
                       group_key=doc.group_key, generation=gen)

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
