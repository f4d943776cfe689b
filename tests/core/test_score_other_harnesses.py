"""`mmeval score` on other harnesses' files: LLaVA-1.5 answer files, lmms-eval sample logs and
vlm-evaluation results, each mapped to our documents; the lines it prints for what it ignored,
could not match or did not cover; `--task-args` in run's syntax.

Each file is written in the harness's exact format (tests/core/harness_files.py). The mapping is
checked by scoring the same answers written in mmeval's own format (doc ids given) and by metrics
computed here from the answers directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from mmeval.cli import main
from tests.conftest import pope_rows
from tests.core.harness_files import (
    POPE_LLAVA_OFFSET,
    SHORT_ANSWER,
    llava_answer,
    lmms_eval_line,
    pope_hash,
    write_jsonl,
    write_vlm_results,
)

LLAVA_SQA_SUFFIX = "\nAnswer with the option's letter from the given choices directly."


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def score_json(tmp_path: Path, *args: str) -> tuple[dict, str]:
    out = tmp_path / f"scored{len(list(tmp_path.glob('scored*')))}.json"
    r = invoke("score", *args, "--output", out, "--bootstrap", "0")
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text()), r.output


def eval_pope_label(text: str) -> str:
    """LLaVA's eval_pope.py: the text before the first '.', commas dropped, 'No'/'not'/'no' as a word -> no."""
    words = text.split(".")[0].replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


POPE_ANSWERS = ["Yes", "No", "Yes, there is one.", "no.", "There is not a dog.", "No, it is not", "yes"]


# ---------------------------------------------------------------------------------------- LLaVA
def test_llava_pope_answers_match_our_own_format(pope_data, tmp_path):
    """LLaVA's POPE ids (category offset + POPE's id) name our documents; scored as LLaVA's script
    scores them; a question id beyond the three categories is ignored with one line."""
    rows = pope_rows()
    answers, ours, by_cat = [], [], {}
    for i, row in enumerate(rows):
        text = POPE_ANSWERS[i % len(POPE_ANSWERS)]
        qid = POPE_LLAVA_OFFSET[row["category"]] + int(row["question_id"])
        answers.append(llava_answer(qid, row["question"] + SHORT_ANSWER, text, i))
        ours.append({"doc_id": f"{row['category']}/{row['question_id']}", "prediction": text})
        by_cat.setdefault(row["category"], []).append(eval_pope_label(text) == row["answer"])
    answers.append(llava_answer(30_000_001, "Is there a bus in the image?" + SHORT_ANSWER, "No", 99))
    llava = write_jsonl(tmp_path / "pope" / "answers" / "llava-v1.5-13b.jsonl", answers)
    native = write_jsonl(tmp_path / "ours.jsonl", ours)

    got, output = score_json(tmp_path, "--task", "pope", "--predictions", llava, "--data", pope_data)
    want, _ = score_json(tmp_path, "--task", "pope", "--predictions", native, "--data", pope_data)
    assert got["metrics"] == want["metrics"]
    assert got["metrics"]["accuracy"] == pytest.approx(100 * sum(sum(v) / len(v) for v in by_cat.values()) / 3)
    assert got["coverage"] == {"predictions": 18, "docs": 18}
    assert "pope: 1 of 19 predictions are for questions outside this task's 18 documents (first: 30000001" in output
    assert "ignored" in output and "predictions for" not in output  # full coverage: no coverage line


def test_llava_pope_answers_of_another_release_fail(pope_data, tmp_path):
    """An id that lands on a document asking another question (POPE's later release renumbered the
    random split) is an error naming both, never a silently misjoined score."""
    row = pope_rows()[0]  # random/0
    qid = POPE_LLAVA_OFFSET["random"] + int(row["question_id"])
    answer = llava_answer(qid, "Is there a giraffe in the imange?" + SHORT_ANSWER, "No")
    path = write_jsonl(tmp_path / "a.jsonl", [answer])
    r = invoke("score", "--task", "pope", "--predictions", path, "--data", pope_data)
    assert r.exit_code == 2
    assert "a.jsonl:1: its prompt 'Is there a giraffe" in r.output
    assert "not the question of pope document random/0" in r.output


