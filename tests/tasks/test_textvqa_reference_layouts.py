"""TextVQA on LLaVA-1.5's bundle and on vlm-evaluation's files, in their real formats.

The question and answer lines below are copied from haotian-liu/LLaVA 32cebc38
(`playground/data/eval/textvqa/llava_textvqa_val_v051_ocr.jsonl` and `answers/llava-v1.5-13b.jsonl`):
hex image ids as question_id, repeated for the two questions of one image, one line with no OCR
token. The TextVQA_0.5.1_val.json entries are in the official format (integer question_id, lower-case
question, ten answers); their ids and answers are made up for the test.
"""

import json

import pytest

from mmeval.data.sources import task_data_dir
from mmeval.errors import DataError, UnknownNameError
from mmeval.metrics.vqa import m4c_accuracy
from mmeval.types import Prediction
from tasks.textvqa import LLAVA_QUESTION_FILE, TRI_QUESTION_FILE, TextVQA, llava_prompt_question

SUFFIX = "\nAnswer the question using a single word or phrase."
LLAVA_LINES = [
    '{"question_id": "003a8ae2ef43b901", "image": "003a8ae2ef43b901.jpg", "text": "What is the brand of this camera?\\nReference OCR token: DAKOTA, DIGITAL, Single-Use, Camera, Pire, digitat\\nAnswer the question using a single word or phrase.", "category": "default"}',  # noqa: E501
    '{"question_id": "181f00d3ee2b2076", "image": "181f00d3ee2b2076.jpg", "text": "What is the time?\\nReference OCR token: N, u, g0\\nAnswer the question using a single word or phrase.", "category": "default"}',  # noqa: E501
    '{"question_id": "181f00d3ee2b2076", "image": "181f00d3ee2b2076.jpg", "text": "What brand of watch is that?\\nReference OCR token: N, u, g0\\nAnswer the question using a single word or phrase.", "category": "default"}',  # noqa: E501
    '{"question_id": "97b1112b17015396", "image": "97b1112b17015396.jpg", "text": "Whats the lowest number yard line that you can see?\\nReference OCR token: \\nAnswer the question using a single word or phrase.", "category": "default"}',  # noqa: E501
]
ANSWER_LINES = [
    '{"question_id": "003a8ae2ef43b901", "prompt": "What is the brand of this camera?\\nReference OCR token: DAKOTA, DIGITAL, Single-Use, Camera, Pire, digitat\\nAnswer the question using a single word or phrase.", "text": "Dakota digital", "answer_id": "LV7T2WKQdUE2qp6r7wanoA", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": "181f00d3ee2b2076", "prompt": "What is the time?\\nReference OCR token: N, u, g0\\nAnswer the question using a single word or phrase.", "text": "12:15", "answer_id": "FyaLC3MLcAgRvhtv2CmW9v", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": "181f00d3ee2b2076", "prompt": "What brand of watch is that?\\nReference OCR token: N, u, g0\\nAnswer the question using a single word or phrase.", "text": "Audemars piguet", "answer_id": "ZSXV898NcJRkzRcFoQ8odk", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": "97b1112b17015396", "prompt": "Whats the lowest number yard line that you can see?\\nReference OCR token: \\nAnswer the question using a single word or phrase.", "text": "3", "answer_id": "gywbu954pn6szEExSaNTF3", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
]
# Official entries, in LLaVA's order (vlm-evaluation pairs by position); made-up ids and answers.
ENTRIES = [
    {"question": "what is the brand of this camera?", "image_id": "003a8ae2ef43b901", "question_id": 34602,
     "answers": ["dakota digital"] * 2 + ["dakota"] * 8},
    {"question": "what is the time?", "image_id": "181f00d3ee2b2076", "question_id": 34610,
     "answers": ["12:15"] * 3 + ["11:15"] * 7},
    {"question": "what brand of watch is that?", "image_id": "181f00d3ee2b2076", "question_id": 34611,
     "answers": ["rolex"] * 10},
    {"question": "whats the lowest number yard line that you can see?", "image_id": "97b1112b17015396",
     "question_id": 34640, "answers": ["3"] + ["three"] * 9},
]
# eval_textvqa.py's m4c evaluator, by hand (EvalAI processing on both sides, then the mean over the
# ten leave-one-out subsets of min(1, matches/3)):
#   "Dakota digital" -> "dakota digital": 2 matches; 2 subsets lose one (1/3), 8 keep both (2/3) -> 0.6
#   "12:15" -> "12 15" (':' becomes a space on both sides): 3 matches; 3 x 2/3 + 7 x 1 -> 0.9
#   "Audemars piguet": no match -> 0.0;   "3": "three" -> "3", 10 matches -> 1.0
HAND_WORKED = [0.6, 0.9, 0.0, 1.0]


def write_bundle(root, lines=LLAVA_LINES, entries=ENTRIES, name=LLAVA_QUESTION_FILE, annotations=True):
    folder = root / "textvqa"
    folder.mkdir(parents=True)
    (folder / name).write_text("".join(line + "\n" for line in lines))
    if annotations:
        (folder / "TextVQA_0.5.1_val.json").write_text(json.dumps(
            {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1",
             "data": [dict(e, set_name="val") for e in entries]}))
    return folder


def load(root, **options):
    task = TextVQA(**options)
    return task, task.load_docs(task_data_dir(task.name, root, task.data_folders))


