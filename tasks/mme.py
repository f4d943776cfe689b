"""MME: yes/no questions, two per image, over 10 perception and 4 cognition subtasks. Each subtask
scores acc + acc+ (in percent: accuracy over questions plus the share of images with both
questions right, out of 200); perception and cognition are the sums (out of 2000 and 800).

Sources (split `test`):
- LLaVA-1.5's evaluation bundle (`--data` = its `playground/data/eval`, folder `MME/`; haotian-liu/LLaVA
  at 32cebc38, scripts at c121f04): the question file `llava_mme.jsonl` (question_id = image =
  the path under the benchmark folder, e.g. 'artwork/images/14777.jpg'; text = the prompt; two lines
  per image) and, where mme.sh expects it, MME's `MME_Benchmark_release_version/` (images and the
  question/answer .txt files). Each question is joined to its answer as convert_answer_to_mme.py
  does: key (subtask, '<image stem>.txt', the prompt without the instruction, stripped, plus
  ' Please answer yes or no.', or with two spaces before 'Please' when MME's file has it so).
  Images are read when a model runs: scoring saved answers needs none.
- the lmms-lab parquet layout: hub id `lmms-lab-encoder/MME` (as the installed lmms-eval names it;
  `lmms-lab/MME` holds the same files) or a local folder of those files; columns question_id (the
  image, e.g. 'code_reasoning/0020.png'), image, question, answer, category.
- the official benchmark folder (`MME_Benchmark_release_version/`): one folder per subtask, with
  either `images/` + `questions_answers_YN/<image>.txt` or the images and their .txt files side by
  side; each .txt holds two lines 'question<TAB>answer'. When the eval_tool's
  `Your_Results/<subtask>.txt` files ('image<TAB>question<TAB>answer' lines) are present next to it
  (in `eval_tool/`), questions come from those, in their order.

Prompt: LLaVA's `text` as it is when the data came with llava_mme.jsonl; otherwise the question
without " Please answer yes or no." followed by "\\nAnswer the question using a single word or
phrase.", stripped before the instruction under `llava` (llava_mme.jsonl has no trailing space after
MME's double-spaced questions) and as lmms-eval's mme_doc_to_text leaves it under `lmms-eval`.

Protocols:
- `llava`: greedy, 128 new tokens (model_vqa_loader.py); the answer parsed and scored by the MME
  eval_tool's calculation.py (lower-cased, 'yes'/'no' or found in the first four characters).
- `lmms-eval`: greedy, 16 new tokens; lmms-eval's parse_pred_ans and mme_aggregate_results.
Headline: the perception total (what VL-Mamba's table prints as MME).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.bootstrap import Units
from mmeval.data.provenance import FileDigest, file_sha256
from mmeval.data.sources import folder_source, has_parquet, image_ref, read_lmms_lab_with_source
from mmeval.data.writers import write_jsonl, write_parquet
from mmeval.errors import DataError
from mmeval.metrics.mme import (
    COGNITION,
    PERCEPTION,
    REPLACE_PROMPT,
    SUBTASKS,
    mme_lmms_eval_per_category,
    mme_lmms_eval_total,
    mme_official_scores,
    parse_mme_lmms_eval,
    parse_mme_official,
)
from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, Prediction, Request
from tasks._common.llava import LLAVA_BUNDLE, missing_annotation, read_llava_questions
from tasks._common.prompts import SHORT_ANSWER

COLUMNS = ("question_id", "image", "question", "answer", "category")
IMAGE_EXTS = (".jpg", ".png", ".jpeg", ".JPG", ".PNG", ".JPEG")
LLAVA_QUESTIONS = "llava_mme.jsonl"
BENCHMARK = "MME_Benchmark_release_version"
RELEASE = "MME_Benchmark_release_version"  # the MME release folder (BradyFU's download)
YES_NO = "Please answer yes or no."
# the subtasks whose release folder has images/ + questions_answers_YN/ (the others: files side by side)
IMAGES_SUBFOLDER = frozenset({"artwork", "celebrity", "landmark", "posters", "scene"})


def _mme_question(prompt: str, known: Any) -> str:
    """MME's question for a LLaVA prompt, as convert_answer_to_mme.py finds it: the prompt without
    the instruction, stripped, plus ' Please answer yes or no.', or '  Please answer yes or no.'
    (two spaces) when `known` (the answer table's membership test) lacks the one-space form."""
    question = prompt.replace(SHORT_ANSWER.strip(), "").strip() if SHORT_ANSWER.strip() in prompt else prompt
    if YES_NO not in question:
        question = question + " " + YES_NO
        if not known(question):
            question = question.replace(" " + YES_NO, "  " + YES_NO)
    return question


def _qa_files(root: Path) -> list[tuple[str, Path]]:
    """(subtask, .txt file) of every MME question/answer file, where convert_answer_to_mme.py's
    get_gt looks: <subtask>/questions_answers_YN/ when there is an images/ folder, else <subtask>/."""
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        qa = folder / "questions_answers_YN" if (folder / "images").exists() else folder
        out.extend((folder.name, f) for f in sorted(qa.glob("*.txt")))
    return out


def _answer_table(root: Path) -> dict[tuple[str, str, str], str]:
    """get_gt: (subtask, file name, question) -> answer, from 'question<TAB>answer' lines (each line
    stripped first)."""
    table = {}
    for category, path in _qa_files(root):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.strip().split("\t")
            if len(parts) != 2:
                raise DataError(f"{path}:{n}: expected 'question<TAB>answer'")
            table[category, path.name, parts[0]] = parts[1]
    if not table:
        raise DataError(f"{root}: no MME question/answer files "
                        "(<subtask>/questions_answers_YN/*.txt or <subtask>/*.txt)")
    return table


def _tree_digest(data: Path, root: Path) -> FileDigest:
    """One digest for MME's many question/answer files: sha256 over their sorted relative names and
    digests (listing each of the ~1,200 files would swamp the results file)."""
    files = sorted(path for _, path in _qa_files(root))
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(root)}\t{file_sha256(path)}\n".encode())
    return FileDigest(name=f"{root.relative_to(data) if root.is_relative_to(data) else root}/**/*.txt "
                           f"({len(files)} files)", bytes=sum(p.stat().st_size for p in files), sha256=h.hexdigest())


