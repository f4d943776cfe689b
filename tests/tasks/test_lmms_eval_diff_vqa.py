"""Differential tests: the `lmms-eval` protocol of vqav2 / textvqa / vizwiz / gqa against lmms-eval's
own task functions (process_results, doc_to_text, the exact_match metric) on the same predictions.
Per-sample scores must agree exactly; prompts must be identical to doc_to_text with the task
yaml's default lmms_eval_specific_kwargs.

The lmms-eval task utils import offline (vqav2/textvqa/vizwiz only import loguru and lmms-eval's
file helpers; gqa's utils import `datasets` but load nothing until gqa_process_docs is called).
"""

import copy
from pathlib import Path

import lmms_eval
import pytest
import yaml
from PIL import Image

from mmeval.types import Prediction

TASKS_DIR = Path(lmms_eval.__file__).parent / "tasks"

PREDICTIONS = [
    "Two", "two dogs.", "Yes!", "yes", "Yes, it is", "1,000", "1000", "the red one", "Don't know", "dont",
    "3.5", "none", "  Red\n", "unanswerable", "Unanswerable.", "t-shirt", "T-Shirt", "a/b", "it's", "What's",
    "10", "ten", "no.", "Copenhagen", "left side", "NIKE", "nike!", "coca cola", "coca-cola", "", "3", "a dog's toy",
]
ANSWER_SETS = [
    ["two"] * 2 + ["2"] * 2 + ["3"] * 6,
    ["yes"] * 10,
    ["yes"] * 7 + ["no"] * 3,
    ["1000", "1,000", "1000", "one thousand", "1000", "1000", "1 000", "1000", "lots", "1000"],
    ["red"] * 4 + ["red one"] * 3 + ["the red one"] * 3,
    ["don't know"] * 5 + ["dont know"] * 5,
    ["t-shirt"] * 3 + ["tshirt"] * 3 + ["shirt"] * 4,
    ["unanswerable"] * 6 + ["Unanswerable"] * 2 + ["red"] * 2,
    ["coca cola"] * 3 + ["coca-cola"] * 4 + ["coke"] * 3,
    ["nike"] * 9 + ["NIKE"],
    ["3.5"] * 3 + ["3"] * 7,
    ["it's"] * 4 + ["it is"] * 6,
]


def _yaml(path: Path) -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!function", lambda loader, node: None)
    return yaml.load(path.read_text(), Loader=Loader)


def _img():
    return Image.new("RGB", (6, 6), (1, 2, 3))


def test_vqav2_lmms_eval_agrees(tmp_path):
    from lmms_eval.tasks.vqav2 import utils as U

    from tasks.vqav2 import VQAv2

    rows = [{"question_id": 1000 + i, "question": f"What is in picture {i}?", "image_id": i, "answers": a,
             "answer_type": "other", "image": _img()} for i, a in enumerate(ANSWER_SETS)]
    VQAv2.write_layout(tmp_path, rows, split="val", layout="parquet")
    task = VQAv2(split="val")
    docs = task.load_docs(tmp_path)
    kwargs = _yaml(TASKS_DIR / "vqav2" / "vqav2_val.yaml")["lmms_eval_specific_kwargs"]["default"]
    ours, theirs = [], []
    for doc, row in zip(docs, rows, strict=True):
        lmms_doc = {"question_id": row["question_id"], "question": row["question"],
                    "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": k + 1}
                                for k, a in enumerate(row["answers"])]}
        assert task.request(doc, "lmms-eval").prompt == U.vqav2_doc_to_text(lmms_doc, kwargs)
        for pred in PREDICTIONS:
            mine = task.score(doc, Prediction(text=pred), "lmms-eval")
            ref = U.vqav2_process_results(copy.deepcopy(lmms_doc), [pred.strip()])
            assert mine["correct"] == ref["exact_match"], (pred, row["answers"])
            assert mine["answer"] == ref["submission"]["answer"]
            ours.append(mine)
            theirs.append(ref["exact_match"])
    assert len({s["correct"] for s in ours}) > 3  # the cases exercise several score levels
    assert task.aggregate(ours, "lmms-eval")["accuracy"] == pytest.approx(100 * sum(theirs) / len(theirs), rel=1e-12)


