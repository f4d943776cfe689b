"""MMBench (English, dev split): single-choice questions scored with CircularEval: every question
comes with rotations of its options (rows whose index is the question's index plus k * 1e6), and a
question counts only when every rotation is answered right. Also the vanilla accuracy (original
rows only) and per-category (and L2-category) circular accuracies.

Sources (split `dev`):
- the lmms-lab parquet layout: hub id `lmms-lab-encoder/MMBench` config `en` (as the installed
  lmms-eval names it; `lmms-lab/MMBench` holds the same files) or a local folder of those files (an
  `en/` subfolder is preferred); columns index, question, hint, A, B, C, D, answer, category, image,
  L2-category, source, split.
- the official TSV: `mmbench_dev_20230712.tsv`, the release LLaVA-1.5 scored (`--data` = LLaVA's
  `playground/data/eval`, folder `mmbench/`, where scripts/v1_5/eval/mmbench.sh reads it; LLaVA's
  Evaluation.md downloads it from OpenMMLab), preferred over other TSVs there; or MMBench_DEV_EN.tsv:
  the same columns with base64 images (a short numeric image cell refers to the row with that index).
  Docs keep `llava_question_id` (the TSV index) and `llava_prompt` (the prompt LLaVA's answer file
  records: model_vqa_mmbench.py's question before the instruction).

Protocols:
- `llava`: LLaVA's model_vqa_mmbench.py --single-pred-prompt (haotian-liu/LLaVA c121f04):
  "<hint>\\n" when there is one, the question, "\\nA. ..." per option (A-D up to the first empty
  one), "\\nAnswer with the option's letter from the given choices directly."; greedy, 1024 new
  tokens. Answers are matched to options as the MMBench evaluation
  server (VLMEvalKit) does: rule-based can_infer, then (optional) an LLM judge with MMBench's
  matching prompt.
- `lmms-eval`: mmbench_en_dev: "<hint> <question> There are several options:\\nA. ...", then
  "\\nAnswer with the option's letter from the given choices directly."; greedy, 1024 new tokens,
  stop at "ASSISTANT:"; lmms-eval's older can_infer and its judge prompt, CircularEval.
Without a judge (task options judge_url/judge_model or MMEVAL_JUDGE_URL/MMEVAL_JUDGE_MODEL), an
answer the rules cannot map counts as wrong (the evaluators would ask the LLM, then guess).
Headline: circular accuracy.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.bootstrap import Units
from mmeval.data.sources import check_columns, folder_source, has_parquet, image_ref, read_lmms_lab_with_source
from mmeval.data.writers import png_bytes, write_parquet
from mmeval.errors import DataError
from mmeval.metrics.choices import (
    CIRCULAR_BASE,
    can_infer,
    circular_eval,
    circular_group,
    is_missing,
    mmbench_judge_prompt,
)
from mmeval.metrics.judge import JudgedTask, JudgeError
from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, Prediction, Request, SampleRecord
from tasks._common.prompts import ASSISTANT_STOP, OPTION_LETTER

COLUMNS = ("index", "question", "hint", "A", "B", "answer", "category", "image")
OPTION_LETTERS = ("A", "B", "C", "D", "E")
JUDGE_MODELS = {"llava": "gpt-3.5-turbo-0613", "lmms-eval": "gpt-4o-2024-11-20"}
STYLE = {"llava": "vlmevalkit", "lmms-eval": "lmms-eval"}
LLAVA_TSV = "mmbench_dev_20230712.tsv"  # scripts/v1_5/eval/mmbench.sh's SPLIT


def _text(value: Any) -> str | None:
    return None if is_missing(value) else str(value)


def _llava_question(hint: str | None, question: str, options: dict[str, str]) -> str:
    """model_vqa_mmbench.py's question: "<hint>\\n" when there is one, the question, "\\nA. ..." per
    option (its all_options are A-D)."""
    text = f"{hint}\n{question}" if hint is not None else question
    return text + "".join(f"\n{k}. {v}" for k, v in options.items() if k in "ABCD")


def _question_copy(score: dict[str, Any], slot: int) -> dict[str, Any]:
    return {**score, "index": int(score["index"]) // CIRCULAR_BASE * CIRCULAR_BASE + slot}


class MMBench(JudgedTask, Task):
    name = "mmbench"
    description = "MMBench-EN dev, CircularEval over option rotations"
    protocols = ("llava", "lmms-eval")
    default_protocol = "llava"
    hub_id = ("lmms-lab-encoder/MMBench", "lmms-lab/MMBench")
    hub_config = "en"
    judge_models = JUDGE_MODELS
    split = "dev"

    # LLaVA-1.5's folder (playground/data/eval/mmbench) has the task's own name: no data_folders
    version = "2"  # llava: options A-D only, as model_vqa_mmbench.py

    # ---------------------------------------------------------------- loading
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is not None and not has_parquet(data):
            tsvs = sorted(data.glob("*.tsv")) if data.is_dir() else []
            if tsvs:
                path = self._pick_tsv(tsvs)
                docs = self._load_tsv(path)
                self.data_source = folder_source("official", path.stem, self.split, data, [path], len(docs))
                return docs
            if (data / "answers").is_dir() or (data / "answers_upload").is_dir():  # LLaVA's folder, TSV not added
                raise DataError(f"mmbench: {data} has LLaVA's answers but not {LLAVA_TSV}, which "
                                f"model_vqa_mmbench.py reads from ./playground/data/eval/mmbench/{LLAVA_TSV} "
                                f"(scripts/v1_5/eval/mmbench.sh; download.openmmlab.com/mmclassification/datasets/"
                                f"mmbench/{LLAVA_TSV})")
            raise DataError(f"{data}: no MMBench data (expected lmms-lab parquet files, e.g. "
                            f"en/dev-00000-of-00001.parquet, or the official {LLAVA_TSV} / MMBench_DEV_EN.tsv)")
        rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, COLUMNS, self.split,
                                                           config=self.hub_config)
        docs = [self._doc(row, image_ref(row["image"], f"mmbench {row['index']}")) for row in rows]
        self._check(docs, self.hub_id if data is None else str(data))
        return docs

    @staticmethod
    def _pick_tsv(tsvs: list[Path]) -> Path:
        if len(tsvs) == 1:
            return tsvs[0]
        llava = [p for p in tsvs if p.name == LLAVA_TSV]
        if llava:
            return llava[0]
        for pat in ("dev_en", "dev"):
            hits = [p for p in tsvs if pat in p.name.lower() and "cn" not in p.name.lower()]
            if hits:
                return hits[0]
        raise DataError(f"{tsvs[0].parent}: several .tsv files and none looks like the English dev split "
                        f"({', '.join(p.name for p in tsvs)})")

    def _load_tsv(self, path: Path) -> list[Doc]:
        import pandas as pd

        try:
            df = pd.read_csv(path, sep="\t", dtype=str)
        except Exception as exc:
            raise DataError(f"{path}: cannot read TSV ({type(exc).__name__}: {exc})") from exc
        check_columns(df.columns, ("index", "question", "A", "B", "answer", "category", "image"), str(path))
        rows = df.to_dict("records")
        images = {int(r["index"]): str(r["image"]) for r in rows}
        docs = []
        for r in rows:
            cell = str(r["image"])
            if len(cell) <= 64 and cell.strip().isdigit():  # a reference to another row's image
                ref = int(cell)
                if ref not in images:
                    raise DataError(f"{path}: row {r['index']} refers to the image of row {ref}, which is missing")
                cell = images[ref]
            try:
                data = base64.b64decode(cell, validate=True)
            except Exception as exc:
                raise DataError(f"{path}: row {r['index']}: image is not base64") from exc
            docs.append(self._doc(r, image_ref(data, f"mmbench {r['index']} ({path.name})")))
        self._check(docs, str(path))
        return docs

    @staticmethod
    def _doc(row: Any, image) -> Doc:
        index = int(row["index"])
        options = {}
        for letter in OPTION_LETTERS:
            text = _text(row.get(letter))
            if text is None:
                break
            options[letter] = text
        answer = _text(row.get("answer"))
        if answer is None or answer.strip() not in options:
            raise DataError(f"mmbench {index}: answer '{row.get('answer')}' is not one of its options "
                            f"({', '.join(options)}) (the dev split has answers; the test split does not)")
        l2 = row.get("L2-category", row.get("l2-category"))
        hint, question = _text(row.get("hint")), str(row["question"])
        return Doc(
            doc_id=str(index),
            fields={"index": index, "question": question, "hint": hint,
                    "options": options, "category": str(row["category"]), "l2_category": _text(l2),
                    "source": _text(row.get("source")), "split": _text(row.get("split")),
                    # what LLaVA's answer file records for this row (question_id, prompt), to match its lines
                    "llava_question_id": index, "llava_prompt": _llava_question(hint, question, options)},
            target=answer.strip(),
            images=(image,),
            group_key=str(circular_group(index)),
        )

    @staticmethod
    def _check(docs: list[Doc], source: str) -> None:
        if not docs:
            raise DataError(f"{source}: no MMBench rows")
        seen = set()
        for d in docs:
            if d.doc_id in seen:
                raise DataError(f"{source}: index {d.doc_id} appears twice")
            seen.add(d.doc_id)
        mains = {d.fields["index"] for d in docs if d.fields["index"] < CIRCULAR_BASE}
        orphans = [d.doc_id for d in docs if circular_group(d.fields["index"]) not in mains]
        if orphans:
            raise DataError(f"{source}: rotation row {orphans[0]} has no original question "
                            f"(index {circular_group(int(orphans[0]))})")

    # ---------------------------------------------------------------- requests and scoring
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        f = doc.fields
        if protocol == "llava":
            prompt = _llava_question(f["hint"], f["question"], f["options"]) + OPTION_LETTER
            generation = GenerationConfig(max_new_tokens=1024)
        else:
            options = "There are several options:\n" + "\n".join(f"{k}. {v}" for k, v in f["options"].items())
            prompt = f"{f['hint']} {f['question']} {options}" if f["hint"] is not None else f"{f['question']} {options}"
            prompt = prompt + OPTION_LETTER
            generation = GenerationConfig(max_new_tokens=1024, stop=ASSISTANT_STOP)
        return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key,
                       generation=generation)

    def choices_for(self, doc: Doc, protocol: str) -> dict[str, str]:
        options = doc.fields["options"]
        if protocol == "lmms-eval":  # its evaluator only looks at A-D
            return {k: v for k, v in options.items() if k in "ABCD"}
        return dict(options)

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        self.check_protocol(protocol)
        f = doc.fields
        style = STYLE[protocol]
        text = prediction.text.strip() if protocol == "lmms-eval" else prediction.text
        choices = self.choices_for(doc, protocol)
        pred = can_infer(text, choices, style)
        out: dict[str, Any] = {"index": f["index"], "category": f["category"], "l2_category": f["l2_category"],
                               "judged": 0, "unparsed": 0}
        if not pred:
            judge = self.judge(protocol)
            if judge is not None:
                try:
                    reply = judge.ask(mmbench_judge_prompt(f["question"], choices, text, style),
                                      temperature=0.0, max_tokens=256)
                except JudgeError as exc:
                    out["judge_error"] = str(exc)
                    reply = ""
                out["judged"] = 1
                out["judge_reply"] = reply
                pred = can_infer(reply, choices, style)
        if not pred:
            out["unparsed"] = 1
            pred = ""
        out["pred"] = pred
        out["correct"] = float(pred == doc.target)
        return out

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if not scores:
            return {}
        res = circular_eval(scores)
        if not res["n_questions"]:
            return {}
        metrics = {"circular_accuracy": 100.0 * res["circular"], "vanilla_accuracy": 100.0 * res["vanilla"]}
        for cat, v in res["category"].items():
            metrics[f"category/{cat}"] = 100.0 * v["circular"]
        for cat, v in res["l2_category"].items():
            metrics[f"l2/{cat}"] = 100.0 * v["circular"]
        return metrics

    def headline(self, protocol: str) -> str:
        return "circular_accuracy"

    def bootstrap_units(self, scores: Sequence[dict[str, Any]], protocol: str) -> Units:
        """Questions drawn with all their rotations (CircularEval's unit); each drawn copy becomes
        a question of its own (group number = its draw slot)."""
        return Units(clusters=[circular_group(s["index"]) for s in scores], relabel=_question_copy)

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        return ("circular_accuracy", "vanilla_accuracy")

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        scores = [r.scores if isinstance(r, SampleRecord) else (r.get("scores") or {}) for r in records]
        unparsed = sum(int(s.get("unparsed", 0)) for s in scores)
        judged = sum(int(s.get("judged", 0)) for s in scores)
        notes: dict[str, Any] = {"mmbench_unparsed": unparsed, "mmbench_judged": judged}
        if unparsed and self.judge(protocol) is None:
            notes["note"] = (f"{unparsed} MMBench answers matched no option by the rules and count as wrong; rerun "
                             "`mmeval score` with --task-args judge_url=...,judge_model=... to let an LLM match them")
        return notes

    # ---------------------------------------------------------------- fixtures
    @staticmethod
    def rotations(row: dict[str, Any]) -> list[dict[str, Any]]:
        """The row and its CircularEval rotations as the official TSV has them: rotation k shifts
        the options by k places and gets index k * 1e6 + index."""
        letters = [k for k in OPTION_LETTERS if not is_missing(row.get(k))]
        texts = [row[k] for k in letters]
        answer_text = row[row["answer"]]
        out = []
        for k in range(len(letters)):
            rotated = texts[k:] + texts[:k]
            new = dict(row)
            for letter, text in zip(letters, rotated, strict=True):
                new[letter] = text
            new["answer"] = letters[rotated.index(answer_text)]
            new["index"] = k * CIRCULAR_BASE + int(row["index"])
            out.append(new)
        return out

    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], layout: str = "parquet") -> Path:
        """Write rows (index, question, hint or None, A..D (None when absent), answer, category,
        l2_category, image: PIL) as lmms-lab parquet (`en/`) or the official dev TSV."""
        directory = Path(directory)
        cells = []
        for r in rows:
            cell = {"index": int(r["index"]), "question": r["question"], "hint": r.get("hint"),
                    "A": r.get("A"), "B": r.get("B"), "C": r.get("C"), "D": r.get("D"), "answer": r["answer"],
                    "category": r["category"], "image": r["image"], "source": r.get("source", "synthetic"),
                    "L2-category": r.get("l2_category", "perception"), "split": "dev"}
            cells.append(cell)
        if layout == "parquet":
            write_parquet(directory / "en", "dev", cells)
            return directory
        if layout != "tsv":
            raise ValueError(f"unknown layout {layout!r}")
        import pandas as pd

        first_image: dict[int, int] = {}
        for c in cells:
            c["l2-category"] = c.pop("L2-category")
            img = c["image"]
            encoded = base64.b64encode(img if isinstance(img, bytes) else png_bytes(img)).decode()
            key = hash(encoded)
            if key in first_image:  # rotations point at the original row's image, as the TSV does
                c["image"] = str(first_image[key])
            else:
                first_image[key] = c["index"]
                c["image"] = encoded
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "MMBench_DEV_EN.tsv"
        pd.DataFrame(cells).to_csv(path, sep="\t", index=False)
        return directory