def test_answers_matching_no_question_name_the_first_id(pope_data, tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [llava_answer(40_000_007, "Q?" + SHORT_ANSWER, "No"),
                                              llava_answer(40_000_008, "Q?" + SHORT_ANSWER, "No")])
    r = invoke("score", "--task", "pope", "--predictions", path, "--data", pope_data)
    assert r.exit_code == 2
    (line,) = [x for x in r.output.splitlines() if x.startswith("error:")]  # one line says it all
    assert "none of the 2 predictions (llava) matches a document of pope" in line
    assert "first unmatched question_id (LLaVA's question file's id): 40000007" in line


def sqa_rows():
    img = Image.new("RGB", (8, 8), (200, 10, 10))
    rows = []
    for i in range(6):
        with_image = i % 3 != 2  # every third problem is text-only, as 2224 of ScienceQA's 4241 test problems
        rows.append({"pid": str(100 + i), "question": f"Which is item {i}?",
                     "choices": ["red", "blue", "green"][: 2 + i % 2],
                     "answer": i % 2, "hint": "A hint." if i % 2 else "", "image": img if with_image else None,
                     "subject": "natural science", "grade": "grade3"})
    return rows


def llava_sqa_prompt(row) -> str:
    context = f"Context: {row['hint']}\n" if row["hint"] else ""
    options = "\n".join(f"{'ABC'[k]}. {c}" for k, c in enumerate(row["choices"]))
    qs = f"{context}{row['question']}\n{options}"
    return ("<image>\n" if row["image"] is not None else "") + qs + LLAVA_SQA_SUFFIX


def test_llava_scienceqa_text_only_questions_are_counted_and_ignored(tmp_path):
    from tasks.scienceqa_img import ScienceQAImg

    rows = sqa_rows()
    data = tmp_path / "data"
    ScienceQAImg.write_layout(data / "scienceqa_img", rows, "official")
    letters = ["A", "B", "B", "A", "A", "B"]  # right for the image problems 0, 1 and 4 (answer index i % 2)
    answers = [llava_answer(r["pid"], llava_sqa_prompt(r), t, i)
               for i, (r, t) in enumerate(zip(rows, letters, strict=True))]
    path = write_jsonl(tmp_path / "llava-v1.5-13b.jsonl", answers)
    got, output = score_json(tmp_path, "--task", "scienceqa_img", "--predictions", path, "--data", data)
    image_rows = [i for i, r in enumerate(rows) if r["image"] is not None]  # 0, 1, 3, 4
    right = [i for i in image_rows if "AB"[rows[i]["answer"]] == letters[i]]
    assert len(right) == 3
    assert got["metrics"]["accuracy"] == pytest.approx(100 * len(right) / len(image_rows))
    assert got["coverage"] == {"predictions": 4, "docs": 4}
    assert "scienceqa_img: 2 of 6 predictions are for questions outside this task's 4 documents (first: '102'" in output


def test_llava_ids_that_only_look_like_our_doc_ids_are_refused(tmp_path):
    """A parquet copy numbers ScienceQA's rows 0, 1, ...; LLaVA's problem ids "0", "1" would land on
    other questions: the prompt check refuses the join."""
    from tasks.scienceqa_img import ScienceQAImg

    rows = [r for r in sqa_rows() if r["image"] is not None]
    data = tmp_path / "data"
    ScienceQAImg.write_layout(data / "scienceqa_img", rows, "parquet")
    answers = [llava_answer(str(len(rows) - 1 - i), llava_sqa_prompt(r), "A", i) for i, r in enumerate(rows)]
    path = write_jsonl(tmp_path / "a.jsonl", answers)
    r = invoke("score", "--task", "scienceqa_img", "--predictions", path, "--data", data)
    assert r.exit_code == 2 and "is not the question of scienceqa_img document 3" in r.output


