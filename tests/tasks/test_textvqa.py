"""TextVQA end to end: parquet and official layouts, OCR prompt variants, test-split submission."""

import json

import pytest
from PIL import Image

from mmeval.errors import DataError, UnknownNameError
from mmeval.types import Prediction
from tasks.textvqa import TextVQA

SUFFIX = "\nAnswer the question using a single word or phrase."


def img(i):
    return Image.new("RGB", (8, 8), (10 * i, 100, 50))


ROWS = [
    {"question_id": 34602, "question": "what is the brand of this camera?", "image_id": "003a8ae2ef43b901",
     "answers": ["dakota"] * 2 + ["kodak"] * 8, "ocr_tokens": ["DAKOTA", "DIGITAL", "Single-Use"], "image": img(1)},
    {"question_id": 34603, "question": "what does the small white text spell?", "image_id": "00a6a0b8f2d1b5d6",
     "answers": ["copenhagen"] * 10, "ocr_tokens": ["copenhagen"], "image": img(2)},
]


@pytest.mark.parametrize("layout", ["parquet", "official"])
def test_val_end_to_end(tmp_path, layout):
    TextVQA.write_layout(tmp_path, ROWS, split="val", layout=layout)
    task = TextVQA()
    docs = task.load_docs(tmp_path)
    assert (task.data_source.layout, task.data_source.version, task.data_source.questions) == (
        ("lmms-lab-parquet", "lmms-lab/textvqa", 2) if layout == "parquet" else ("official", "textvqa-0.5.1", 2))
    assert [d.doc_id for d in docs] == ["34602", "34603"]
    assert docs[0].fields["ocr_tokens"] == ["DAKOTA", "DIGITAL", "Single-Use"]
    assert docs[0].images[0].load().size == (8, 8)

    llava = task.request(docs[0], "llava")
    assert llava.prompt == ("What is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL, Single-Use"
                            + SUFFIX)
    assert llava.generation.max_new_tokens == 128
    # prismatic: Cobra's fork moves the OCR line first; TRI's original appends the instruction to
    # LLaVA's text, which already ends with it.
    assert task.request(docs[0], "prismatic").prompt == (
        "Reference OCR token: DAKOTA, DIGITAL, Single-Use" + SUFFIX + "\nWhat is the brand of this camera?" + SUFFIX)
    assert TextVQA(ocr_order="last").request(docs[0], "prismatic").prompt == llava.prompt + SUFFIX
    lm = task.request(docs[0], "lmms-eval")
    assert lm.prompt == "What is the brand of this camera?" + SUFFIX  # lmms-eval's default: no OCR
    assert lm.generation.stop == ("ASSISTANT:",)

    no_ocr = TextVQA(ocr="false")
    assert no_ocr.request(docs[0], "llava").prompt == "What is the brand of this camera?" + SUFFIX
    assert no_ocr.request(docs[0], "prismatic").prompt == "What is the brand of this camera?" + SUFFIX
    assert TextVQA(ocr="true").request(docs[0], "lmms-eval").prompt.count("Reference OCR token: DAKOTA") == 1

    for protocol in ("llava", "prismatic", "lmms-eval"):
        scores = [
            task.score(d, Prediction(text=t), protocol) for d, t in zip(docs, ["Dakota.", "COPENHAGEN"], strict=True)
        ]
        assert [s["correct"] for s in scores] == pytest.approx([0.6, 1.0])
        assert task.aggregate(scores, protocol) == {"accuracy": pytest.approx(80.0)}
    assert task.finalize([], tmp_path, "llava") == {"ocr_tokens_in_prompt": True}


def test_test_split_submission(tmp_path):
    TextVQA.write_layout(tmp_path, [dict(r, answers=None) for r in ROWS], split="test", layout="parquet")
    task = TextVQA(split="test")
    docs = task.load_docs(tmp_path)
    scores = [task.score(d, Prediction(text="Two"), "llava") for d in docs]
    assert task.aggregate(scores, "llava") == {}
    notes = task.finalize([{"scores": s} for s in scores], tmp_path / "run", "llava")
    sub = json.loads((tmp_path / "run" / "textvqa_test_submission.json").read_text())
    assert sub == [{"question_id": 34602, "answer": "2"}, {"question_id": 34603, "answer": "2"}]
    assert "no local score" in notes["note"]


def test_errors(tmp_path):
    with pytest.raises(UnknownNameError):
        TextVQA(ocr="maybe")
    with pytest.raises(UnknownNameError, match="ocr_order"):
        TextVQA(ocr_order="middle")
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="TextVQA_0.5.1_val.json"):
        TextVQA().load_docs(tmp_path / "e")
    TextVQA.write_layout(tmp_path / "d", ROWS, split="val", layout="official")
    (tmp_path / "d" / "TextVQA_Rosetta_OCR_v0.2_val.json").unlink()
    docs = TextVQA().load_docs(tmp_path / "d")
    with pytest.raises(DataError, match="OCR tokens"):
        TextVQA().request(docs[0], "llava")
    assert "Reference" not in TextVQA(ocr="false").request(docs[0], "llava").prompt
