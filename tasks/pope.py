"""POPE: object-hallucination yes/no questions on COCO images, three categories
(random, popular, adversarial), each scored on its own and averaged as the papers report.

Source: the lmms-lab parquet layout (hub id `lmms-lab/POPE`, split `test`, columns question_id,
question, answer, image_source, image, category) or a local folder of those parquet files.

Protocols:
- `llava`: prompt "<question>\\nAnswer the question using a single word or phrase." (LLaVA's
  llava_pope_test.jsonl), greedy, 128 new tokens; the answer parsed by eval_pope.py's rule; per
  category accuracy/precision/recall/F1/yes-ratio, headline the mean F1 over categories.
- `prismatic`: TRI vlm-evaluation's harness (Cobra): the same prompt, but no text is parsed: the
  prediction is the larger of the next-token probabilities of "Yes" and "No" (ties go to yes,
  as np.argmax does); per split accuracy, ROC-AUC and PR-AUC of P(Yes) normalised over the
  pair, the final accuracy the mean of the split accuracies, final AUCs over all samples.
- `lmms-eval`: lmms-eval's pope task: exact match of the lower-cased stripped text, pooled over
  all categories, with its aggregation functions as written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmeval.data.external_ids import Mapper, check_same_question, has_llava_ids
from mmeval.data.predictions import LLAVA, VLM_EVALUATION, PredictionLine
from mmeval.data.sources import image_ref, read_lmms_lab
from mmeval.data.writers import write_parquet
from mmeval.errors import DataError
from mmeval.metrics.yesno import binary_metrics, lmms_eval_pope_metrics, parse_yes_no_llava
from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, Prediction, Request
from tasks._common.candidates import candidate_choice, candidate_generation, probability_aucs
from tasks._common.prompts import SHORT_ANSWER

COLUMNS = ("question_id", "question", "answer", "image_source", "image", "category")
CATEGORIES = ("adversarial", "popular", "random")
CANDIDATES = ("Yes", "No")
# LLaVA's llava_pope_test.jsonl numbers POPE e3e3926's questions as offset + POPE's own id, the
# category being question_id // 10_000_000 in this order
LLAVA_CATEGORY_OFFSETS = ("adversarial", "random", "popular")


class Pope(Task):
    name = "pope"
    description = "POPE object hallucination (yes/no), random/popular/adversarial"
    protocols = ("llava", "prismatic", "lmms-eval")
    default_protocol = "llava"
    hub_id = "lmms-lab/POPE"
    split = "test"

    def load_docs(self, data: Path | None) -> list[Doc]:
        rows = read_lmms_lab(self.hub_id, self.name, data, COLUMNS, self.split)
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
                images=(image_ref(row["image"], f"pope {doc_id} ({row['image_source']})"),),
                group_key=str(row["image_source"]),
            ))
        return docs

    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]]) -> Path:
        """Write rows (the COLUMNS; image as PIL or encoded bytes) as lmms-lab's POPE parquet."""
        return write_parquet(directory, Pope.split, rows)

    def doc_id_map(self, docs: Sequence[Doc], source: str) -> Mapper:
        """LLaVA's answers (question ids in e3e3926 numbering, see LLAVA_CATEGORY_OFFSETS) and
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

    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        prompt = doc.fields["question"].strip() + SHORT_ANSWER
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

    def headline(self, protocol: str) -> str:
        return "accuracy" if protocol == "prismatic" else "f1"

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        base = ("accuracy", "precision", "recall", "f1", "yes_ratio")
        return base + (("aucroc", "aucpr") if protocol == "prismatic" else ())


def _untypo(text: str) -> str:
    return str(text).replace("imange", "image")


def _llava_doc_id(line: PredictionLine) -> str | None:
    qid = line.key
    if isinstance(qid, bool) or not isinstance(qid, int) or not 0 <= qid < 10_000_000 * len(LLAVA_CATEGORY_OFFSETS):
        return None
    return f"{LLAVA_CATEGORY_OFFSETS[qid // 10_000_000]}/{qid % 10_000_000}"


def _vlm_doc_id(line: PredictionLine) -> str:
    meta = line.context.get("metadata")
    if not isinstance(meta, dict) or "split" not in meta or "split_question_id" not in meta:
        raise DataError(f"{line.where}: vlm-evaluation names POPE questions by a hash of split and id; give its "
                        "datasets/pope/metadata-full.json with --metadata (it maps the hash to split and question id)")
    return f"{meta['split']}/{meta['split_question_id']}"
