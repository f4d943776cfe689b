"""ScienceQA-IMG: the test problems of ScienceQA that have an image (2017 of 4241), multiple
choice with lettered options; accuracy overall and by subject, context and grade.

Sources (split `test`):
- the lmms-lab parquet layout: hub id `lmms-lab-encoder/ScienceQA` config `ScienceQA-IMG` (as the
  installed lmms-eval names it; `lmms-lab/ScienceQA` holds the same files), or a local folder of
  those parquet files (a `ScienceQA-IMG/` subfolder is preferred when the whole repo is there);
  columns image, question, choices, answer (index), hint, subject, grade.
- the official files: `problems.json` + `pid_splits.json` + `images/test/<pid>/image.png`.
Rows without an image are dropped, so a ScienceQA-FULL copy gives the same documents.

Prompt (both protocols; LLaVA-1.5's llava_test_CQM-A.json with --single-pred-prompt, which
lmms-eval reproduces): "Context: <hint>\\n" when there is a hint, the question, the options as
"A. ..." lines, then "\\nAnswer with the option's letter from the given choices directly."

Protocols:
- `llava`: greedy, 1024 new tokens (model_vqa_science.py); the letter parsed by
  eval_science_qa.py's rules; accuracy overall and NAT/SOC/LAN, TXT/IMG/NO, G1-6/G7-12 as LLaVA's
  ScienceQA table reports them (here IMG covers every document and NO none).
- `lmms-eval`: greedy, 16 new tokens; sqa_process_results' exact match (the letter, or an "X."
  prefix); mean over documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import has_parquet, image_ref, read_json, read_lmms_lab
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from mmeval.metrics.choices import LETTERS, lettered_options, parse_sqa_llava, sqa_lmms_eval_correct
from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, Prediction, Request
from tasks._common.prompts import OPTION_LETTER
from tasks._common.scoring import AccuracyHeadline

COLUMNS = ("image", "question", "choices", "answer", "hint", "subject", "grade")
SUBJECTS = {"natural science": "nat", "social science": "soc", "language science": "lan"}
CONFIG = "ScienceQA-IMG"


def _has_image(cell: Any) -> bool:
    if cell is None:
        return False
    if isinstance(cell, dict):
        return bool(cell.get("bytes") or cell.get("path"))
    return True


class ScienceQAImg(AccuracyHeadline, Task):
    name = "scienceqa_img"
    description = "ScienceQA-IMG (test, image questions), multiple choice"
    protocols = ("llava", "lmms-eval")
    default_protocol = "llava"
    hub_id = ("lmms-lab-encoder/ScienceQA", "lmms-lab/ScienceQA")
    split = "test"

    # ---------------------------------------------------------------- loading
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is not None and self._official_root(data) is not None:
            return self._load_official(self._official_root(data))
        if data is not None and not has_parquet(data):
            raise DataError(f"{data}: no ScienceQA data (expected lmms-lab parquet files, e.g. "
                            f"{CONFIG}/test-00000-of-00001.parquet, or problems.json + pid_splits.json + images/)")
        rows = read_lmms_lab(self.hub_id, self.name, data, COLUMNS, self.split, config=CONFIG)
        docs = []
        for i, row in enumerate(rows):
            if not _has_image(row["image"]):
                continue
            doc_id = str(row.get("id") or row.get("pid") or i)
            docs.append(self._doc(doc_id, row, image_ref(row["image"], f"scienceqa_img {doc_id}")))
        if not docs:
            raise DataError(f"{data or self.hub_id}: no ScienceQA rows with an image")
        return docs

    @staticmethod
    def _official_root(data: Path) -> Path | None:
        for cand in (data, data / "scienceqa", data / "data" / "scienceqa"):
            if (cand / "problems.json").is_file() or (cand / "pid_splits.json").is_file():
                return cand
        return None

    def _load_official(self, root: Path) -> list[Doc]:
        problems = read_json(root / "problems.json", "ScienceQA problems")
        splits = read_json(root / "pid_splits.json", "ScienceQA split ids")
        if self.split not in splits:
            raise DataError(f"{root / 'pid_splits.json'}: no '{self.split}' split (has: {', '.join(splits)})")
        pids = [str(p) for p in splits[self.split] if problems.get(str(p), {}).get("image")]
        missing = [p for p in splits[self.split] if str(p) not in problems]
        if missing:
            raise DataError(f"{root / 'problems.json'}: problem {missing[0]} of pid_splits.json is missing")
        if not pids:
            raise DataError(f"{root}: no test problem with an image")
        first = pids[0]
        bases = [root / "images" / self.split, root / self.split, root / "images"]
        base = next((b for b in bases if (b / first / problems[first]["image"]).is_file()), None)
        if base is None:
            raise DataError(f"{root}: ScienceQA images not found (expected images/{self.split}/{first}/"
                            f"{problems[first]['image']})")
        docs = []
        for pid in pids:
            prob = problems[pid]
            path = base / pid / prob["image"]
            docs.append(self._doc(pid, prob, image_ref(str(path), f"scienceqa_img {pid}")))
        return docs

    @staticmethod
    def _doc(doc_id: str, row: Any, image) -> Doc:
        choices = [str(c) for c in list(row["choices"])]
        answer = int(row["answer"])
        if not 0 <= answer < len(choices):
            raise DataError(f"scienceqa_img {doc_id}: answer index {answer} outside its {len(choices)} choices")
        hint = row.get("hint") or ""
        return Doc(
            doc_id=doc_id,
            fields={"question": str(row["question"]), "hint": str(hint), "choices": choices,
                    "subject": str(row.get("subject") or ""), "grade": str(row.get("grade") or "")},
            target=LETTERS[answer],
            images=(image,),
            group_key=doc_id,
        )

    # ---------------------------------------------------------------- requests and scoring
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        f = doc.fields
        context = f"Context: {f['hint']}\n" if f["hint"] else ""
        prompt = f"{context}{f['question']}\n{lettered_options(f['choices'])}{OPTION_LETTER}"
        tokens = 1024 if protocol == "llava" else 16
        return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key,
                       generation=GenerationConfig(max_new_tokens=tokens))

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        self.check_protocol(protocol)
        f = doc.fields
        out: dict[str, Any] = {"subject": f["subject"], "grade": f["grade"], "has_text": bool(f["hint"])}
        if protocol == "llava":
            idx = parse_sqa_llava(prediction.text, len(f["choices"]))
            out["pred"] = LETTERS[idx] if idx >= 0 else "FAILED"
            out["correct"] = float(out["pred"] == doc.target)
        else:
            out["correct"] = float(sqa_lmms_eval_correct(prediction.text, doc.target))
        return out

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if not scores:
            return {}

        def acc(part: Sequence[dict[str, Any]]) -> float:
            return 100.0 * sum(s["correct"] for s in part) / len(part)

        metrics = {"accuracy": acc(scores)}
        groups: dict[str, list] = {}
        for s in scores:
            if s["subject"] in SUBJECTS:
                groups.setdefault(SUBJECTS[s["subject"]], []).append(s)
            groups.setdefault("txt" if s["has_text"] else "no_text", []).append(s)
            groups.setdefault("img", []).append(s)  # every document here has an image context
            grade = s["grade"].replace("grade", "")
            if grade.isdigit():
                groups.setdefault("g1_6" if int(grade) <= 6 else "g7_12", []).append(s)
        for key in ("nat", "soc", "lan", "txt", "img", "g1_6", "g7_12"):
            if groups.get(key):
                metrics[key] = acc(groups[key])
        return metrics

    # ---------------------------------------------------------------- fixtures
    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], layout: str = "parquet") -> Path:
        """Write rows (question, choices, answer index, hint, subject, grade, image: PIL or None,
        optional pid) in the lmms-lab parquet layout or the official layout; returns the folder."""
        directory = Path(directory)
        if layout == "parquet":
            cells = [{"image": r.get("image"), "question": r["question"], "choices": list(r["choices"]),
                      "answer": int(r["answer"]), "hint": r.get("hint", ""), "task": r.get("task", "closed choice"),
                      "grade": r.get("grade", "grade1"), "subject": r.get("subject", "natural science"),
                      "topic": r.get("topic", ""), "category": r.get("category", ""), "skill": r.get("skill", ""),
                      "lecture": r.get("lecture", ""), "solution": r.get("solution", "")} for r in rows]
            write_parquet(directory / CONFIG, "test", cells)
            return directory
        if layout != "official":
            raise ValueError(f"unknown layout {layout!r}")
        problems, test = {}, []
        for i, r in enumerate(rows):
            pid = str(r.get("pid", 1000 + i))
            image = r.get("image")
            problems[pid] = {"question": r["question"], "choices": list(r["choices"]), "answer": int(r["answer"]),
                             "hint": r.get("hint", ""), "image": "image.png" if image is not None else None,
                             "task": r.get("task", "closed choice"), "grade": r.get("grade", "grade1"),
                             "subject": r.get("subject", "natural science"), "topic": r.get("topic", ""),
                             "category": r.get("category", ""), "skill": r.get("skill", ""),
                             "lecture": r.get("lecture", ""), "solution": r.get("solution", ""), "split": "test"}
            test.append(pid)
            if image is not None:
                path = directory / "images" / "test" / pid / "image.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path)
        write_json(directory / "problems.json", problems)
        write_json(directory / "pid_splits.json", {"train": [], "val": [], "test": test})
        return directory
