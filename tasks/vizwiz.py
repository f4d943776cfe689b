"""VizWiz-VQA: questions from blind users' photos; ten answers each, many "unanswerable".

Splits (`--task-args split=val|test`; default `val`, or `test` when the folder holds only LLaVA's
test questions): `val` is scored locally (vlm-evaluation's vizwiz datasets, i.e. Cobra's number,
and lmms-eval's vizwiz_vqa_val); `test` has no public answers: nothing is scored and `finalize`
writes `vizwiz_test_submission.json` ([{"image": "<name>.jpg", "answer"}], in question order) for
the VizWiz EvalAI server (LLaVA-1.5's reported split), byte for byte what LLaVA's
scripts/convert_vizwiz_for_submission.py writes.

Layouts (`--data DIR/vizwiz/`, or LLaVA's `playground/data/eval/vizwiz/` as it is):
- lmms-lab parquet (hub `lmms-lab-encoder/VizWiz-VQA`, formerly `lmms-lab/VizWiz-VQA`, splits `val` /
  `test`; columns question_id (the image name without .jpg), question, image, answers (strings),
  category (the answer type)), hub or local folder;
- official files: `Annotations/{val,test}.json` (list of {image, question, answers [{answer,
  answer_confidence}], answer_type, answerable}) with the images in `val/` or `test/`;
- LLaVA-1.5's bundle (test): its question file `llava_test.jsonl` (question_id = position, image
  "VizWiz_test_%08d.jpg", text = the raw question + the instructions), images `test/` (read only
  when a model runs). No annotation file: the test answers are the server's.
Doc ids are the image names without ".jpg". Whether a question is answerable comes from
`answerable` when present, else from the answer type / category ("unanswerable" means not).

Protocols (prompt "<question>\\nWhen the provided information is insufficient, respond with
'Unanswerable'.\\nAnswer the question using a single word or phrase."; the question is never
stripped where the reference keeps it: 425 of LLaVA's 8,000 test questions start or end with spaces):
- `llava`: LLaVA's question-file text as it is (else the raw question + the instructions), greedy,
  128 new tokens; answer = EvalAI processor (haotian-liu/LLaVA c121f04
  `scripts/convert_vizwiz_for_submission.py`; on LLaVA-1.5-13B's released answers the submission
  file equals the released `answers_upload/llava-v1.5-13b.json` byte for byte); on val scored with
  the VizWiz evaluation (prediction normalised, answers as given).
- `prismatic`: vlm-evaluation's vizwiz harness, the message of Cobra's fork (h-zhao1997/vlm-evaluation
  b0a691f `vlm_eval/models/cobra.py`, uncertainty-aware vqa_prompt_fn, the same as TRI's): leading
  whitespace stripped by its prompt builder, trailing kept; the raw output through the VizWiz
  evaluation; also the answerable / unanswerable accuracies and the unanswerable average precision
  and F1 of the binary "predicted unanswerable" decision, as that harness reports them.
- `lmms-eval`: lmms-eval 0.7.3's vizwiz_vqa: question.capitalize() (not stripped), stop at
  "ASSISTANT:", 1024 new tokens; vizwiz_vqa_process_results (EvalAI processing on both sides).
Headline: `accuracy` (percent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.external_ids import Mapper, check_same_question
from mmeval.data.predictions import VLM_EVALUATION, PredictionLine
from mmeval.data.sources import find_path, folder_source, has_parquet, image_ref, read_json, read_lmms_lab_with_source
from mmeval.errors import DataError
from mmeval.metrics.vqa import evalai_answer, m4c_accuracy, normalize_answer, vizwiz_accuracy
from mmeval.metrics.yesno import average_precision
from mmeval.task import Task, take_options
from mmeval.types import Doc, ImageRef, Prediction, Request
from tasks._common.cells import answer_texts
from tasks._common.llava import LLAVA_BUNDLE, read_llava_questions, without_suffix
from tasks._common.outputs import record_scores, write_result_file
from tasks._common.prompts import SHORT_ANSWER, open_answer_request, prismatic_message
from tasks._common.scoring import AccuracyHeadline, accuracy_metrics

UNCERTAIN_SUFFIX = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT_ANSWER
PARQUET_COLUMNS = ("question_id", "question", "image")
LLAVA_QUESTIONS = "llava_test.jsonl"
RELEASE = "vizwiz-vqa"


class VizWiz(AccuracyHeadline, Task):
    name = "vizwiz"
    description = "VizWiz-VQA (VQA accuracy, unanswerable questions); test writes the EvalAI submission file"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    version = "2"
    hub_id = ("lmms-lab-encoder/VizWiz-VQA", "lmms-lab/VizWiz-VQA")

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, {"split": ("val", "test")})
        self.split_option = opts.get("split")
        self.split = self.split_option or "val"
        self._order: list[str] = []  # the image names in question order (the submission's order)

    # -- data
    def load_docs(self, data: Path | None) -> list[Doc]:
        llava_file = find_path(data, [LLAVA_QUESTIONS]) if data is not None else None
        if self.split_option is None and llava_file is not None and not has_parquet(data) \
                and find_path(data, ["val.json", "Annotations/val.json"]) is None:
            self.split = "test"  # LLaVA's bundle holds the test questions only
        required = PARQUET_COLUMNS + (("answers",) if self.split == "val" else ())
        if self.split == "test" and llava_file is not None:
            docs = self._docs_from_llava(data, llava_file)
        elif data is None or has_parquet(data):
            rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, required, self.split)
            docs = self._docs_from_rows(rows, data)
        else:
            docs = self._docs_from_official(data)
        self._order = [d.doc_id for d in docs]
        return docs

    def _docs_from_llava(self, data: Path, qfile: Path) -> list[Doc]:
        images = find_path(data, ["test"], want_dir=True) or data / "test"
        docs = []
        for q in read_llava_questions(qfile):
            image = str(q["image"])
            doc = self._doc(Path(image).stem, without_suffix(str(q["text"]), UNCERTAIN_SUFFIX), None, "", None,
                            ImageRef(source=f"vizwiz {image}", path=str(images / image)))
            doc.fields.update(llava_question_id=q["question_id"], llava_prompt=str(q["text"]))
            docs.append(doc)
        self.data_source = folder_source("llava-bundle", LLAVA_BUNDLE, self.split, data, [qfile], len(docs))
        return docs

    def _docs_from_rows(self, rows, root: Path | None) -> list[Doc]:
        docs = []
        for row in rows:
            name = str(row["question_id"])
            name = name[:-4] if name.endswith(".jpg") else name
            answers = answer_texts(row.get("answers")) if self.split == "val" else None
            category = row.get("category") or row.get("answer_type") or ""
            answerable = row.get("answerable")
            docs.append(self._doc(name, row["question"], answers, category, answerable,
                                  image_ref(row["image"], f"vizwiz {name}", root)))
        return docs

    def _docs_from_official(self, data: Path) -> list[Doc]:
        afile = find_path(data, [f"{self.split}.json", f"Annotations/{self.split}.json"])
        if afile is None:
            raise DataError(f"vizwiz ({self.split}): {data} has neither lmms-lab parquet files nor "
                            f"Annotations/{self.split}.json")
        entries = read_json(afile, "VizWiz annotations")
        self.data_source = folder_source("official", RELEASE, self.split, data, [afile], len(entries))
        images = find_path(data, [self.split, f"{self.split}_images", f"images/{self.split}"], want_dir=True)
        if images is None:
            raise DataError(f"vizwiz ({self.split}): no image folder {self.split}/ under {data}")
        docs = []
        for e in entries:
            image = str(e["image"])
            name = image[:-4] if image.endswith(".jpg") else image
            answers = answer_texts(e.get("answers")) if self.split == "val" else None
            docs.append(self._doc(name, e["question"], answers, e.get("answer_type", ""), e.get("answerable"),
                                  ImageRef(source=f"vizwiz {image}", path=str(images / image))))
        return docs

    def _doc(self, name, question, answers, category, answerable, image) -> Doc:
        if self.split == "val" and not answers:
            raise DataError(f"vizwiz {name}: no answers in the val split")
        if answerable is None:
            answerable = 0 if str(category).strip().lower() == "unanswerable" else 1
        return Doc(doc_id=name, fields={"question": str(question), "image": f"{name}.jpg",
                                        "answer_type": str(category or ""), "answerable": int(answerable)},
                   target=answers, images=(image,), group_key=name)

    # -- other harnesses' predictions
    def doc_id_map(self, docs: Sequence[Doc], source: str) -> Mapper:
        """vlm-evaluation numbers VizWiz questions by their position in val.json (our documents' order
        in the official layout); the logged question must be the document's."""
        if source != VLM_EVALUATION:
            return super().doc_id_map(docs, source)

        def mapper(line: PredictionLine) -> str | None:
            i = line.key
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(docs):
                return None
            check_same_question(self.name, line, docs[i], docs[i].fields["question"], line.context.get("question"),
                                "question")
            return docs[i].doc_id

        return mapper

    # -- protocol
    def prompt(self, doc: Doc, protocol: str) -> str:
        question = doc.fields["question"]
        if protocol == "lmms-eval":
            return question.capitalize() + UNCERTAIN_SUFFIX
        if protocol == "prismatic":
            return prismatic_message("\n" + question + UNCERTAIN_SUFFIX)
        return doc.fields.get("llava_prompt") or question + UNCERTAIN_SUFFIX

    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        return open_answer_request(doc, self.prompt(doc, protocol), protocol)

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        text = prediction.text.strip()
        answer = text if protocol == "prismatic" else evalai_answer(text)
        out: dict[str, Any] = {"image": doc.fields["image"], "answer": answer,
                               "answerable": doc.fields["answerable"],
                               "pred_answerable": int(normalize_answer(answer) != "unanswerable")}
        if not doc.target:
            out.update(correct=0.0, scored=False)
            return out
        if protocol == "lmms-eval":
            acc = m4c_accuracy(text, doc.target, lmms_eval=True)
        else:  # llava scores its processed answer, prismatic the raw output; both with the VizWiz rules
            acc = vizwiz_accuracy(answer, doc.target)
        out.update(correct=acc, scored=True)
        return out

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        metrics = accuracy_metrics(scores)
        if not metrics or protocol == "lmms-eval":
            return metrics
        scored = [s for s in scores if s.get("scored", True)]
        for label, key in ((1, "accuracy_answerable"), (0, "accuracy_unanswerable")):
            part = [float(s["correct"]) for s in scored if int(s["answerable"]) == label]
            if part:
                metrics[key] = 100.0 * sum(part) / len(part)
        gt_un = [1 - int(s["answerable"]) for s in scored]
        pred_un = [1 - int(s["pred_answerable"]) for s in scored]
        if any(gt_un):
            metrics["unanswerable_ap"] = 100.0 * average_precision(gt_un, pred_un)
            tp = sum(1 for g, p in zip(gt_un, pred_un, strict=True) if g and p)
            fp = sum(1 for g, p in zip(gt_un, pred_un, strict=True) if not g and p)
            fn = sum(1 for g, p in zip(gt_un, pred_un, strict=True) if g and not p)
            metrics["unanswerable_f1"] = 100.0 * (2 * tp / (2 * tp + fp + fn)) if tp else 0.0
        return metrics

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        if self.split != "test":
            return {}
        answers = {s["image"]: s.get("answer", "") for s in map(record_scores, records) if "image" in s}
        order = [f"{name}.jpg" for name in self._order] or list(answers)
        entries = [{"image": image, "answer": answers[image]} for image in order if image in answers]
        path = write_result_file(Path(out_dir) / "vizwiz_test_submission.json", entries)
        missing = len(order) - len(entries)
        note = (f"VizWiz test has no public answers: no local score. Upload {path.name} to the VizWiz VQA "
                "challenge on EvalAI.")
        if missing:
            note += f" {missing} of the {len(order)} test questions have no answer in it: the server wants them all."
        return {"submission": str(path), "note": note}

    # -- fixtures / synthetic data
    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], split: str = "val",
                     layout: str = "parquet") -> Path:
        """Rows: name (e.g. 'VizWiz_val_00000000'), question, image (PIL), answers (10 strings, val),
        answer_type. `layout`: 'parquet' (lmms-lab) or 'official' (Annotations/<split>.json + <split>/)."""
        from mmeval.data.writers import write_json, write_parquet

        directory = Path(directory)
        if layout == "parquet":
            cells = [{"question_id": r["name"], "question": r["question"], "image": r["image"],
                      "answers": list(r["answers"]) if r.get("answers") else None,
                      "category": r.get("answer_type", "other")} for r in rows]
            return write_parquet(directory, split, cells)
        entries = []
        for r in rows:
            e = {"image": f"{r['name']}.jpg", "question": r["question"]}
            if r.get("answers"):
                e.update(answers=[{"answer": a, "answer_confidence": "yes"} for a in r["answers"]],
                         answer_type=r.get("answer_type", "other"),
                         answerable=0 if r.get("answer_type") == "unanswerable" else 1)
            entries.append(e)
        write_json(directory / "Annotations" / f"{split}.json", entries)
        images = directory / split
        images.mkdir(parents=True, exist_ok=True)
        for r in rows:
            r["image"].save(images / f"{r['name']}.jpg")
        return directory