def textvqa_rows():
    def img(i):
        return Image.new("RGB", (8, 8), (10 * i, 100, 50))

    # two questions on one image: LLaVA's question_id (the image id) is shared
    return [
        {"question_id": 34602, "question": "what is the brand of this camera?", "image_id": "003a8ae2ef43b901",
         "answers": ["dakota"] * 10, "ocr_tokens": ["DAKOTA", "DIGITAL"], "image": img(1)},
        {"question_id": 34603, "question": "what color is the camera?", "image_id": "003a8ae2ef43b901",
         "answers": ["black"] * 10, "ocr_tokens": ["DAKOTA", "DIGITAL"], "image": img(1)},
        {"question_id": 34604, "question": "what does the small white text spell?", "image_id": "00a6a0b8f2d1b5d6",
         "answers": ["copenhagen"] * 10, "ocr_tokens": [], "image": img(2)},
    ]


def llava_textvqa_text(row) -> str:
    q = row["question"]
    return f"{q[:1].upper()}{q[1:]}\nReference OCR token: {', '.join(row['ocr_tokens'])}{SHORT_ANSWER}"


def test_llava_textvqa_answers_join_on_image_id_and_question(tmp_path):
    """LLaVA's TextVQA question_id is the hex image id, shared by an image's questions: joined on
    (image id, question) as eval_textvqa.py does (here 2 of 3 answers are right)."""
    from tasks.textvqa import TextVQA

    rows = textvqa_rows()
    data = tmp_path / "data"
    TextVQA.write_layout(data / "textvqa", rows, split="val", layout="parquet")
    texts = ["Dakota", "white", "Copenhagen"]
    answers = [llava_answer(r["image_id"], llava_textvqa_text(r), t, i)
               for i, (r, t) in enumerate(zip(rows, texts, strict=True))]
    path = write_jsonl(tmp_path / "llava-v1.5-13b.jsonl", list(reversed(answers)))
    got, _ = score_json(tmp_path, "--task", "textvqa", "--predictions", path, "--data", data)
    assert got["metrics"]["accuracy"] == pytest.approx(200 / 3)
    assert got["coverage"] == {"predictions": 3, "docs": 3}


# ------------------------------------------------------------------------------------- lmms-eval
def test_lmms_eval_row_index_maps_to_our_documents(pope_data, tmp_path):
    rows = pope_rows()
    lines, ours = [], []
    for i, row in enumerate(rows):
        text = ["yes", "No.", "no", "Yes"][i % 4]
        lines.append(lmms_eval_line(i, row["answer"], text, {}, row["question"] + SHORT_ANSWER))
        ours.append({"doc_id": f"{row['category']}/{row['question_id']}", "prediction": text})
    log = write_jsonl(tmp_path / "20261202_194403_samples_pope.jsonl", lines[:12], ensure_ascii=False)
    native = write_jsonl(tmp_path / "ours.jsonl", ours[:12])
    got, output = score_json(tmp_path, "--task", "pope", "--predictions", log, "--data", pope_data,
                             "--protocol", "lmms-eval")
    want, _ = score_json(tmp_path, "--task", "pope", "--predictions", native, "--data", pope_data,
                         "--protocol", "lmms-eval")
    assert got["metrics"] == want["metrics"]
    # lmms-eval's exact match: the lower-cased stripped text equals the label
    right = [r["answer"] == line["filtered_resps"].lower().strip()
             for r, line in zip(rows[:12], lines[:12], strict=True)]
    assert got["metrics"]["accuracy"] == pytest.approx(100 * sum(right) / 12)
    assert "warning: pope: predictions for 12 of 18 documents (66.7%)" in output


def test_lmms_eval_log_of_other_data_fails_on_the_target(pope_data, tmp_path):
    rows = pope_rows()
    flipped = {"yes": "no", "no": "yes"}
    lines = [lmms_eval_line(i, flipped[r["answer"]] if i == 4 else r["answer"], "yes", {}, r["question"])
             for i, r in enumerate(rows)]
    log = write_jsonl(tmp_path / "samples.jsonl", lines)
    r = invoke("score", "--task", "pope", "--predictions", log, "--data", pope_data, "--protocol", "lmms-eval")
    assert r.exit_code == 2 and "samples.jsonl:5: lmms-eval's target" in r.output and "for row 4" in r.output


