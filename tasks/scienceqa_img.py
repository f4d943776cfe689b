"""ScienceQA-IMG: the test problems of ScienceQA that have an image (2017 of 4241), multiple
choice with lettered options; accuracy overall and by subject, context and grade.

Sources (split `test`):
- LLaVA-1.5's evaluation bundle (`--data` = its `playground/data/eval`, folder `scienceqa/`; the
  bundle of haotian-liu/LLaVA at 32cebc38, scripts at c121f04): `llava_test_CQM-A.json` (a JSON list
  of `{"id", "image", "conversations": [human, gpt]}`: the prompt in the human turn, the answer
  letter in the gpt turn), images `images/test/<image>` (sqa.sh's --image-folder). The IMG subset
  is the entries with an `image` (2017 of 4241). When ScienceQA's `problems.json` is there too
  (eval_science_qa.py reads it with `pid_splits.json`), choices, answer, subject and grade come from
  it and must agree with the question file; without it the options are read from the prompt.
  Images are read when a model runs: scoring saved answers needs none.
- the lmms-lab parquet layout: hub id `lmms-lab-encoder/ScienceQA` config `ScienceQA-IMG` (as the
  installed lmms-eval names it; `lmms-lab/ScienceQA` holds the same files), or a local folder of
  those parquet files (a `ScienceQA-IMG/` subfolder is preferred when the whole repo is there);
  columns image, question, choices, answer (index), hint, subject, grade.
- the official files: `problems.json` + `pid_splits.json` + `images/test/<pid>/image.png`.
Rows without an image are dropped, so a ScienceQA-FULL copy gives the same documents.

Prompt (both protocols; LLaVA-1.5's model_vqa_science.py --single-pred-prompt, which lmms-eval
reproduces): LLaVA's human turn as it is, without "<image>" and stripped; from the other layouts
"Context: <hint>\\n" when there is a hint, the question, the options as "A. ..." lines; then
"\\nAnswer with the option's letter from the given choices directly."

Protocols:
- `llava`: greedy, 1024 new tokens (model_vqa_science.py); the letter parsed by
  eval_science_qa.py's rules (LLaVA c121f04, `mmeval.metrics.choices.parse_sqa_llava`); accuracy
  overall (= eval_science_qa's IMG-Accuracy, the papers' SQA-IMG) and NAT/SOC/LAN, TXT/IMG/NO,
  G1-6/G7-12 as LLaVA's ScienceQA table reports them (here IMG covers every document and NO none).
- `lmms-eval`: greedy, 16 new tokens; sqa_process_results' exact match (the letter, or an "X."
  prefix); mean over documents.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.data.sources import INTEGER, folder_source, has_parquet, image_ref, read_json, read_lmms_lab_with_source
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from mmeval.metrics.choices import LETTERS, lettered_options, parse_sqa_llava, sqa_lmms_eval_correct
from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, Prediction, Request
from tasks._common.llava import LLAVA_BUNDLE
from tasks._common.prompts import OPTION_LETTER
from tasks._common.scoring import AccuracyHeadline

COLUMNS = ("image", "question", "choices", "answer", "hint", "subject", "grade")
SUBJECTS = {"natural science": "nat", "social science": "soc", "language science": "lan"}
CONFIG = "ScienceQA-IMG"
LLAVA_QUESTIONS = "llava_test_CQM-A.json"
RELEASE = "scienceqa-lupantech"  # problems.json of lupantech/ScienceQA (its data/scienceqa download)
_NEXT_OPTION = re.compile(r"\n(?=[B-E]\. )")


def _options_in(prompt: str, pid: str, path: Path) -> list[str]:
    """The options of a LLaVA ScienceQA prompt: its trailing "A. ...", "B. ..." blocks (an option
    may span lines, e.g. a letter's closing)."""
    start = prompt.rfind("\nA. ")
    parts = _NEXT_OPTION.split(prompt[start + 1:]) if start >= 0 else []
    if not parts or [p[:3] for p in parts] != [f"{LETTERS[i]}. " for i in range(len(parts))]:
        raise DataError(f"{path}: question {pid} does not end with lettered options (\\nA. ..., \\nB. ...)")
    return [p[3:] for p in parts]


def _letter_index(letter: Any, pid: str, path: Path) -> int:
    if not isinstance(letter, str) or len(letter) != 1 or letter not in LETTERS[:5]:
        raise DataError(f"{path}: question {pid}: the gpt turn {letter!r} is not an option letter A-E")
    return LETTERS.index(letter)


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

    data_folders = ("scienceqa",)  # LLaVA-1.5's playground/data/eval/scienceqa
    version = "2"  # LLaVA's question file as the prompt; eval_science_qa.py's parser as written

    # ---------------------------------------------------------------- loading
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is not None and (data / LLAVA_QUESTIONS).is_file():
            return self._load_llava(data)
        if data is not None and self._official_root(data) is not None:
            return self._load_official(self._official_root(data))
        if data is not None and not has_parquet(data):
            raise DataError(f"{data}: no ScienceQA data (expected LLaVA's {LLAVA_QUESTIONS}, lmms-lab parquet "
                            f"files, e.g. {CONFIG}/test-00000-of-00001.parquet, or problems.json + pid_splits.json "
                            "+ images/)")
        rows, source = read_lmms_lab_with_source(self.hub_id, self.name, data, COLUMNS, self.split, config=CONFIG,
                                                 types={"answer": INTEGER})  # the index of the right choice
        docs = []
        for i, row in enumerate(rows):
            if not _has_image(row["image"]):
                continue
            doc_id = str(row.get("id") or row.get("pid") or i)
            docs.append(self._doc(doc_id, row, image_ref(row["image"], f"scienceqa_img {doc_id}")))
        if not docs:
            raise DataError(f"{data or self.hub_id}: no ScienceQA rows with an image")
        self.data_source = dataclasses.replace(source, questions=len(docs))  # the IMG subset of the rows
        return docs

    def _load_llava(self, root: Path) -> list[Doc]:
        path = root / LLAVA_QUESTIONS
        entries = read_json(path, "LLaVA-1.5 ScienceQA question file")
        if not isinstance(entries, list):
            raise DataError(f"{path}: expected a JSON list of questions (LLaVA's conversation format)")
        files = [path]
        problems = None
        if (root / "problems.json").is_file():  # what eval_science_qa.py scores against
            problems = read_json(root / "problems.json", "ScienceQA problems")
            files.append(root / "problems.json")
        docs = []
        for n, entry in enumerate(entries, 1):
            try:
                pid, turns = str(entry["id"]), entry["conversations"]
                human, letter = turns[0]["value"], turns[1]["value"]
            except (KeyError, IndexError, TypeError) as exc:
                raise DataError(f"{path}: question {n} lacks id or the human/gpt conversation turns") from exc
            if "image" not in entry:
                continue  # a text-only question: not in the IMG subset
            qs = human.replace("<image>", "").strip()  # model_vqa_science.py
            row: dict[str, Any] = {"choices": _options_in(qs, pid, path), "answer": _letter_index(letter, pid, path),
                                   "has_text": qs.startswith("Context: ")}
            if problems is not None:
                prob = problems.get(pid)
                if prob is None:
                    raise DataError(f"{root / 'problems.json'}: no problem {pid} (it is in {LLAVA_QUESTIONS})")
                if int(prob["answer"]) != row["answer"] or len(prob["choices"]) != len(row["choices"]):
                    raise DataError(f"problem {pid}: {LLAVA_QUESTIONS} has answer {letter} of {len(row['choices'])} "
                                    f"options, problems.json answer {LETTERS[int(prob['answer'])]} of "
                                    f"{len(prob['choices'])}: the files are from different releases")
                row.update(choices=prob["choices"], subject=prob.get("subject"), grade=prob.get("grade"),
                           hint=prob.get("hint") or "")
            image = image_ref(str(root / "images" / self.split / entry["image"]), f"scienceqa_img {pid}")
            doc = self._doc(pid, row, image)
            # what LLaVA's answer file holds for this question (question_id, prompt), to match its lines
            doc.fields.update(prompt=qs, llava_question_id=entry["id"], llava_prompt=f"<image>\n{qs}{OPTION_LETTER}")
            docs.append(doc)
        if not docs:
            raise DataError(f"{path}: no question with an image")
        self.data_source = folder_source("llava-bundle", LLAVA_BUNDLE, self.split, root, files, len(docs))
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
        self.data_source = folder_source("official", RELEASE, self.split, root,
                                         [root / "problems.json", root / "pid_splits.json"], len(docs))
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
            fields={"question": str(row.get("question") or ""), "hint": str(hint), "choices": choices,
                    "has_text": bool(row.get("has_text", hint)),
                    "subject": str(row.get("subject") or ""), "grade": str(row.get("grade") or "")},
            target=LETTERS[answer],
            images=(image,),
            group_key=doc_id,
        )

    # ---------------------------------------------------------------- requests and scoring
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        f = doc.fields
        if "prompt" in f:  # LLaVA's question file
            prompt = f["prompt"] + OPTION_LETTER
        else:
            context = f"Context: {f['hint']}\n" if f["hint"] else ""
            prompt = f"{context}{f['question']}\n{lettered_options(f['choices'])}{OPTION_LETTER}"
        tokens = 1024 if protocol == "llava" else 16
        return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key,
                       generation=GenerationConfig(max_new_tokens=tokens))

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        self.check_protocol(protocol)
        f = doc.fields
        out: dict[str, Any] = {"subject": f["subject"], "grade": f["grade"], "has_text": f["has_text"]}
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
        optional pid) in the lmms-lab parquet layout, the official layout, or LLaVA's ('llava':
        llava_test_CQM-A.json as json.dump(indent=2) writes it, images/test/<pid>/image.png; write
        'official' into the same folder for the problems.json beside it); returns the folder."""
        directory = Path(directory)
        if layout == "llava":
            entries = []
            for i, r in enumerate(rows):
                pid = str(r.get("pid", 1000 + i))
                context = f"Context: {r['hint']}\n" if r.get("hint") else ""
                human = f"{context}{r['question']}\n{lettered_options(r['choices'])}"
                entry: dict[str, Any] = {"id": pid}
                if r.get("image") is not None:
                    entry["image"] = f"{pid}/image.png"
                    human = "<image>\n" + human
                    path = directory / "images" / "test" / pid / "image.png"
                    path.parent.mkdir(parents=True, exist_ok=True)
                    r["image"].save(path)
                entry["conversations"] = [{"from": "human", "value": human},
                                          {"from": "gpt", "value": LETTERS[int(r["answer"])]}]
                entries.append(entry)
            directory.mkdir(parents=True, exist_ok=True)
            (directory / LLAVA_QUESTIONS).write_text(json.dumps(entries, indent=2))
            return directory
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
