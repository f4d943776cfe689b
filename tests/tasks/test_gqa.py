"""GQA test-dev balanced end to end: lmms-lab's two-config parquet layout and the official JSON."""

import shutil

import pytest
from PIL import Image

from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.gqa import GQA


def img(i):
    return Image.new("RGB", (8, 8), (70 * i % 256, 20, 20))


ROWS = [
    {"id": "201307251", "imageId": "n161313", "question": "Is it overcast?", "answer": "no",
     "structural": "verify", "image": img(1)},
    {"id": "201640614", "imageId": "n161313", "question": "Who is wearing a shirt?", "answer": "man",
     "structural": "query", "image": img(1)},
    {"id": "202225914", "imageId": "n235859", "question": "What is the color of the t-shirt?", "answer": "white",
     "structural": "query", "image": img(2)},
]
TEXTS = ["No.", "The man", "White"]


@pytest.mark.parametrize("layout", ["parquet", "official"])
def test_end_to_end(tmp_path, layout):
    GQA.write_layout(tmp_path, ROWS, layout=layout)
    task = GQA()
    docs = task.load_docs(tmp_path)
    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == (
        ("lmms-lab-parquet", "lmms-lab/GQA", "testdev", 3) if layout == "parquet" else
        ("official", "gqa-questions1.2", "testdev", 3))
    assert len(src.files) == (2 if layout == "parquet" else 1)  # the two configs' parquet files
    assert [d.doc_id for d in docs] == [r["id"] for r in ROWS]
    assert [d.target for d in docs] == ["no", "man", "white"]
    assert docs[0].group_key == docs[1].group_key == "n161313"
    pixel = docs[2].images[0].load().getpixel((0, 0))  # image n235859 (JPEG: near, not exact)
    assert all(abs(a - b) <= 3 for a, b in zip(pixel, (140, 20, 20), strict=True))
    req = task.request(docs[0], "llava")
    assert req.prompt == "Is it overcast?\nAnswer the question using a single word or phrase."
    assert task.request(docs[0], "lmms-eval").generation.max_new_tokens == 16

    def scores(protocol, texts=TEXTS):
        return [task.score(d, Prediction(text=t), protocol) for d, t in zip(docs, texts, strict=True)]

    assert [s["correct"] for s in scores("llava")] == [1.0, 0.0, 1.0]
    m = task.aggregate(scores("llava"), "llava")
    assert m["accuracy"] == pytest.approx(200 / 3)
    assert m["accuracy_binary"] == pytest.approx(100.0)
    assert m["accuracy_open"] == pytest.approx(50.0)
    # "No!" keeps its mark under llava (only trailing periods go) but not under prismatic / lmms-eval.
    texts = ["No!", "man", "white"]
    assert [s["correct"] for s in scores("llava", texts)] == [0.0, 1.0, 1.0]
    assert [s["correct"] for s in scores("prismatic", texts)] == [1.0, 1.0, 1.0]
    assert [s["correct"] for s in scores("lmms-eval", texts)] == [1.0, 1.0, 1.0]
    assert set(task.aggregate(scores("lmms-eval"), "lmms-eval")) == {"accuracy"}


def test_missing_images_config(tmp_path):
    GQA.write_layout(tmp_path, ROWS, layout="parquet")
    shutil.rmtree(tmp_path / "testdev_balanced_images")
    with pytest.raises(DataError, match="testdev_balanced_images"):
        GQA().load_docs(tmp_path)
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match="testdev_balanced_questions.json"):
        GQA().load_docs(tmp_path / "e")