# -------------------------------------------------------------------------------- vlm-evaluation
def test_vlm_evaluation_pope_results_through_their_metadata(pope_data, tmp_path):
    """Hashed ids -> (split, question id) through metadata-full.json; [P(Yes), P(No)] scored by the
    prismatic protocol as vlm-evaluation scores them."""
    rows = pope_rows()
    records, meta, ours = [], {}, []
    for i, row in enumerate(rows):
        h = pope_hash(row["category"], int(row["question_id"]))
        p_yes = [0.9, 0.2, 0.55, 0.4, 0.5, 0.05][i % 6]
        records.append({"question_id": h, "question": row["question"], "yes_no_probabilities": [p_yes, 1 - p_yes],
                        "ground_truth_answer": row["answer"]})
        meta[str(h)] = {"question_id": h, "question": row["question"], "img_path": f"download/pope/val_images/{i}.jpg",
                        "answer": row["answer"], "split": row["category"], "split_question_id": int(row["question_id"])}
        ours.append({"doc_id": f"{row['category']}/{row['question_id']}", "prediction": "",
                     "candidate_probs": {"Yes": p_yes, "No": 1 - p_yes}})
    results = write_vlm_results(tmp_path / "pope" / "pope-full" / "cobra+3b" / "results+rank-0.json", records)
    metadata = tmp_path / "metadata-full.json"
    metadata.write_text(json.dumps(meta))
    got, _ = score_json(tmp_path, "--task", "pope", "--predictions", results, "--metadata", metadata,
                        "--data", pope_data, "--protocol", "prismatic")
    want, _ = score_json(tmp_path, "--task", "pope", "--predictions", write_jsonl(tmp_path / "o.jsonl", ours),
                         "--data", pope_data, "--protocol", "prismatic")
    assert got["metrics"] == want["metrics"]
    # np.argmax over [P(Yes), P(No)]: a tie (0.5) goes to yes
    right = {}
    for i, row in enumerate(rows):
        pred = "yes" if [0.9, 0.2, 0.55, 0.4, 0.5, 0.05][i % 6] >= 0.5 else "no"
        right.setdefault(row["category"], []).append(pred == row["answer"])
    assert got["metrics"]["accuracy"] == pytest.approx(100 * sum(sum(v) / len(v) for v in right.values()) / 3)

    r = invoke("score", "--task", "pope", "--predictions", results, "--data", pope_data, "--protocol", "prismatic")
    assert r.exit_code == 2 and "--metadata" in r.output and "metadata-full.json" in r.output

    # two processes write one file each (results+rank-<r>.json): given together, they are one run
    ranks = [write_vlm_results(results.with_name(f"results+rank-{k}.json"), records[k::2]) for k in (0, 1)]
    both, _ = score_json(tmp_path, "--task", "pope", "--predictions", ranks[0], "--predictions", ranks[1],
                         "--metadata", metadata, "--data", pope_data, "--protocol", "prismatic")
    assert both["metrics"] == want["metrics"] and both["n"] == 18
    r = invoke("score", "--task", "pope", "--predictions", ranks[0], "--predictions", ranks[0], "--metadata", metadata,
               "--data", pope_data, "--protocol", "prismatic")
    assert r.exit_code == 2 and "a second prediction for document" in r.output
    r = invoke("score", "--task", "pope", "--predictions", ranks[0], "--predictions", tmp_path / "o.jsonl",
               "--data", pope_data, "--protocol", "prismatic")
    assert r.exit_code == 2 and "the files are of different formats" in r.output


def test_vlm_evaluation_textvqa_answer_with_or_without_ocr(tmp_path):
    """One results file holds both answers; `--task-args textvqa.ocr=false` (run's syntax) or
    `ocr=false` picks the one without OCR tokens."""
    from tasks.textvqa import TextVQA

    rows = textvqa_rows()
    data = tmp_path / "data"
    TextVQA.write_layout(data / "textvqa", rows, split="val", layout="parquet")
    right = {34602: "Dakota", 34603: "black", 34604: "copenhagen"}
    records = [{"question_id": r["question_id"], "question": llava_textvqa_text(r),
                "model_output_ocr": right[r["question_id"]], "model_output_no_ocr": "unanswerable" if i else "dakota",
                "ground_truth_answer": " or ".join(r["answers"])} for i, r in enumerate(rows)]
    results = write_vlm_results(tmp_path / "results+rank-0.json", records)
    base = ["--task", "textvqa", "--predictions", results, "--data", data, "--protocol", "prismatic"]
    with_ocr, _ = score_json(tmp_path, *base)
    assert with_ocr["metrics"]["accuracy"] == pytest.approx(100.0)
    for args in ("textvqa.ocr=false", "ocr=false"):
        without, _ = score_json(tmp_path, *base, "--task-args", args)
        assert without["metrics"]["accuracy"] == pytest.approx(100 / 3)
        assert without["task_args"] == {"ocr": "false"}


