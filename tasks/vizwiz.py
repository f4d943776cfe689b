"""VizWiz-VQA: questions from blind users' photos; ten answers each, many "unanswerable".

Splits (`--task-args split=val|test`, default `val`): `val` is scored locally (TRI's harness, i.e.
Cobra's number, and lmms-eval's vizwiz_vqa_val); `test` has no public answers: nothing is scored
and `finalize` writes `vizwiz_test_submission.json` ([{"image": "<name>.jpg", "answer"}]) for the
VizWiz EvalAI server (LLaVA-1.5's reported split, via convert_vizwiz_for_submission.py).

Sources:
- lmms-lab parquet (hub `lmms-lab/VizWiz-VQA`, splits `val` / `test`; columns question_id (the
  image name without .jpg), question, image, answers (strings), category (the answer type)),
  hub or local folder;
- official files: `Annotations/{val,test}.json` (list of {image, question, answers [{answer,
  answer_confidence}], answer_type, answerable}) with the images in `val/` or `test/`.
Whether a question is answerable comes from `answerable` when present, else from the answer type
/ category ("unanswerable" means not answerable).

Protocols (prompt "<question>\\nWhen the provided information is insufficient, respond with
'Unanswerable'.\\nAnswer the question using a single word or phrase." in all three):
- `llava`: greedy, 128 new tokens; answer = EvalAI processor (convert_vizwiz_for_submission.py);
  on val scored with the VizWiz evaluation (prediction normalised, answers as given).
- `prismatic`: TRI's vizwiz harness: the raw output through the VizWiz evaluation; also the
  answerable / unanswerable accuracies and the unanswerable average precision and F1 of the
  binary "predicted unanswerable" decision, as that harness reports them.
- `lmms-eval`: lmms-eval's vizwiz_vqa: question.capitalize(), stop at "ASSISTANT:", 1024 new
  tokens; vizwiz_vqa_process_results (EvalAI processing on both sides).
Headline: `accuracy` (percent).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import find_path, has_parquet, image_ref, read_json, read_lmms_lab
from mmeval.errors import DataError
from mmeval.metrics.vqa import evalai_answer, m4c_accuracy, normalize_answer, vizwiz_accuracy
from mmeval.metrics.yesno import average_precision
from mmeval.task import Task, take_options
from mmeval.types import Doc, GenerationConfig, ImageRef, Prediction, Request
from tasks._common.cells import answer_texts
from tasks._common.outputs import record_scores, write_result_file
from tasks._common.prompts import ASSISTANT_STOP, SHORT_ANSWER
from tasks._common.scoring import AccuracyHeadline, accuracy_metrics

UNCERTAIN_SUFFIX = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT_ANSWER
PARQUET_COLUMNS = ("question_id", "question", "image")


class VizWiz(AccuracyHeadline, Task):
    name = "vizwiz"
    description = "VizWiz-VQA (VQA accuracy, unanswerable questions); test writes the EvalAI submission file"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    hub_id = ("lmms-lab-encoder/VizWiz-VQA", "lmms-lab/VizWiz-VQA")

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, {"split": ("val", "test")})
        self.split = opts.get("split", "val")

    # -- data
    def load_docs(self, data: Path | None) -> list[Doc]:
        required = PARQUET_COLUMNS + (("answers",) if self.split == "val" else ())
        if data is None or has_parquet(data):
            return self._docs_from_rows(read_lmms_lab(self.hub_id, self.name, data, required, self.split), data)
        return self._docs_from_official(data)

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

    # -- protocol
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        q = doc.fields["question"].strip()
        if protocol == "lmms-eval":
            return Request(doc_id=doc.doc_id, prompt=q.capitalize() + UNCERTAIN_SUFFIX, images=doc.images,
                           group_key=doc.group_key,
                           generation=GenerationConfig(max_new_tokens=1024, stop=ASSISTANT_STOP))
        return Request(doc_id=doc.doc_id, prompt=q + UNCERTAIN_SUFFIX, images=doc.images, group_key=doc.group_key,
                       generation=GenerationConfig(max_new_tokens=128))

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
        entries = [{"image": s["image"], "answer": s.get("answer", "")}
                   for s in map(record_scores, records) if "image" in s]
        path = write_result_file(Path(out_dir) / "vizwiz_test_submission.json", entries)
        return {"submission": str(path),
                "note": f"VizWiz test has no public answers: no local score. Upload {path.name} to the VizWiz "
                        "VQA challenge on EvalAI."}

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
