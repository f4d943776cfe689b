"""MM-Vet: open-ended questions graded by an LLM against the ground truth (score 0.0-1.0 per
sample); the total and per-capability scores (rec, ocr, know, gen, spat, math) in percent.

Sources (split `test`):
- LLaVA-1.5's evaluation bundle (`--data` = its `playground/data/eval`, folder `mm-vet/` as
  scripts/v1_5/eval/mmvet.sh names it, or `mmvet/` as Evaluation.md does; haotian-liu/LLaVA at
  32cebc38): the question file `llava-mm-vet.jsonl` (int question_id, image, text = the prompt as it
  is) with MM-Vet's `mm-vet.json` (answers and capabilities, from MM-Vet's mm-vet.zip) beside it or
  in `mm-vet/`, joined as convert_mmvet_for_eval.py keys the answers: question_id 12 is "v1_12";
  images in `images/` (mmvet.sh's --image-folder). Images are read when a model runs.
- the lmms-lab parquet layout: hub id `lmms-lab-encoder/MMVet` (as the installed lmms-eval names
  it; `lmms-lab/MMVet` holds the same files) or a local folder of those files; columns
  question_id, image, question, answer, capability (comma-separated or a list).
- the official files: `mm-vet.json` ({"v1_0": {"imagename", "capability", "question", "answer"}})
  and the `images/` folder.

Grading needs an OpenAI-compatible chat-completions endpoint: task options
`--task-args judge_url=...,judge_model=...[,judge_key=...,judge_cache=DIR,judge_timeout=S,
judge_deadline=S,judge_max_failures=N]` or the environment (MMEVAL_JUDGE_URL, MMEVAL_JUDGE_MODEL,
MMEVAL_JUDGE_KEY or OPENAI_API_KEY, MMEVAL_CACHE). Every response is cached on disk, keyed by the
request, so regrading costs nothing. `score` never calls the judge: each sample scores
{"pending": 1, "correct": 0} and is saved with its prediction; `grade` (called by the runner once
every answer is on disk, and by `mmeval score`) grades the pending ones within the judge's limits
(`mmeval.metrics.judge.grade_pending`). What it could not grade (no endpoint, or the judge stopped
answering) stays pending, aggregate gives no metrics, and `mmeval score` grades later.

Protocols:
- `llava`: the question as the prompt, no suffix (llava-mm-vet.jsonl's text as it is when the data
  came with it), greedy, 1024 new tokens
  (model_vqa.py); graded as the official MM-Vet evaluator does (its prompt and few-shot table,
  max_tokens 3, temperature 0, digit-hint retries; default judge model gpt-4-0613, one run).
  finalize() also writes the official results file (mmvet_results.json: {"v1_0": answer}) that
  LLaVA's convert_mmvet_for_eval.py produces, for the official grader.
- `lmms-eval`: its pre_prompt "First please perform reasoning, and think step by step to provide
  best answer to the following question: \\n\\n", greedy, 1024 new tokens; graded with lmms-eval's
  copy of the prompt (max_tokens 128; default judge model gpt-4o-2024-11-20).
Headline: total.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmeval.data.containment import join_inside, outside_error
from mmeval.data.external_ids import Mapper, by_doc_id, has_llava_ids
from mmeval.data.predictions import LLAVA
from mmeval.data.sources import folder_source, has_parquet, image_ref, read_json, read_lmms_lab_with_source
from mmeval.data.writers import write_json, write_parquet
from mmeval.errors import DataError
from mmeval.metrics.judge import (
    MMVET_CAPABILITIES,
    JudgeClient,
    JudgedTask,
    grade_mmvet,
    grade_pending,
    mmvet_aggregate,
)
from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, ImageRef, Prediction, Request, SampleRecord
from tasks._common.llava import LLAVA_BUNDLE, missing_annotation, read_llava_questions
from tasks._common.outputs import record_field, record_scores, write_result_file

COLUMNS = ("question_id", "image", "question", "answer", "capability")
LMMS_EVAL_PRE_PROMPT = ("First please perform reasoning, and think step by step to provide best answer to the "
                        "following question: \n\n")
JUDGE_MODELS = {"llava": "gpt-4-0613", "lmms-eval": "gpt-4o-2024-11-20"}
STYLE = {"llava": "official", "lmms-eval": "lmms-eval"}
LLAVA_QUESTIONS = "llava-mm-vet.jsonl"
RELEASE = "mm-vet@v1"  # yuweihao/MM-Vet release v1 (mm-vet.zip)


def _capabilities(value: Any) -> list[str]:
    if isinstance(value, str):
        caps = [c.strip() for c in value.split(",") if c.strip()]
    else:
        caps = [str(c).strip() for c in (value or [])]
    unknown = [c for c in caps if c not in MMVET_CAPABILITIES]
    if unknown or not caps:
        raise DataError(f"mmvet: capability {value!r} (expected some of {', '.join(MMVET_CAPABILITIES)})")
    return caps


class MMVet(JudgedTask, Task):
    name = "mmvet"
    description = "MM-Vet, open-ended answers graded by an LLM judge"
    protocols = ("llava", "lmms-eval")
    default_protocol = "llava"
    hub_id = ("lmms-lab-encoder/MMVet", "lmms-lab/MMVet")
    judge_models = JUDGE_MODELS
    split = "test"

    data_folders = ("mm-vet",)  # LLaVA-1.5's playground/data/eval/mm-vet (its Evaluation.md: mmvet, our name)

    # ---------------------------------------------------------------- loading
    def load_docs(self, data: Path | None) -> list[Doc]:
        if data is not None:
            official = next((r for r in (data, data / "mm-vet") if (r / "mm-vet.json").is_file()), None)
            if (data / LLAVA_QUESTIONS).is_file():
                return self._load_llava(data, official)
            if official is not None:
                docs = self._load_official(official)
                self.data_source = folder_source("official", RELEASE, self.split, data, [official / "mm-vet.json"],
                                                 len(docs))
                return docs
            if not has_parquet(data):
                raise DataError(f"{data}: no MM-Vet data (expected LLaVA's {LLAVA_QUESTIONS} + mm-vet.json, lmms-lab "
                                "parquet files, or mm-vet.json + images/)")
        rows, self.data_source = read_lmms_lab_with_source(self.hub_id, self.name, data, COLUMNS, self.split)
        return [self._doc(str(row["question_id"]), row, image_ref(row["image"], f"mmvet {row['question_id']}", data))
                for row in rows]

    def _load_official(self, root: Path) -> list[Doc]:
        meta = self._meta(root)
        images = root / "images"
        if not images.is_dir():
            raise DataError(f"{root}: missing images/ folder (MM-Vet images next to mm-vet.json)")
        docs = []
        for qid, item in meta.items():
            path = join_inside(images, str(item["imagename"]))
            if path is None:  # a name that climbs out of images/: that sample's error
                source = f"mmvet {qid}"
                docs.append(self._doc(qid, item, ImageRef.failed(
                    source, outside_error(source, str(images / str(item["imagename"])), [images]))))
                continue
            if not path.is_file():
                raise DataError(f"{path}: missing (image of MM-Vet {qid})")
            docs.append(self._doc(qid, item, image_ref(str(path), f"mmvet {qid}")))
        return docs

    def _load_llava(self, data: Path, official: Path | None) -> list[Doc]:
        qfile = data / LLAVA_QUESTIONS
        rows = read_llava_questions(qfile)
        if official is None:
            raise missing_annotation(self.name, qfile, "mm-vet.json (MM-Vet's answers and capabilities)",
                                     "./playground/data/eval/mm-vet/mm-vet.json beside images/ (mm-vet.zip of "
                                     "github.com/yuweihao/MM-Vet/releases/download/v1; scripts/v1_5/eval/mmvet.sh)",
                                     "MM-Vet's grader (mm-vet_evaluator.py)")
        meta = self._meta(official)
        images = data / "images" if (data / "images").is_dir() else official / "images"
        docs = []
        for n, row in enumerate(rows, 1):
            qid = f"v1_{row['question_id']}"  # convert_mmvet_for_eval.py's key
            item = meta.get(qid)
            if item is None:
                raise DataError(f"{qfile}:{n}: question_id {row['question_id']} has no {qid} in "
                                f"{official / 'mm-vet.json'}")
            if item["imagename"] != row["image"]:
                raise DataError(f"{qfile}:{n}: image {row['image']} but {official / 'mm-vet.json'} gives {qid} the "
                                f"image {item['imagename']}: the files are from different releases")
            doc = self._doc(qid, item, image_ref(str(images / row["image"]), f"mmvet {qid}"))
            doc.fields.update(llava_question_id=row["question_id"], llava_prompt=str(row["text"]))
            docs.append(doc)
        self.data_source = folder_source("llava-bundle", LLAVA_BUNDLE, self.split, data,
                                         [qfile, official / "mm-vet.json"], len(docs))
        return docs

    @staticmethod
    def _meta(root: Path) -> dict[str, Any]:
        meta = read_json(root / "mm-vet.json", "MM-Vet questions")
        for qid, item in meta.items():
            for key in ("imagename", "question", "answer", "capability"):
                if key not in item:
                    raise DataError(f"{root / 'mm-vet.json'}: {qid} has no '{key}'")
        return meta

    @staticmethod
    def _doc(qid: str, row: Any, image) -> Doc:
        return Doc(doc_id=qid,
                   fields={"question": str(row["question"]), "capability": _capabilities(row["capability"])},
                   target=str(row["answer"]), images=(image,), group_key=qid)

    def doc_id_map(self, docs: Sequence[Doc], source: str) -> Mapper:
        """LLaVA's llava-mm-vet.jsonl numbers the questions 0..217; MM-Vet's own ids are "v1_<n>"
        (convert_mmvet_for_eval.py writes them so)."""
        if source == LLAVA and not has_llava_ids(docs):
            return by_doc_id(self.name, docs, text_field="prompt", key=lambda qid: f"v1_{qid}")
        return super().doc_id_map(docs, source)

    # ---------------------------------------------------------------- requests and scoring
    def request(self, doc: Doc, protocol: str) -> Request:
        self.check_protocol(protocol)
        question = doc.fields["question"]
        prompt = doc.fields.get("llava_prompt", question) if protocol == "llava" else LMMS_EVAL_PRE_PROMPT + question
        return Request(doc_id=doc.doc_id, prompt=prompt, images=doc.images, group_key=doc.group_key,
                       generation=GenerationConfig(max_new_tokens=1024))

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        """Pending until `grade`: the answer is saved before any judge is asked."""
        self.check_protocol(protocol)
        return {"capability": list(doc.fields["capability"]), "pending": 1, "correct": 0.0}

    def grade(self, records: Sequence[SampleRecord], docs: Mapping[str, Doc], protocol: str,
              log: Callable[[str], None]) -> list[SampleRecord]:
        """The pending records graded by the judge (none configured: returned as they are)."""
        self.check_protocol(protocol)
        judge = self.judge(protocol)
        if judge is None:
            return list(records)
        style = STYLE[protocol]

        def grade_one(client: JudgeClient, rec: SampleRecord) -> dict[str, Any]:
            doc = docs[rec.doc_id]
            score, content = grade_mmvet(client, doc.fields["question"], doc.target, rec.prediction, style)
            return {"pending": 0, "score": score, "correct": score, "judge": content, "judge_model": client.model}

        return grade_pending(records, grade_one, judge, self.name, log)

    def aggregate(self, scores: Sequence[dict[str, Any]], protocol: str) -> dict[str, float]:
        self.check_protocol(protocol)
        if not scores or any(s.get("pending") for s in scores):
            return {}  # grading pending: finalize() says so, `mmeval score` grades later
        return mmvet_aggregate(scores)

    def headline(self, protocol: str) -> str:
        return "total"

    def ci_metrics(self, protocol: str) -> tuple[str, ...]:
        return ("total",)

    def finalize(self, records: Sequence[Any], out_dir: Path, protocol: str) -> dict[str, Any]:
        answers = {str(record_field(r, "doc_id")): record_field(r, "prediction") or "" for r in records}
        notes: dict[str, Any] = {}
        if out_dir is not None:
            out = write_result_file(Path(out_dir) / "mmvet_results.json", answers, indent=1)
            notes["mmvet_results_file"] = str(out)
        pending = sum(1 for r in records if record_scores(r).get("pending"))
        if pending:
            why = "no judge endpoint is set" if self.judge(protocol) is None else "the judge did not grade them"
            notes["note"] = (f"MM-Vet grading pending for {pending} of {len(records)} samples: {why}; run "
                             "`mmeval score` with --task-args judge_url=...,judge_model=... "
                             "(or MMEVAL_JUDGE_URL / MMEVAL_JUDGE_MODEL) to grade them")
        return notes

    # ---------------------------------------------------------------- fixtures
    @staticmethod
    def write_layout(directory: Path, rows: Sequence[dict[str, Any]], layout: str = "parquet") -> Path:
        """Write rows (question_id, question, answer, capability list, image: PIL) as lmms-lab parquet
        or the official mm-vet.json + images/."""
        directory = Path(directory)
        if layout == "parquet":
            cells = [{"question_id": r["question_id"], "image": r["image"], "question": r["question"],
                      "answer": r["answer"], "image_source": f"{r['question_id']}.png",
                      "capability": ",".join(r["capability"])} for r in rows]
            write_parquet(directory, "test", cells)
            return directory
        if layout != "official":
            raise ValueError(f"unknown layout {layout!r}")
        meta = {}
        (directory / "images").mkdir(parents=True, exist_ok=True)
        for r in rows:
            name = f"{r['question_id']}.png"
            r["image"].save(directory / "images" / name)
            meta[r["question_id"]] = {"imagename": name, "capability": list(r["capability"]),
                                      "question": r["question"], "answer": r["answer"]}
        write_json(directory / "mm-vet.json", meta)
        return directory