def test_textvqa_lmms_eval_agrees(tmp_path):
    from lmms_eval.tasks.textvqa import utils as U

    from tasks.textvqa import TextVQA

    rows = [{"question_id": 2000 + i, "question": f"what is written on sign {i}?", "image_id": f"img{i}",
             "answers": a, "ocr_tokens": ["NIKE", "Coca", "cola"], "image": _img()} for i, a in enumerate(ANSWER_SETS)]
    TextVQA.write_layout(tmp_path, rows, split="val", layout="parquet")
    default = _yaml(TASKS_DIR / "textvqa" / "_default_template_textvqa_yaml")["lmms_eval_specific_kwargs"]["default"]
    for ocr in (False, True):
        task = TextVQA(ocr=str(ocr).lower())
        docs = task.load_docs(tmp_path)
        kwargs = dict(default, ocr=ocr)
        for doc, row in zip(docs, rows, strict=True):
            lmms_doc = {"question_id": row["question_id"], "question": row["question"],
                        "answers": list(row["answers"]), "ocr_tokens": row["ocr_tokens"]}
            assert task.request(doc, "lmms-eval").prompt == U.textvqa_doc_to_text(lmms_doc, kwargs)
            if ocr:
                continue
            for pred in PREDICTIONS:
                mine = task.score(doc, Prediction(text=pred), "lmms-eval")
                ref = U.textvqa_process_results(copy.deepcopy(lmms_doc), [pred.strip()])
                assert mine["correct"] == ref["exact_match"], (pred, row["answers"])
                assert mine["answer"] == ref["submission"]["answer"]


def test_vizwiz_lmms_eval_agrees(tmp_path):
    from lmms_eval.tasks.vizwiz_vqa import utils as U

    from tasks.vizwiz import VizWiz

    rows = [{"name": f"VizWiz_val_{i:08d}", "question": f"what is this thing {i}?", "answers": a,
             "answer_type": "other", "image": _img()} for i, a in enumerate(ANSWER_SETS)]
    VizWiz.write_layout(tmp_path, rows, split="val", layout="parquet")
    task = VizWiz()
    docs = task.load_docs(tmp_path)
    kwargs = _yaml(TASKS_DIR / "vizwiz_vqa" / "_default_template_vqa_yaml")["lmms_eval_specific_kwargs"]["default"]
    for doc, row in zip(docs, rows, strict=True):
        lmms_doc = {"question_id": row["name"], "question": row["question"], "answers": list(row["answers"])}
        assert task.request(doc, "lmms-eval").prompt == U.vizwiz_vqa_doc_to_text(lmms_doc, kwargs)
        for pred in PREDICTIONS:
            mine = task.score(doc, Prediction(text=pred), "lmms-eval")
            ref = U.vizwiz_vqa_process_results(copy.deepcopy(lmms_doc), [pred.strip()])
            assert mine["correct"] == ref["exact_match"], (pred, row["answers"])
            assert mine["answer"] == ref["submission"]["answer"]
            assert mine["image"] == ref["submission"]["image"]


def test_gqa_lmms_eval_agrees(tmp_path):
    from lmms_eval.api.metrics import exact_match_hf_evaluate
    from lmms_eval.tasks.gqa import utils as U

    from tasks.gqa import GQA

    golds = ["yes", "no", "red", "t-shirt", "left", "coca cola", "man", "3"]
    rows = [{"id": str(i), "imageId": f"n{i}", "question": f"What is it {i}?", "answer": g, "image": _img()}
            for i, g in enumerate(golds)]
    GQA.write_layout(tmp_path, rows, layout="parquet")
    task = GQA()
    docs = task.load_docs(tmp_path)
    config = _yaml(TASKS_DIR / "gqa" / "gqa.yaml")
    kwargs = config["lmms_eval_specific_kwargs"]["default"]
    metric_kwargs = {k: v for k, v in config["metric_list"][0].items()
                     if k in ("ignore_case", "ignore_punctuation", "ignore_numbers", "regexes_to_ignore")}
    assert config["generation_kwargs"]["max_new_tokens"] == task.request(docs[0], "lmms-eval").generation.max_new_tokens
    hits = 0
    for doc, row in zip(docs, rows, strict=True):
        assert task.request(doc, "lmms-eval").prompt == U.gqa_doc_to_text(row, kwargs)
        for pred in PREDICTIONS + ["Yes.", "T-Shirt!", "Left.", "Coca-Cola"]:
            mine = task.score(doc, Prediction(text=pred), "lmms-eval")["correct"]
            ref = exact_match_hf_evaluate(predictions=[pred.strip()], references=[row["answer"]], **metric_kwargs)
            assert mine == float(ref["exact_match"]), (pred, row["answer"])
            hits += mine
    assert hits >= 8  # several predictions do match
