"""POPE: object-hallucination yes/no questions on COCO val2014 images, three categories
(adversarial, popular, random), each scored on its own and averaged as the papers report.

Layouts (`--data DIR/pope/`, or LLaVA's `playground/data/eval/pope/` as it is):
- POPE's original release (`pope-original`): `coco_pope_{adversarial,popular,random}.json` of
  AoiDragon/POPE `output/coco/` (JSON lines despite the name: question_id, image, text, label; CRLF
  at e3e3926) in the folder, in `coco/` or in `output/coco/`; images `val2014/` (COCO_val2014_*.jpg;
  also `val_images/`, vlm-evaluation's name). The papers scored commit **e3e3926** (8,910 questions:
  adversarial 3,000, popular 3,000, random 2,910; LLaVA-1.5's eval_pope.py, TRI's and Cobra's
  vlm-evaluation `pope` builder, which asserts those counts). Each file is recognised by its line
  count and its "imange" typos (e3e3926: 58/44/144; edebdda: adversarial 57, random 3,000; 109985c =
  HEAD: none); files of different releases are an error naming the counts.
- LLaVA-1.5's bundle (`llava-bundle`): its question file `llava_pope_test.jsonl` (question_id =
  category offset + POPE's id: adversarial 1.., random 10000001.., popular 20000001..; text = POPE's
  text + the short-answer instruction) beside the labels `coco/coco_pope_*.json`, where
  scripts/v1_5/eval/pope.sh points eval_pope.py (`--annotation-dir ./playground/data/eval/pope/coco`).
  eval_pope.py pairs answers and labels by position within a category and would silently misalign
  another release; here every question is matched to its label by (category, id) and must have the
  same image and text, else an error naming the counts or the first question that differs.
- lmms-lab parquet (`lmms-lab-encoder/POPE`, formerly `lmms-lab/POPE`, split `test`; columns
  question_id, question, answer, image_source, image, category), from the hub or a local folder: 9,000
  questions built from POPE's later files (random 3,000), lmms-eval's data. Under `llava` and
  `prismatic` the original files are used when present; a run on anything but e3e3926 under those
  protocols says in its notes that its numbers do not compare with the papers'.
Doc ids are `"<category>/<question_id>"` (POPE's own id, e3e3926 numbering for the original files).
Images are read when a model runs: scoring saved answers (`mmeval score`) needs none.

Protocols:
- `llava`: prompt "<question>\\nAnswer the question using a single word or phrase." (LLaVA's
  llava_pope_test.jsonl, taken as it is when present), greedy, 128 new tokens; the answer parsed by
  eval_pope.py's rule (haotian-liu/LLaVA c121f04 `llava/eval/eval_pope.py`, `scripts/v1_5/eval/pope.sh`);
  per category accuracy/precision/recall/F1/yes-ratio (predicted yes share), headline the mean F1
  over categories (LLaVA issue #626). On LLaVA-1.5-13B's released answers this gives eval_pope.py's
  numbers: mean F1 85.95.
- `prismatic`: vlm-evaluation's pope harness (Cobra's fork h-zhao1997/vlm-evaluation b0a691f,
  `vlm_eval/models/cobra.py` vqa_prompt_fn; same as TRI's): the message "<question>\\nAnswer the
  question using a single word or phrase." (leading whitespace stripped by its prompt builder); no
  text is parsed: the prediction is the larger of the next-token probabilities of "Yes" and "No"
  (ties go to yes, as np.argmax does); per split accuracy, ROC-AUC and PR-AUC of P(Yes) normalised
  over the pair, the final accuracy the mean of the split accuracies, final AUCs over all samples.
- `lmms-eval`: lmms-eval's pope task (0.7.3 `pope/utils.py`): question stripped + the instruction;
  exact match of the lower-cased stripped text, pooled over all categories, with its aggregation
  functions as written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.data.external_ids import Mapper, check_same_question, has_llava_ids
from mmeval.data.predictions import LLAVA, VLM_EVALUATION, PredictionLine
from mmeval.data.sources import (
    find_path,
    folder_source,
    has_parquet,
    image_ref,
    one_of,
    read_jsonl,
    read_lmms_lab_with_source,
)
from mmeval.data.writers import write_parquet
from mmeval.errors import DataError
from mmeval.metrics.yesno import binary_metrics, lmms_eval_pope_metrics, parse_yes_no_llava
from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, ImageRef, Prediction, Request
from tasks._common.candidates import candidate_choice, candidate_generation, probability_aucs
from tasks._common.llava import read_llava_questions, without_suffix
from tasks._common.prompts import SHORT_ANSWER, short_answer_prompt

COLUMNS = ("question_id", "question", "answer", "image_source", "image", "category")
CATEGORIES = ("adversarial", "popular", "random")
CANDIDATES = ("Yes", "No")
LABEL_FILES = {c: f"coco_pope_{c}.json" for c in CATEGORIES}
LABEL_FIELDS = ("question_id", "image", "text", "label")
LLAVA_QUESTIONS = "llava_pope_test.jsonl"
# llava_pope_test.jsonl: question_id = offset[category] + POPE's question_id (spec: LLaVA@32cebc38)
LLAVA_OFFSET = {"adversarial": 0, "random": 10_000_000, "popular": 20_000_000}
PAPERS_RELEASE = "e3e3926"
# (lines, questions with the "imange" typo) of each category file in each POPE release
RELEASES = {
    "e3e3926": {"adversarial": (3000, 58), "popular": (3000, 44), "random": (2910, 144)},
    "edebdda": {"adversarial": (3000, 57), "popular": (3000, 0), "random": (3000, 0)},
    "109985c": {"adversarial": (3000, 0), "popular": (3000, 0), "random": (3000, 0)},
}


def pope_release(shape: dict[str, tuple[int, int]]) -> str:
    """The POPE commit whose files have these (lines, typos) per category; "unknown" when none
    matches every file and the files do not betray two releases; DataError when they do."""
    candidates = {c: {r for r, files in RELEASES.items() if files[c] == s} for c, s in shape.items()}
    known = [c for c in candidates if candidates[c]]
    common = set.intersection(*(candidates[c] for c in known)) if known else set()
    if known and not common:
        counts = ", ".join(f"{LABEL_FILES[c]} {n} questions ({t} 'imange')" for c, (n, t) in shape.items())
        raise DataError(f"pope: the label files come from different POPE releases ({counts}; e3e3926, the papers' "
                        "release, has 3000/3000/2910 with 58/44/144): take all three from one commit")
    if len(known) < len(shape) or not common:
        return "unknown"
    # edebdda and 109985c differ only in the adversarial file: without it, name the newer one
    return PAPERS_RELEASE if PAPERS_RELEASE in common else max(common, key=list(RELEASES).index)


class Pope(Task):
    name = "pope"
    description = "POPE object hallucination (yes/no), random/popular/adversarial"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    version = "2"
    hub_id = ("lmms-lab-encoder/POPE", "lmms-lab/POPE")
    split = "test"

    def __init__(self, **options: str) -> None:
        super().__init__(**options)
        self.protocol: str | None = None

    def use_protocol(self, protocol: str) -> None:
        self.protocol = protocol

    # -- data
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is None:
            return self._docs_from_rows(data)
        labels = self._label_files(data)
        parquet = has_parquet(data)
        if parquet and (not labels or self.protocol == "lmms-eval"):
            return self._docs_from_rows(data)
        llava_file = find_path(data, [LLAVA_QUESTIONS])
        if llava_file is not None and not labels:
            raise DataError(f"pope: {data} has LLaVA's {LLAVA_QUESTIONS} but not coco/coco_pope_adversarial.json, "
                            "coco_pope_popular.json, coco_pope_random.json, which eval_pope.py reads from "
                            "./playground/data/eval/pope/coco/ (POPE's output/coco/ at commit e3e3926)")
        if not labels:
            raise DataError(f"pope: {data} has neither POPE's coco_pope_{{adversarial,popular,random}}.json "
                            f"(in the folder or coco/), LLaVA's {LLAVA_QUESTIONS} nor lmms-lab parquet files")
        return self._docs_from_original(data, labels, llava_file)

    @staticmethod
    def _label_files(data: Path) -> dict[str, Path]:
        for folder in (data / "coco", data / "output" / "coco", data):
            found = {c: folder / name for c, name in LABEL_FILES.items() if (folder / name).is_file()}
            if found:
                return found
        return {}

    def _docs_from_rows(self, data: Path | None) -> list[Doc]:
        # a category outside the three would be counted in n but scored in no metric: refused at load
        rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, COLUMNS, self.split,
                                                           types={"category": one_of(*CATEGORIES)})
        docs = []
        for i, row in enumerate(rows):
            answer = str(row["answer"]).strip().lower()
            if answer not in ("yes", "no"):
                raise DataError(f"pope row {i} (question_id {row['question_id']}): answer '{row['answer']}' "
                                "is not yes/no")
            category = str(row["category"]).strip().lower()
            # question_id repeats across categories in lmms-lab's copy; the pair is unique.
            doc_id = f"{category}/{row['question_id']}"
            docs.append(Doc(
                doc_id=doc_id,
                fields={"question": str(row["question"]), "category": category},
                target=answer,
                images=(image_ref(row["image"], f"pope {doc_id} ({row['image_source']})", data),),
                group_key=str(row["image_source"]),
            ))
        self.data_source.questions_per_split = {c: sum(d.fields["category"] == c for d in docs) for c in CATEGORIES}
        return docs

    def _docs_from_original(self, data: Path, files: dict[str, Path], llava_file: Path | None) -> list[Doc]:
        labels = {c: self._read_labels(path) for c, path in files.items()}
        release = pope_release({c: (len(rows), sum("imange" in r["text"] for r in rows))
                                for c, rows in labels.items()})
        images = find_path(data, ["val2014", "val_images", "coco/val2014"], want_dir=True) or data / "val2014"
        docs = []
        for category in CATEGORIES:
            for row in labels.get(category, ()):
                qid = int(row["question_id"])
                doc_id = f"{category}/{qid}"
                fields = {"question": str(row["text"]), "category": category, "image": str(row["image"])}
                if release == PAPERS_RELEASE:
                    fields["llava_question_id"] = LLAVA_OFFSET[category] + qid
                path = images / str(row["image"])
                docs.append(Doc(doc_id=doc_id, fields=fields, target=row["label"],
                                images=(ImageRef(source=f"pope {doc_id} ({path.name})", path=str(path)),),
                                group_key=Path(str(row["image"])).stem))
        layout, used = "pope-original", list(files.values())
        if llava_file is not None:
            docs = self._llava_order(llava_file, docs, {c: len(rows) for c, rows in labels.items()})
            layout, used = "llava-bundle", used + [llava_file]
        self.data_source = folder_source(layout, f"pope-original@{release}", self.split, data, used, len(docs),
                                         {c: len(rows) for c, rows in labels.items()})
        return docs

    @staticmethod
    def _read_labels(path: Path) -> list[dict]:
        rows = read_jsonl(path, "POPE labels")
        for i, row in enumerate(rows, 1):
            missing = [k for k in LABEL_FIELDS if k not in row]
            if missing or row["label"] not in ("yes", "no"):
                raise DataError(f"{path}:{i}: expected POPE's fields {', '.join(LABEL_FIELDS)} with label yes/no")
        return rows

    @staticmethod
    def _llava_order(llava_file: Path, docs: list[Doc], label_counts: dict[str, int]) -> list[Doc]:
        """The docs in LLaVA's question-file order with its prompts, after checking that every
        question is the labelled one (same category counts, ids, images and texts)."""
        questions = read_llava_questions(llava_file)
        counts = {c: sum(q.get("category") == c for q in questions) for c in CATEGORIES}
        if any(counts[c] != label_counts.get(c, 0) for c in CATEGORIES):
            have = ", ".join(f"{c} {counts[c]}" for c in CATEGORIES)
            want = ", ".join(f"{c} {label_counts.get(c, 0)}" for c in CATEGORIES)
            raise DataError(f"pope: LLaVA's {llava_file.name} has {have} questions but the label files have {want}: "
                            "the questions and the labels come from different POPE releases (LLaVA's file is built "
                            "from e3e3926: adversarial 3000, popular 3000, random 2910)")
        by_id = {d.doc_id: d for d in docs}
        ordered = []
        for q in questions:
            qid, category = int(q["question_id"]), q.get("category")
            doc = by_id.get(f"{category}/{qid - LLAVA_OFFSET.get(category, 0)}")
            text = without_suffix(str(q["text"]), SHORT_ANSWER)
            if doc is None or doc.fields["image"] != q["image"] or doc.fields["question"] != text:
                found = "no such question" if doc is None else f"'{doc.fields['question']}' on {doc.fields['image']}"
                raise DataError(f"pope: {llava_file.name} question {qid} ({category}: '{text}' on {q['image']}) is "
                                f"{found} in the label files: the questions and the labels come from different "
                                "POPE releases")
            doc.fields.update(llava_question_id=qid, llava_prompt=str(q["text"]))
            ordered.append(doc)
        return ordered

    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]]) -> Path:
        """Write rows (the COLUMNS; image as PIL or encoded bytes) as lmms-lab's POPE parquet."""
        return write_parquet(directory, Pope.split, rows)

    def doc_id_map(self, docs: Sequence[Doc], source: str) -> Mapper:
        """LLaVA's answers (question ids in e3e3926 numbering, see LLAVA_OFFSET) and
        vlm-evaluation's results (hashed ids: their metadata-full.json gives split and id) map to
        "<category>/<POPE question id>"; the question must then be the document's ("imange" typos aside,
        which one release has and the other not), so a file of another POPE release fails here."""
        if source == LLAVA and not has_llava_ids(docs):
            return self._checked_map(docs, _llava_doc_id, "prompt")
        if source == VLM_EVALUATION:
            return self._checked_map(docs, _vlm_doc_id, "question")
        return super().doc_id_map(docs, source)

    def _checked_map(self, docs: Sequence[Doc], doc_id: Callable[[PredictionLine], str | None], text: str) -> Mapper:
        by_id = {d.doc_id: d for d in docs}

        def mapper(line: PredictionLine) -> str | None:
            doc = by_id.get(doc_id(line) or "")
            if doc is not None:
                check_same_question(self.name, line, doc, _untypo(doc.fields["question"]),
                                    _untypo(line.context.get(text, "")), text)
            return doc.doc_id if doc is not None else None

        return mapper

    # -- protocol
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        if protocol == "lmms-eval":
            prompt = doc.fields["question"].strip() + SHORT_ANSWER
        else:
            prompt = short_answer_prompt(doc, protocol)
        if protocol == "prismatic":
            generation = candidate_generation(CANDIDATES)
        else:
            generation = GenerationConfig(max_new_tokens=128)
        return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key,
                       generation=generation)

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        label = doc.target
        out: dict[str, Any] = {"category": doc.fields["category"], "label": label}
        if protocol == "prismatic":
            out["p_yes"], yes = candidate_choice(prediction, CANDIDATES, f"pope {doc.doc_id}")
            out["pred"] = "yes" if yes else "no"
        elif protocol == "llava":
            out["pred"] = parse_yes_no_llava(prediction.text)
        else:
            out["pred"] = prediction.text.lower().strip()
        out["correct"] = float(out["pred"] == label)
        return out

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if protocol == "lmms-eval":
            m = lmms_eval_pope_metrics([s["pred"] for s in scores], [s["label"] for s in scores])
            return {k: 100.0 * v for k, v in m.items()}
        metrics: dict[str, float] = {}
        per_category: dict[str, list[dict[str, float]]] = {}
        for cat in CATEGORIES:
            part = [s for s in scores if s["category"] == cat]
            if not part:
                continue
            m = binary_metrics([s["pred"] for s in part], [s["label"] for s in part])
            if protocol == "prismatic":
                m.update(probability_aucs([int(s["label"] == "yes") for s in part], [s["p_yes"] for s in part]))
            per_category[cat] = [m]
            for k, v in m.items():
                metrics[f"{cat}/{k}"] = 100.0 * v
        if not per_category:
            return {}
        for k in per_category[next(iter(per_category))][0]:
            metrics[k] = float(np.mean([100.0 * ms[0][k] for ms in per_category.values()]))
        if protocol == "prismatic":
            aucs = probability_aucs([int(s["label"] == "yes") for s in scores], [s["p_yes"] for s in scores])
            metrics.update({k: 100.0 * v for k, v in aucs.items()})
        return metrics

    def bootstrap_units(self, scores: Sequence[dict[str, Any]], protocol: str):
        """Questions drawn within their split (category), whose sizes the papers' per-split
        numbers keep; returns `mmeval.bootstrap.Units`."""
        from mmeval.bootstrap import Units  # imported here so that this hook stays one self-contained block

        return Units(strata=[s["category"] for s in scores])

    def headline(self, protocol: str) -> str:
        return "accuracy" if protocol == "prismatic" else "f1"

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        base = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        return base + (("aucroc", "aucpr") if protocol == "prismatic" else ())

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        src = self.data_source
        if (protocol == "lmms-eval" or src is None or src.version == f"pope-original@{PAPERS_RELEASE}"
                or src.version.startswith("synthetic")):  # generated data says what it is in `data`
            return {}
        return {"data_note": f"POPE here is {src.version} ({src.layout}, {src.questions} questions); the papers "
                             f"scored POPE's original release at {PAPERS_RELEASE} (8,910 questions: adversarial "
                             "3,000, popular 3,000, random 2,910) with LLaVA's eval_pope.py and vlm-evaluation: "
                             "these numbers do not compare with theirs. Put POPE's coco_pope_*.json of commit "
                             f"{PAPERS_RELEASE} (AoiDragon/POPE output/coco/) in the pope data folder."}


def _untypo(text: str) -> str:
    return str(text).replace("imange", "image")


def _llava_doc_id(line: PredictionLine) -> str | None:
    """LLaVA's question id in e3e3926 numbering (LLAVA_OFFSET) -> "<category>/<POPE question id>"."""
    qid = line.key
    if isinstance(qid, bool) or not isinstance(qid, int) or qid < 0:
        return None
    category = {offset: c for c, offset in LLAVA_OFFSET.items()}.get(qid - qid % 10_000_000)
    return None if category is None else f"{category}/{qid % 10_000_000}"


def _vlm_doc_id(line: PredictionLine) -> str:
    meta = line.context.get("metadata")
    if not isinstance(meta, dict) or "split" not in meta or "split_question_id" not in meta:
        raise DataError(f"{line.where}: vlm-evaluation names POPE questions by a hash of split and id; give its "
                        "datasets/pope/metadata-full.json with --metadata (it maps the hash to split and question id)")
    return f"{meta['split']}/{meta['split_question_id']}"
