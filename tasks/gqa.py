"""GQA test-dev balanced: compositional questions on Visual Genome images, one answer each,
exact match after each protocol's normalisation; accuracy over the 12,578 balanced questions.

Layouts (`--data DIR/gqa/`, or LLaVA's `playground/data/eval/gqa/` as it is):
- lmms-lab parquet (hub `lmms-lab-encoder/GQA`, formerly `lmms-lab/GQA`, two configs:
  `testdev_balanced_instructions` (columns id, imageId, question, answer, fullAnswer, types, ...) and
  `testdev_balanced_images` (columns id, image), split `testdev`); locally, a folder holding the two
  config folders `testdev_balanced_instructions/` and `testdev_balanced_images/` (each with its
  parquet files); questions are joined to images by imageId;
- official files: `testdev_balanced_questions.json` ({qid: {imageId, question, answer, types,
  isBalanced, ...}}, GQA's questions1.2) and the `images/` folder (<imageId>.jpg);
- LLaVA-1.5's bundle: its question file `llava_gqa_testdev_balanced.jsonl` (question_id = GQA's id as
  a string, text = question + the instruction) with the annotation file GQA's eval.py reads:
  `data/testdev_balanced_questions.json` (scripts/v1_5/eval/gqa.sh runs eval.py in
  ./playground/data/eval/gqa/data; images `data/images/`, read only when a model runs); each line is
  joined to its annotation by question id (the parquet rows serve as annotations too).
Doc ids are GQA's question ids.

Protocols (prompt "<question>\\nAnswer the question using a single word or phrase." in all three):
- `llava`: LLaVA's question-file text as it is when read (else the stripped question + the
  instruction), greedy, 128 new tokens; convert_gqa_for_eval.py (haotian-liu/LLaVA c121f04 `scripts/`:
  strip trailing periods, lower-case) and the official eval.py exact match.
- `prismatic`: vlm-evaluation's gqa harness, the message of Cobra's fork (h-zhao1997/vlm-evaluation
  b0a691f `vlm_eval/models/cobra.py` vqa_prompt_fn, the same as TRI's; leading whitespace stripped by
  its prompt builder): 128 new tokens; punctuation deleted, lower-cased, then eval.py.
- `lmms-eval`: lmms-eval 0.7.3's gqa task: the question as it is; 16 new tokens, stop at "\\n\\n";
  exact_match with ignore_case/ignore_punctuation.
Headline: `accuracy` (percent); with structural types available, also `accuracy_binary`
(verify/logical/choose/compare questions) and `accuracy_open` ("query"), as eval.py splits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import (
    check_columns,
    dataset_release,
    find_path,
    folder_source,
    hub_source,
    image_ref,
    open_hub,
    parquet_files,
    read_json,
    read_parquet_dir,
)
from mmeval.errors import DataError
from mmeval.metrics.exact import gqa_llava_answer, gqa_prismatic_answer, lmms_eval_exact_match
from mmeval.task import Task, take_options
from mmeval.types import Doc, ImageRef, Prediction, Request
from tasks._common.llava import LLAVA_BUNDLE, missing_annotation, read_llava_questions
from tasks._common.prompts import short_answer_request
from tasks._common.scoring import AccuracyHeadline, accuracy_metrics

QUESTIONS_CONFIG = "testdev_balanced_instructions"
IMAGES_CONFIG = "testdev_balanced_images"
SPLIT = "testdev"
QUESTION_COLUMNS = ("id", "imageId", "question", "answer")
IMAGE_COLUMNS = ("id", "image")
OFFICIAL_QUESTIONS = "testdev_balanced_questions.json"
LLAVA_QUESTIONS = "llava_gqa_testdev_balanced.jsonl"
RELEASE = "gqa-questions1.2"


def _structural(types: Any) -> str:
    if isinstance(types, dict):
        return str(types.get("structural") or "")
    return ""


class GQA(AccuracyHeadline, Task):
    name = "gqa"
    description = "GQA test-dev balanced (exact match)"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    version = "2"
    hub_id = ("lmms-lab-encoder/GQA", "lmms-lab/GQA")

    def __init__(self, **options: str) -> None:
        take_options(self.name, options, {})

    # -- data
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is None:
            questions, loaded = open_hub(self.hub_id, SPLIT, QUESTION_COLUMNS, self.name, config=QUESTIONS_CONFIG)
            images = open_hub(self.hub_id, SPLIT, IMAGE_COLUMNS, self.name, config=IMAGES_CONFIG)[0]
            docs = self._docs_from_parquet(questions, images, None)
            self.data_source = hub_source(self.hub_id, loaded, SPLIT, len(docs))
            return docs
        llava_file = find_path(data, [LLAVA_QUESTIONS])
        qdir = find_path(data, [QUESTIONS_CONFIG], want_dir=True)
        if qdir is not None:
            idir = find_path(data, [IMAGES_CONFIG], want_dir=True)
            if idir is None:
                raise DataError(f"gqa: {data} has {QUESTIONS_CONFIG}/ but no {IMAGES_CONFIG}/ "
                                "(lmms-lab/GQA keeps the images in that second config)")
            docs = self._docs_from_parquet(read_parquet_dir(qdir, QUESTION_COLUMNS, SPLIT),
                                           read_parquet_dir(idir, IMAGE_COLUMNS, SPLIT), idir)
            layout, version, files = ("lmms-lab-parquet", dataset_release(self.hub_id),
                                      parquet_files(qdir, SPLIT) + parquet_files(idir, SPLIT))
        else:
            qfile = find_path(data, [OFFICIAL_QUESTIONS])
            if qfile is None and llava_file is not None:
                raise missing_annotation(self.name, llava_file, OFFICIAL_QUESTIONS,
                                         f"./playground/data/eval/gqa/data/{OFFICIAL_QUESTIONS} (GQA's questions1.2)",
                                         "GQA's eval.py, run by LLaVA's scripts/v1_5/eval/gqa.sh,")
            if qfile is None:
                raise DataError(f"gqa: {data} has neither the lmms-lab folders {QUESTIONS_CONFIG}/ + "
                                f"{IMAGES_CONFIG}/ nor the official {OFFICIAL_QUESTIONS}")
            docs = self._docs_from_official(qfile, data, need_images=llava_file is None)
            layout, version, files = "official", RELEASE, [qfile]
        if llava_file is not None:
            docs = self._llava_docs(llava_file, docs)
            layout, version, files = "llava-bundle", LLAVA_BUNDLE, [*files, llava_file]
        self.data_source = folder_source(layout, version, SPLIT, data, files, len(docs))
        return docs

    @staticmethod
    def _llava_docs(qfile: Path, docs: list[Doc]) -> list[Doc]:
        """The docs of LLaVA's question file, in its order, joined by question id, with its text."""
        by_id = {d.doc_id: d for d in docs}
        out = []
        for i, q in enumerate(read_llava_questions(qfile), 1):
            doc = by_id.get(str(q["question_id"]))
            if doc is None:
                raise DataError(f"{qfile}:{i}: question {q['question_id']} is not in the GQA annotations")
            doc.fields.update(llava_question_id=q["question_id"], llava_prompt=str(q["text"]))
            out.append(doc)
        return out

    def _docs_from_parquet(self, questions, images, root: Path | None) -> list[Doc]:
        check_columns(questions.column_names, QUESTION_COLUMNS, f"gqa {QUESTIONS_CONFIG}")
        by_id = {str(row["id"]): row["image"] for row in images}
        docs = []
        for row in questions:
            image_id = str(row["imageId"])
            if image_id not in by_id:
                raise DataError(f"gqa question {row['id']}: image {image_id} is not in {IMAGES_CONFIG}")
            docs.append(self._doc(str(row["id"]), row["question"], row["answer"], image_id,
                                  _structural(row.get("types")),
                                  image_ref(by_id[image_id], f"gqa {row['id']} (image {image_id})", root)))
        return docs

    def _docs_from_official(self, qfile: Path, data: Path, need_images: bool = True) -> list[Doc]:
        questions = read_json(qfile, "GQA questions")
        images = find_path(data, ["images", "allImages/images"], want_dir=True)
        if images is None:
            if need_images:
                raise DataError(f"gqa: no images/ folder under {data}")
            images = qfile.parent / "images"  # where gqa.sh has them; read only when a model runs
        docs = []
        for qid, q in questions.items():
            if not q.get("isBalanced", True):
                continue  # eval.py scores the balanced questions only
            path = images / f"{q['imageId']}.jpg"
            docs.append(self._doc(str(qid), q["question"], q["answer"], str(q["imageId"]), _structural(q.get("types")),
                                  ImageRef(source=f"gqa {qid} ({path.name})", path=str(path))))
        return docs

    @staticmethod
    def _doc(qid: str, question: str, answer: str, image_id: str, structural: str, image: ImageRef) -> Doc:
        return Doc(doc_id=qid, fields={"question": str(question), "image_id": image_id, "structural": structural},
                   target=str(answer), images=(image,), group_key=image_id)

    # -- protocol
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        return short_answer_request(doc, protocol)

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        text = prediction.text
        if protocol == "lmms-eval":
            pred, correct = text.strip(), lmms_eval_exact_match(text, doc.target)
        else:
            pred = gqa_llava_answer(text) if protocol == "llava" else gqa_prismatic_answer(text)
            correct = float(pred == doc.target)
        return {"pred": pred, "correct": correct, "structural": doc.fields.get("structural", "")}

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        metrics = accuracy_metrics(scores)
        if metrics and protocol != "lmms-eval":
            groups: dict[str, list[float]] = {}
            for s in scores:
                if s.get("structural"):
                    kind = "open" if s["structural"] == "query" else "binary"
                    groups.setdefault(kind, []).append(float(s["correct"]))
            for kind, vals in sorted(groups.items()):
                metrics[f"accuracy_{kind}"] = 100.0 * sum(vals) / len(vals)
        return metrics

    # -- fixtures / synthetic data
    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], layout: str = "parquet") -> Path:
        """Rows: id, imageId, question, answer, image (PIL), optional structural type. Rows may share
        an imageId (the image is written once). `layout`: 'parquet' (lmms-lab's two configs) or
        'official' (testdev_balanced_questions.json + images/)."""
        from mmeval.data.writers import write_json, write_parquet

        directory = Path(directory)
        images: dict[str, Any] = {}
        for r in rows:
            images.setdefault(str(r["imageId"]), r["image"])
        types = [{"structural": r.get("structural", "query"), "semantic": "obj", "detailed": "x"} for r in rows]
        if layout == "parquet":
            write_parquet(directory / QUESTIONS_CONFIG, SPLIT, [
                {"id": str(r["id"]), "imageId": str(r["imageId"]), "question": r["question"], "answer": r["answer"],
                 "fullAnswer": r["answer"], "isBalanced": True, "types": t} for r, t in zip(rows, types, strict=True)],
                image_columns=())
            write_parquet(directory / IMAGES_CONFIG, SPLIT,
                          [{"id": k, "image": v} for k, v in images.items()])
            return directory
        write_json(directory / OFFICIAL_QUESTIONS, {
            str(r["id"]): {"imageId": str(r["imageId"]), "question": r["question"], "answer": r["answer"],
                           "fullAnswer": r["answer"], "isBalanced": True, "types": t}
            for r, t in zip(rows, types, strict=True)})
        (directory / "images").mkdir(parents=True, exist_ok=True)
        for k, v in images.items():
            v.save(directory / "images" / f"{k}.jpg")
        return directory
