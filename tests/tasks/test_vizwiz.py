"""VizWiz end to end: parquet and official layouts, unanswerable questions, test submission."""

import json

import pytest
from PIL import Image

from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.vizwiz import VizWiz

SUFFIX = ("\nWhen the provided information is insufficient, respond with 'Unanswerable'."
          "\nAnswer the question using a single word or phrase.")


def img(i):
    return Image.new("RGB", (8, 8), (10 * i, 30, 90))


ROWS = [
    {"name": "VizWiz_val_00000000", "question": "what is this?", "answers": ["soup"] * 3 + ["can"] * 7,
     "answer_type": "other", "image": img(1)},
    {"name": "VizWiz_val_00000001", "question": "What color is this shirt?", "answers": ["unanswerable"] * 10,
     "answer_type": "unanswerable", "image": img(2)},
    {"name": "VizWiz_val_00000002", "question": "Is it on?", "answers": ["yes"] * 10,
     "answer_type": "yes/no", "image": img(3)},
]
TEXTS = ["Soup.", "Unanswerable", "unanswerable"]


@pytest.mark.parametrize("layout", ["parquet", "official"])
def test_val_end_to_end(tmp_path, layout):
    VizWiz.write_layout(tmp_path, ROWS, split="val", layout=layout)
    task = VizWiz()
    docs = task.load_docs(tmp_path)
    assert (task.data_source.layout, task.data_source.version, task.data_source.questions) == (
        ("lmms-lab-parquet", "lmms-lab/VizWiz-VQA", 3) if layout == "parquet" else ("official", "vizwiz-vqa", 3))
    assert [d.doc_id for d in docs] == [r["name"] for r in ROWS]
    assert [d.fields["answerable"] for d in docs] == [1, 0, 1]
    assert docs[2].images[0].load().size == (8, 8)
    assert task.request(docs[0], "llava").prompt == "what is this?" + SUFFIX
    assert task.request(docs[0], "lmms-eval").prompt == "What is this?" + SUFFIX

    preds = [Prediction(text=t) for t in TEXTS]
    for protocol in ("llava", "prismatic", "lmms-eval"):
        scores = [task.score(d, p, protocol) for d, p in zip(docs, preds, strict=True)]
        assert [s["correct"] for s in scores] == pytest.approx([0.9, 1.0, 0.0])
    m = task.aggregate(scores, "lmms-eval")
    assert m == {"accuracy": pytest.approx(100 * 1.9 / 3)}
    scores = [task.score(d, p, "prismatic") for d, p in zip(docs, preds, strict=True)]
    m = task.aggregate(scores, "prismatic")
    assert m["accuracy"] == pytest.approx(100 * 1.9 / 3)
    assert m["accuracy_answerable"] == pytest.approx(45.0)
    assert m["accuracy_unanswerable"] == pytest.approx(100.0)
    # predicted unanswerable on docs 1 and 2, truly unanswerable only doc 1: P = 1/2, R = 1 -> F1 = 2/3.
    assert m["unanswerable_f1"] == pytest.approx(200 / 3)
    assert m["unanswerable_ap"] == pytest.approx(50.0)


def test_test_split_submission(tmp_path):
    rows = [dict(r, name=r["name"].replace("val", "test"), answers=None) for r in ROWS]
    VizWiz.write_layout(tmp_path, rows, split="test", layout="official")
    task = VizWiz(split="test")
    docs = task.load_docs(tmp_path)
    scores = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, TEXTS, strict=True)]
    assert task.aggregate(scores, "llava") == {}
    notes = task.finalize([{"scores": s} for s in scores], tmp_path / "run", "llava")
    sub = json.loads((tmp_path / "run" / "vizwiz_test_submission.json").read_text())
    assert sub[0] == {"image": "VizWiz_test_00000000.jpg", "answer": "soup"}
    assert sub[1]["answer"] == "unanswerable"
    assert "EvalAI" in notes["note"]


def test_missing_files(tmp_path):
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="Annotations/val.json"):
        VizWiz().load_docs(tmp_path / "e")
    VizWiz.write_layout(tmp_path / "d", ROWS, split="val", layout="official")
    import shutil
    shutil.rmtree(tmp_path / "d" / "val")
    with pytest.raises(DataError, match="image folder"):
        VizWiz().load_docs(tmp_path / "d")
