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

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

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