def test_vlm_evaluation_metrics_json_and_vizwiz_positions(tmp_path):
    """vizwiz: vlm-evaluation's question id is the position in val.json; its score.py's metrics.json
    holds the same records under `examples`."""
    from tasks.vizwiz import VizWiz

    rows = [{"name": f"VizWiz_val_{i:08d}", "question": q, "image": Image.new("RGB", (8, 8), (i, 0, 0)),
             "answers": [a] * 10, "answer_type": "other"} for i, (q, a) in
            enumerate([("What is this? ", "soup"), ("What color is this shirt?", "blue"),
                       ("Which can is this?", "beans")])]
    data = tmp_path / "data"
    VizWiz.write_layout(data / "vizwiz", rows, split="val", layout="official")
    outputs = ["soup", "red", "beans"]
    examples = {str(i): {"question_id": i, "question": r["question"], "model_output": outputs[i],
                         "ground_truth_answer": [{"answer": a, "answer_confidence": "yes"} for a in r["answers"]],
                         "answerable": 1} for i, r in enumerate(rows)}
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({"dataset": "vizwiz-full", "n_examples": 3, "model": "cobra+3b",
                                   "experiment_tags": {}, "summary": {"accuracy__VizWiz-Overall": 66.67},
                                   "examples": examples}, indent=2))
    got, _ = score_json(tmp_path, "--task", "vizwiz", "--predictions", metrics, "--data", data,
                        "--protocol", "prismatic")
    assert got["metrics"]["accuracy"] == pytest.approx(200 / 3)

    examples["1"]["question"] = "What is on the table?"  # position 1 asks something else: another val.json
    metrics.write_text(json.dumps({"summary": {}, "examples": examples}))
    r = invoke("score", "--task", "vizwiz", "--predictions", metrics, "--data", data, "--protocol", "prismatic")
    assert r.exit_code == 2 and "entry '1'" in r.output
    assert "not the question of vizwiz document VizWiz_val_00000001" in r.output


# ------------------------------------------------------------------------------------- task-args
def test_task_args_take_runs_syntax(tmp_path):
    """`--task-args vqav2.split=val` (the README's syntax) and `split=val` both reach the task; a
    prefix naming another task is an error naming it."""
    from tasks.vqav2 import VQAv2

    rows = [{"question_id": 1000 + i, "question": f"How many dogs are there {i}?", "image_id": i,
             "image": Image.new("RGB", (8, 8), (i, 9, 9)), "answers": [str(i)] * 10} for i in range(3)]
    data = tmp_path / "data"
    VQAv2.write_layout(data / "vqav2", rows, split="val", layout="parquet")
    preds = write_jsonl(tmp_path / "p.jsonl", [{"doc_id": str(1000 + i), "prediction": "1"} for i in range(3)])
    for args in ("vqav2.split=val", "split=val"):
        got, _ = score_json(tmp_path, "--task", "vqav2", "--predictions", preds, "--data", data, "--task-args", args)
        assert got["metrics"]["accuracy"] == pytest.approx(100 / 3) and got["task_args"] == {"split": "val"}
    # without the option, the split is the protocol's reference: val for prismatic (vlm-evaluation)
    got, _ = score_json(tmp_path, "--task", "vqav2", "--predictions", preds, "--data", data, "--protocol", "prismatic")
    assert got["metrics"]["accuracy"] == pytest.approx(100 / 3) and got["task_args"] == {}
    r = invoke("score", "--task", "vqav2", "--predictions", preds, "--data", data, "--task-args", "textvqa.split=val")
    assert r.exit_code == 2
    assert "textvqa.split=val is an option of task textvqa" in r.output and "scores vqav2" in r.output
