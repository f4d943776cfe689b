"""VQAv2: open-ended questions on COCO images, ten human answers each, scored with the official
VQA accuracy (see `mmeval.metrics.vqa`).

Splits (`--task-args split=testdev|val`; the default follows each protocol's reference: `testdev`
under `llava` (LLaVA-1.5's scripts/v1_5/eval/vqav2.sh: VL-Mamba's number), `val` under `prismatic`
(vlm-evaluation's vqa-v2 datasets are val2014: Cobra's number, full or subsampled) and under
`lmms-eval` (its `vqav2_val`, the task of the vqav2 group that is scored locally; `vqav2_test` is
test2015 for the server); `testdev` when no protocol was given):
- `testdev`: answers are not public. Nothing is scored locally; `finalize` writes the EvalAI
  submission file `vqav2_testdev_submission.json` (a list of {"question_id", "answer"}) into the run
  directory. EvalAI's test-dev phase wants an answer for every test2015 question: when the full
  test2015 question list is available (LLaVA's `llava_vqav2_mscoco_test2015.jsonl`, the official
  `v2_OpenEnded_mscoco_test2015_questions.json` in the data folder, or `--task-args
  test_questions=PATH`), the file lists them all in its order, those outside test-dev with the empty
  answer, byte for byte as LLaVA's scripts/convert_vqav2_for_submission.py writes it.
- `val`: scored locally (214k questions).

Layouts (`--data DIR/vqav2/`, or LLaVA's `playground/data/eval/vqav2/` as it is):
- lmms-lab parquet (hub `lmms-lab-encoder/VQAv2`, formerly `lmms-lab/VQAv2`, splits `testdev` and
  `validation`; columns question_id, question, image_id, image, answers [{answer, answer_confidence,
  answer_id}], answer_type, question_type), from the hub or a local folder (`data/<split>-*.parquet`);
- the official files: `v2_OpenEnded_mscoco_{val2014,test-dev2015}_questions.json`,
  `v2_mscoco_val2014_annotations.json` and the COCO image folders `val2014/` (COCO_val2014_<id>.jpg)
  and `test2015/` (COCO_test2015_<id>.jpg), in the data folder or one level below it;
- LLaVA-1.5's bundle (test-dev): its question file `llava_vqav2_mscoco_test-dev2015.jsonl`
  (question_id int, image "COCO_test2015_<id>.jpg", text = question + the instruction) with
  `llava_vqav2_mscoco_test2015.jsonl`, which convert_vqav2_for_submission.py reads for the list of
  all test2015 questions (images `test2015/`, read only when a model runs).

Protocols (prompt "<question>\\nAnswer the question using a single word or phrase." in all three):
- `llava`: LLaVA's question-file text as it is when read (else the stripped question + the
  instruction), greedy, 128 new tokens (model_vqa_loader.py); the answer passed through EvalAI's
  processor as convert_vqav2_for_submission.py does (haotian-liu/LLaVA c121f04 `scripts/`,
  `llava/eval/`); on val that answer is scored with the official vqaEval.py rules (what the server
  computes).
- `prismatic`: vlm-evaluation's vqa-v2 harness, the message of Cobra's fork (h-zhao1997/vlm-evaluation
  b0a691f `vlm_eval/models/cobra.py` vqa_prompt_fn, the same as TRI's): the question (leading
  whitespace stripped by the prompt builder) + the instruction; 128 new tokens; the raw output scored
  with its refactored scorer (ground truth always punctuation-processed; see `prismatic_vqav2_accuracy`).
- `lmms-eval`: lmms-eval 0.7.3's vqav2 task: the question as it is + the instruction, 16 new tokens,
  stop at "\\n\\n"; vqav2_process_results (both sides punctuation + digit/article processed).
Headline: `accuracy` (percent), with per-answer-type accuracies alongside.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import (
    find_path,
    folder_source,
    has_parquet,
    image_ref,
    read_json,
    read_lmms_lab_with_source,
)
from mmeval.errors import DataError
from mmeval.metrics.vqa import (
    evalai_answer,
    lmms_eval_vqav2_accuracy,
    lmms_eval_vqav2_answer,
    prismatic_vqav2_accuracy,
    vqa_accuracy,
)
from mmeval.task import Task, take_options
from mmeval.types import Doc, ImageRef, Prediction, Request
from tasks._common.cells import answer_texts
from tasks._common.llava import LLAVA_BUNDLE, missing_annotation, read_llava_questions, without_suffix
from tasks._common.outputs import record_scores, write_result_file
from tasks._common.prompts import SHORT_ANSWER, short_answer_request
from tasks._common.scoring import AccuracyHeadline, accuracy_metrics, per_group_accuracy

OFFICIAL = {
    "val": {"questions": "v2_OpenEnded_mscoco_val2014_questions.json",
            "annotations": "v2_mscoco_val2014_annotations.json",
            "images": "val2014", "image_prefix": "COCO_val2014_"},
    "testdev": {"questions": "v2_OpenEnded_mscoco_test-dev2015_questions.json",
                "annotations": None, "images": "test2015", "image_prefix": "COCO_test2015_"},
}
TEST2015_QUESTIONS = "v2_OpenEnded_mscoco_test2015_questions.json"
HUB_SPLIT = {"val": "validation", "testdev": "testdev"}
PARQUET_COLUMNS = ("question_id", "question", "image_id", "image")
LLAVA_TESTDEV = "llava_vqav2_mscoco_test-dev2015.jsonl"
LLAVA_TEST2015 = "llava_vqav2_mscoco_test2015.jsonl"
DEFAULT_SPLIT = {"llava": "testdev", "prismatic": "val", "lmms-eval": "val"}
RELEASE = "vqa-v2.0"


def _question_ids(path: Path) -> list[int]:
    """The question ids of the full test2015 question list (EvalAI wants an answer for each), from
    the official JSON or LLaVA's JSONL, in the file's order."""
    if path.suffix == ".jsonl":
        return [int(q["question_id"]) for q in read_llava_questions(path)]
    return [int(q["question_id"]) for q in read_json(path, "VQAv2 test2015 questions")["questions"]]


class VQAv2(AccuracyHeadline, Task):
    name = "vqav2"
    description = "VQAv2 open-ended VQA (official VQA accuracy); test-dev writes the EvalAI submission file"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    version = "2"
    hub_id = ("lmms-lab-encoder/VQAv2", "lmms-lab/VQAv2")

    def __init__(self, **options: str) -> None:
        opts = take_options(self.name, options, {"split": ("testdev", "val", "validation", "test-dev"),
                                                 "test_questions": None})
        split = opts.get("split")
        self.split_option = {"validation": "val", "test-dev": "testdev"}.get(split, split)
        self.split = self.split_option or "testdev"
        self.test_questions = Path(opts["test_questions"]).expanduser() if "test_questions" in opts else None
        self._all_test_ids: list[int] | None = None

    def use_protocol(self, protocol: str) -> None:
        self.split = self.split_option or DEFAULT_SPLIT[protocol]

    # -- data
    def load_docs(self, data: Path | None) -> list[Doc]:
        if self.test_questions is not None:
            self._all_test_ids = _question_ids(self.test_questions)
        if data is None or has_parquet(data):
            required = PARQUET_COLUMNS + (("answers",) if self.split == "val" else ())
            rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, required,
                                                               HUB_SPLIT[self.split])
            return self._docs_from_rows(rows, data)
        llava_file = find_path(data, [LLAVA_TESTDEV])
        if llava_file is not None and self.split == "testdev":
            return self._docs_from_llava(data, llava_file)
        return self._docs_from_official(data, llava_file)

    def _docs_from_rows(self, rows, root: Path | None) -> list[Doc]:
        docs = []
        for row in rows:
            qid = int(row["question_id"])
            answers = answer_texts(row.get("answers")) if self.split == "val" else None
            if self.split == "val" and not answers:
                raise DataError(f"vqav2 question {qid}: no answers in the validation split")
            docs.append(self._doc(qid, row["question"], row["image_id"], answers,
                                  row.get("answer_type"), image_ref(row["image"], f"vqav2 {qid}", root)))
        return docs

    def _docs_from_llava(self, data: Path, qfile: Path) -> list[Doc]:
        full = find_path(data, [LLAVA_TEST2015])
        if full is None:
            raise missing_annotation(self.name, qfile, LLAVA_TEST2015,
                                     f"./playground/data/eval/vqav2/{LLAVA_TEST2015} (the test2015 questions that "
                                     "the EvalAI test-dev phase wants answered)",
                                     "LLaVA's scripts/convert_vqav2_for_submission.py")
        if self.test_questions is None:
            self._all_test_ids = _question_ids(full)
        images = find_path(data, ["test2015"], want_dir=True) or data / "test2015"
        docs = []
        for q in read_llava_questions(qfile):
            qid, name = int(q["question_id"]), str(q["image"])
            image_id = int(Path(name).stem.rsplit("_", 1)[-1])
            doc = self._doc(qid, without_suffix(str(q["text"]), SHORT_ANSWER), image_id, None, None,
                            ImageRef(source=f"vqav2 {qid} ({name})", path=str(images / name)))
            doc.fields.update(llava_question_id=q["question_id"], llava_prompt=str(q["text"]))
            docs.append(doc)
        self.data_source = folder_source("llava-bundle", LLAVA_BUNDLE, self.split, data, [qfile, full], len(docs))
        return docs

    def _docs_from_official(self, data: Path, llava_file: Path | None = None) -> list[Doc]:
        spec = OFFICIAL[self.split]
        qfile = find_path(data, [spec["questions"]])
        if qfile is None:
            held = " (it holds LLaVA's test-dev questions: --task-args vqav2.split=testdev)" if llava_file else ""
            raise DataError(f"vqav2 ({self.split}): {data} has neither lmms-lab parquet files nor "
                            f"{spec['questions']}{held}")
        questions = read_json(qfile, "VQAv2 questions")["questions"]
        answers: dict[int, dict] = {}
        files = [qfile]
        if spec["annotations"]:
            afile = find_path(data, [spec["annotations"]])
            if afile is None:
                raise DataError(f"vqav2 (val): {data} has no {spec['annotations']} (the answers)")
            files.append(afile)
            answers = {int(a["question_id"]): a for a in read_json(afile, "VQAv2 annotations")["annotations"]}
        images = find_path(data, [spec["images"], f"images/{spec['images']}"], want_dir=True)
        if images is None:
            raise DataError(f"vqav2 ({self.split}): no image folder {spec['images']}/ under {data}")
        if self.split == "testdev" and self._all_test_ids is None:
            full = find_path(data, [TEST2015_QUESTIONS])
            if full is not None:
                self._all_test_ids = _question_ids(full)
                files.append(full)
        docs = []
        for q in questions:
            qid = int(q["question_id"])
            ann = answers.get(qid)
            if spec["annotations"] and ann is None:
                raise DataError(f"vqav2: question {qid} has no annotation in {spec['annotations']}")
            path = images / f"{spec['image_prefix']}{int(q['image_id']):012d}.jpg"
            docs.append(self._doc(qid, q["question"], q["image_id"], answer_texts(ann["answers"]) if ann else None,
                                  ann.get("answer_type") if ann else None,
                                  ImageRef(source=f"vqav2 {qid} ({path.name})", path=str(path))))
        self.data_source = folder_source("official", RELEASE, self.split, data, files, len(docs))
        return docs

    @staticmethod
    def _doc(qid: int, question: str, image_id: Any, answers: list[str] | None, answer_type: Any,
             image: ImageRef) -> Doc:
        return Doc(doc_id=str(qid),
                   fields={"question": str(question), "question_id": qid, "image_id": str(image_id),
                           "answer_type": str(answer_type) if answer_type else ""},
                   target=answers, images=(image,), group_key=str(image_id))

    # -- protocol
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        return short_answer_request(doc, protocol)

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        text = prediction.text
        if protocol == "llava":
            answer = evalai_answer(text.strip())
        elif protocol == "lmms-eval":
            answer = lmms_eval_vqav2_answer(text.strip())
        else:
            answer = text.strip()
        out: dict[str, Any] = {"question_id": doc.fields["question_id"], "answer": answer,
                               "answer_type": doc.fields.get("answer_type", "")}
        gts = doc.target
        if not gts:
            out.update(correct=0.0, scored=False)
            return out
        if protocol == "llava":
            acc = vqa_accuracy(answer, gts)
        elif protocol == "prismatic":
            acc = prismatic_vqav2_accuracy(text, gts)
        else:
            acc = lmms_eval_vqav2_accuracy(text.strip(), gts)
        out.update(correct=acc, scored=True)
        return out

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        metrics = accuracy_metrics(scores)
        if metrics and protocol != "lmms-eval":
            metrics.update(per_group_accuracy(scores, "answer_type"))
        return metrics

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        if self.split != "testdev":
            return {}
        answers = {}
        for r in records:
            s = record_scores(r)
            if "question_id" in s:
                answers[int(s["question_id"])] = s.get("answer", "")
        if self._all_test_ids is not None:
            entries = [{"question_id": q, "answer": answers.get(q, "")} for q in self._all_test_ids]
            filled = "every test2015 question (those outside test-dev with the empty answer)"
        else:
            entries = [{"question_id": q, "answer": a} for q, a in answers.items()]
            filled = ("the test-dev questions only: EvalAI wants all test2015 questions; pass "
                      f"--task-args test_questions=PATH/{TEST2015_QUESTIONS} to fill the rest")
        path = write_result_file(Path(out_dir) / "vqav2_testdev_submission.json", entries)
        return {"submission": str(path),
                "note": f"VQAv2 test-dev has no public answers: no local score. Upload {path.name} to the "
                        f"VQA challenge on EvalAI (test-dev phase). It covers {filled}."}

    # -- fixtures / synthetic data
    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], split: str = "val",
                     layout: str = "parquet") -> Path:
        """Write rows in a real layout. Each row: question_id, question, image_id, image (PIL), and for
        val answers (10 strings) and optionally answer_type. `layout`: 'parquet' (lmms-lab) or 'official'."""
        from mmeval.data.writers import write_json, write_parquet

        directory = Path(directory)
        if layout == "parquet":
            cells = []
            for r in rows:
                answers = r.get("answers")
                cells.append({
                    "question_id": int(r["question_id"]), "question": r["question"], "image_id": int(r["image_id"]),
                    "question_type": r.get("question_type", "what"), "answer_type": r.get("answer_type", "other"),
                    "multiple_choice_answer": answers[0] if answers else "",
                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                for i, a in enumerate(answers)] if answers else None,
                    "image": r["image"]})
            return write_parquet(directory, HUB_SPLIT[split], cells)
        spec = OFFICIAL[split]
        write_json(directory / spec["questions"], {"questions": [
            {"question_id": int(r["question_id"]), "question": r["question"], "image_id": int(r["image_id"])}
            for r in rows]})
        if spec["annotations"]:
            write_json(directory / spec["annotations"], {"annotations": [
                {"question_id": int(r["question_id"]), "image_id": int(r["image_id"]),
                 "question_type": r.get("question_type", "what"), "answer_type": r.get("answer_type", "other"),
                 "multiple_choice_answer": r["answers"][0],
                 "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                             for i, a in enumerate(r["answers"])]} for r in rows]})
        images = directory / spec["images"]
        images.mkdir(parents=True, exist_ok=True)
        for r in rows:
            r["image"].save(images / f"{spec['image_prefix']}{int(r['image_id']):012d}.jpg")
        return directory