def test_llava_bundle_loads_and_joins_as_eval_textvqa(tmp_path):
    write_bundle(tmp_path, entries=list(reversed(ENTRIES)))  # the join does not depend on the order
    task, docs = load(tmp_path)
    assert [d.doc_id for d in docs] == ["34602", "34610", "34611", "34640"]
    assert [d.fields["llava_question_id"] for d in docs] == [
        "003a8ae2ef43b901", "181f00d3ee2b2076", "181f00d3ee2b2076", "97b1112b17015396"]
    assert docs[1].target == ENTRIES[1]["answers"]
    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == ("llava-bundle", "llava-1.5-eval@32cebc38", "val", 4)
    assert [f.name for f in src.files] == ["TextVQA_0.5.1_val.json", LLAVA_QUESTION_FILE]
    # images are where textvqa.sh has them, read only when a model runs
    assert docs[0].images[0].path.endswith("textvqa/train_images/003a8ae2ef43b901.jpg")


def test_prompts_equal_the_references(tmp_path):
    write_bundle(tmp_path)
    _, docs = load(tmp_path)
    camera, yard = docs[0], docs[3]
    llava_texts = [json.loads(line)["text"] for line in LLAVA_LINES]
    task = TextVQA()
    assert [task.request(d, "llava").prompt for d in docs] == llava_texts  # the file's text, as it is
    # Cobra's fork (vlm_eval/models/cobra.py b0a691f), spec D.2's example and its no-token case
    assert task.request(camera, "prismatic").prompt == (
        "Reference OCR token: DAKOTA, DIGITAL, Single-Use, Camera, Pire, digitat\nAnswer the question using a "
        "single word or phrase.\nWhat is the brand of this camera?\nAnswer the question using a single word or phrase.")
    assert task.request(yard, "prismatic").prompt == (
        "Reference OCR token: \nAnswer the question using a single word or phrase.\nWhats the lowest number yard "
        "line that you can see?\nAnswer the question using a single word or phrase.")
    # TRI's vlm_eval/models/prismatic.py: the text, then the instruction again
    assert TextVQA(ocr_order="last").request(camera, "prismatic").prompt == llava_texts[0] + SUFFIX
    # without OCR (both forks): the text cut at the OCR line, one instruction
    for protocol in ("prismatic", "llava"):
        assert TextVQA(ocr="false").request(camera, protocol).prompt == "What is the brand of this camera?" + SUFFIX
    with pytest.raises(UnknownNameError, match="ocr_order=first"):
        TextVQA(ocr_order="first").request(camera, "llava")
    assert TextVQA().finalize([], tmp_path, "prismatic")["ocr_order"].startswith("OCR tokens first")


def test_scoring_llava_answers_equals_eval_textvqa_by_hand(tmp_path):
    write_bundle(tmp_path)
    task, docs = load(tmp_path)
    # a LLaVA answer line belongs to the doc with its question_id and prompt (ids repeat per image)
    by_key = {(d.fields["llava_question_id"], d.fields["llava_prompt"]): d for d in docs}
    scores = []
    for line in ANSWER_LINES:
        a = json.loads(line)
        doc = by_key[(a["question_id"], a["prompt"])]
        scores.append(task.score(doc, Prediction(text=a["text"]), "llava"))
    assert [s["correct"] for s in scores] == pytest.approx(HAND_WORKED)
    assert task.aggregate(scores, "llava")["accuracy"] == pytest.approx(62.5)
    assert m4c_accuracy("12:15", ENTRIES[1]["answers"]) == pytest.approx(0.9)


def test_prompt_processor_forms():
    assert llava_prompt_question(json.loads(LLAVA_LINES[1])["text"]) == "what is the time?"
    assert llava_prompt_question("What is it?" + SUFFIX) == "what is it?"
    assert llava_prompt_question("Reference OCR token: a, b\nWhat is it?" + SUFFIX) == "what is it?"
    assert llava_prompt_question("OCR tokens: a b Question: What is it? Short answer:") == "what is it?"
    with pytest.raises(DataError, match="none of the forms"):
        llava_prompt_question("one line only")


def test_vlm_evaluation_file_pairs_by_position(tmp_path):
    write_bundle(tmp_path, name=TRI_QUESTION_FILE)
    task, docs = load(tmp_path)
    assert [d.doc_id for d in docs] == ["34602", "34610", "34611", "34640"]
    assert (task.data_source.layout, task.data_source.version) == ("vlm-evaluation", "textvqa-0.5.1")
    assert task.request(docs[0], "prismatic").prompt.startswith("Reference OCR token: DAKOTA")


def test_vlm_evaluation_file_checks_counts_and_order(tmp_path):
    write_bundle(tmp_path / "a", lines=LLAVA_LINES[:3], name=TRI_QUESTION_FILE)
    with pytest.raises(DataError, match="has 3 lines but TextVQA_0.5.1_val.json has 4 questions"):
        load(tmp_path / "a")
    write_bundle(tmp_path / "b", entries=list(reversed(ENTRIES)), name=TRI_QUESTION_FILE)
    with pytest.raises(DataError, match=r"textvqa_val_v051_ocr.jsonl:1: image 003a8ae2ef43b901, but question 1"):
        load(tmp_path / "b")


def test_missing_annotation_file_names_where_llava_expects_it(tmp_path):
    write_bundle(tmp_path, annotations=False)
    with pytest.raises(DataError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert "llava_textvqa_val_v051_ocr.jsonl but not TextVQA_0.5.1_val.json" in msg
    assert "./playground/data/eval/textvqa/TextVQA_0.5.1_val.json" in msg and "\n" not in msg


def test_question_missing_from_annotations(tmp_path):
    write_bundle(tmp_path, entries=ENTRIES[:3])
    with pytest.raises(DataError, match=r":4: no TextVQA question 'whats the lowest .*' on image 97b1112b17015396"):
        load(tmp_path)