def _image_copy(score: dict[str, Any], slot: int) -> dict[str, Any]:
    return {**score, "image": f"{score['image']}#{slot}"}


class MME(Task):
    name = "mme"
    description = "MME perception (10 subtasks) and cognition (4 subtasks), yes/no pairs"
    protocols = ("llava", "lmms-eval")
    default_protocol = "llava"
    hub_id = ("lmms-lab-encoder/MME", "lmms-lab/MME")
    split = "test"

    data_folders = ("MME",)  # LLaVA-1.5's playground/data/eval/MME
    version = "2"  # LLaVA's prompts from llava_mme.jsonl; double-spaced questions stripped under llava

    # ---------------------------------------------------------------- loading
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is not None:
            if (data / LLAVA_QUESTIONS).is_file():
                return self._load_llava(data)
            root = self._benchmark_root(data)
            if root is not None:
                results = self._results_dir(data)
                docs = self._load_official(root, results)
                tables = sorted(results.glob("*.txt")) if results is not None else []
                self.data_source = folder_source("official", RELEASE, self.split, data, tables, len(docs))
                self.data_source.files.append(_tree_digest(data, root))
                return docs
            if not has_parquet(data):
                raise DataError(f"{data}: no MME data (expected LLaVA's {LLAVA_QUESTIONS} beside {BENCHMARK}/, "
                                f"lmms-lab parquet files, or the {BENCHMARK} folder with one folder per subtask)")
        rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, COLUMNS, self.split)
        return self._docs_from_rows(rows)

    def _load_llava(self, data: Path) -> list[Doc]:
        qfile = data / LLAVA_QUESTIONS
        rows = read_llava_questions(qfile)
        root = data / BENCHMARK
        if not root.is_dir():
            raise missing_annotation(self.name, qfile, f"{BENCHMARK}/ (MME's images and question/answer files)",
                                     f"./playground/data/eval/MME/{BENCHMARK} (scripts/v1_5/eval/mme.sh)",
                                     "LLaVA's convert_answer_to_mme.py")
        answers = _answer_table(root)
        docs, seen = [], {}
        for n, row in enumerate(rows, 1):
            qid, prompt = str(row["question_id"]), str(row["text"])
            category = qid.split("/")[0]
            if category not in SUBTASKS:
                raise DataError(f"{qfile}:{n}: question_id {qid!r} is not under an MME subtask folder")
            file = qid.split("/")[-1].split(".")[0] + ".txt"
            question = _mme_question(prompt, lambda q, c=category, f=file: (c, f, q) in answers)
            if (category, file, question) not in answers:
                raise DataError(f"{qfile}:{n}: no line {question.replace('  ' + YES_NO, ' ' + YES_NO)!r} (nor with two "
                                f"spaces before '{YES_NO}') in {root / category}/.../{file} "
                                "(convert_answer_to_mme.py's key: subtask, file, question)")
            k = seen.get(qid, 0)
            seen[qid] = k + 1
            doc = self._doc(qid, k, category, question, answers[category, file, question],
                            image_ref(str(root / row["image"]), f"mme {qid}"))
            doc.fields.update(llava_question_id=row["question_id"], llava_prompt=prompt)
            docs.append(doc)
        self.data_source = folder_source("llava-bundle", LLAVA_BUNDLE, self.split, data, [qfile], len(docs))
        self.data_source.files.append(_tree_digest(data, root))
        return docs

    def _docs_from_rows(self, rows) -> list[Doc]:
        docs, seen = [], {}
        for i, row in enumerate(rows):
            category = str(row["category"])
            if category not in SUBTASKS:
                raise DataError(f"mme row {i}: unknown category '{category}' (expected one of {', '.join(SUBTASKS)})")
            qid = str(row["question_id"])
            k = seen.get(qid, 0)
            seen[qid] = k + 1
            docs.append(self._doc(qid, k, category, str(row["question"]), str(row["answer"]),
                                  image_ref(row["image"], f"mme {qid}")))
        return docs

    @staticmethod
    def _doc(image_key: str, k: int, category: str, question: str, answer: str, image) -> Doc:
        gt = answer.strip().lower().replace(".", "")
        if gt not in ("yes", "no"):
            raise DataError(f"mme {image_key}: answer '{answer}' is not yes/no")
        return Doc(doc_id=f"{image_key}#{k}", fields={"question": question, "category": category, "image": image_key},
                   target=gt, images=(image,), group_key=image_key)

    @staticmethod
    def _benchmark_root(data: Path) -> Path | None:
        for cand in (data, data / "MME_Benchmark_release_version", data / "MME_Benchmark"):
            if cand.is_dir() and any((cand / s).is_dir() for s in SUBTASKS):
                return cand
        return None

    @staticmethod
    def _results_dir(data: Path) -> Path | None:
        for cand in (data / "eval_tool" / "Your_Results", data / "Your_Results",
                     data.parent / "eval_tool" / "Your_Results"):
            if cand.is_dir() and any(cand.glob("*.txt")):
                return cand
        return None

    def _load_official(self, root: Path, results: Path | None) -> list[Doc]:
        missing = [s for s in SUBTASKS if not (root / s).is_dir()]
        if missing:
            raise DataError(f"{root}: MME subtask folder(s) missing: {', '.join(missing)}")
        docs = []
        for sub in SUBTASKS:
            folder = root / sub
            img_dir = folder / "images" if (folder / "images").is_dir() else folder
            qa_dir = folder / "questions_answers_YN" if (folder / "questions_answers_YN").is_dir() else folder
            if results is not None:
                table = results / f"{sub}.txt"
                if not table.is_file():
                    raise DataError(f"{results}: missing {sub}.txt (eval_tool layout)")
                items = []
                for n, line in enumerate(table.read_text().splitlines(), 1):
                    if not line.strip():
                        continue
                    parts = line.split("\t")
                    if len(parts) < 3:
                        raise DataError(f"{table}:{n}: expected 'image<TAB>question<TAB>answer'")
                    items.append((parts[0], parts[1], parts[2]))
            else:
                items = []
                txts = sorted(qa_dir.glob("*.txt"))
                if not txts:
                    raise DataError(f"{qa_dir}: no question files (<image>.txt with 'question<TAB>answer' lines)")
                for txt in txts:
                    image_name = next((txt.stem + e for e in IMAGE_EXTS if (img_dir / (txt.stem + e)).is_file()), None)
                    if image_name is None:
                        raise DataError(f"{txt}: no image {txt.stem}.jpg/.png in {img_dir}")
                    for n, line in enumerate(txt.read_text().splitlines(), 1):
                        if not line.strip():
                            continue
                        parts = line.split("\t")
                        if len(parts) != 2:
                            raise DataError(f"{txt}:{n}: expected 'question<TAB>answer'")
                        items.append((image_name, parts[0], parts[1]))
            seen: dict[str, int] = {}
            for image_name, question, answer in items:
                key = f"{sub}/{image_name}"
                k = seen.get(key, 0)
                seen[key] = k + 1
                docs.append(self._doc(key, k, sub, question, answer,
                                      image_ref(str(img_dir / image_name), f"mme {key}")))
        return docs

    # ---------------------------------------------------------------- requests and scoring
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        question = doc.fields["question"].strip().replace(REPLACE_PROMPT, "")  # lmms-eval's mme_doc_to_text
        if protocol == "llava":
            prompt = doc.fields.get("llava_prompt") or question.strip() + SHORT_ANSWER
        else:
            prompt = question + SHORT_ANSWER
        tokens = 128 if protocol == "llava" else 16
        return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key,
                       generation=GenerationConfig(max_new_tokens=tokens))

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        self.check_protocol(protocol)
        parse = parse_mme_official if protocol == "llava" else parse_mme_lmms_eval
        pred = parse(prediction.text)
        return {"category": doc.fields["category"], "image": doc.fields["image"], "pred": pred,
                "correct": float(pred == doc.target)}

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if protocol == "llava":
            return mme_official_scores(scores)
        rows = [{"question_id": s["image"], "category": s["category"], "score": s["correct"]} for s in scores]
        out: dict[str, float] = {}
        for kind, cats in (("perception", PERCEPTION), ("cognition", COGNITION)):
            part = [r for r in rows if r["category"] in cats]
            if part:
                out[kind] = mme_lmms_eval_total(part)
                for cat, value in mme_lmms_eval_per_category(part).items():
                    out[f"{cat}/score"] = value
        return out

    def headline(self, protocol: str) -> str:
        return "perception"

    def bootstrap_units(self, scores: Sequence[dict[str, Any]], protocol: str) -> Units:
        """Images (the question pairs acc+ is counted over) drawn within their subtask, whose
        acc + acc+ the totals sum; a drawn copy of an image is an image of its own."""
        return Units(strata=[s["category"] for s in scores], clusters=[s["image"] for s in scores],
                     relabel=_image_copy)

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        return ("perception", "cognition")

    # ---------------------------------------------------------------- fixtures
    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], layout: str = "parquet") -> Path:
        """Write rows (category, image_name, image: PIL, question, answer 'Yes'/'No'; two rows per
        image) as lmms-lab parquet, the official benchmark folder ('official': images/ +
        questions_answers_YN/ for the celebrity-style subtasks, side by side for the rest), the
        benchmark folder plus eval_tool/Your_Results ('eval_tool'), or LLaVA's MME folder ('llava':
        the benchmark folder beside llava_mme.jsonl, whose lines are json.dumps'd
        {"question_id", "image", "text", "category"} with the question stripped of
        " Please answer yes or no." and then of spaces, plus the short-answer instruction)."""
        directory = Path(directory)
        if layout == "llava":
            MME.write_layout(directory, rows, "official")
            lines = []
            for r in rows:
                path = f"{r['category']}/images/{r['image_name']}" if r["category"] in IMAGES_SUBFOLDER else \
                    f"{r['category']}/{r['image_name']}"
                text = r["question"].replace(REPLACE_PROMPT, "").strip() + SHORT_ANSWER
                lines.append({"question_id": path, "image": path, "text": text, "category": r["category"]})
            write_jsonl(directory / LLAVA_QUESTIONS, lines)
            return directory
        if layout == "parquet":
            cells = [{"question_id": f"{r['category']}/{r['image_name']}", "image": r["image"],
                      "question": r["question"], "answer": r["answer"], "category": r["category"]} for r in rows]
            write_parquet(directory, "test", cells)
            return directory
        if layout not in ("official", "eval_tool"):
            raise ValueError(f"unknown layout {layout!r}")
        root = directory / "MME_Benchmark_release_version"
        by_image: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in rows:
            by_image.setdefault((r["category"], r["image_name"]), []).append(r)
        for sub in SUBTASKS:
            (root / sub).mkdir(parents=True, exist_ok=True)
        results: dict[str, list[str]] = {}
        for (cat, name), items in by_image.items():
            folder = root / cat
            img_dir, qa_dir = (folder, folder)
            if cat in IMAGES_SUBFOLDER:
                img_dir, qa_dir = folder / "images", folder / "questions_answers_YN"
            img_dir.mkdir(parents=True, exist_ok=True)
            qa_dir.mkdir(parents=True, exist_ok=True)
            items[0]["image"].save(img_dir / name)
            stem = Path(name).stem
            (qa_dir / f"{stem}.txt").write_text("".join(f"{r['question']}\t{r['answer']}\n" for r in items))
            results.setdefault(cat, []).extend(f"{name}\t{r['question']}\t{r['answer']}\n" for r in items)
        if layout == "eval_tool":
            res = directory / "eval_tool" / "Your_Results"
            res.mkdir(parents=True, exist_ok=True)
            for sub in SUBTASKS:
                (res / f"{sub}.txt").write_text("".join(results.get(sub, [])))
        return directory
