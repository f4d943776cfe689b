"""VQAv2 end to end on tiny datasets in the lmms-lab parquet and official JSON layouts."""

import json

import pytest
from PIL import Image

from mmeval.errors import DataError, UnknownNameError
from mmeval.types import Prediction
from tasks.vqav2 import VQAv2


def img(i):
    return Image.new("RGB", (8, 8), ((40 * i) % 256, 90, 200))


ROWS = [
    {"question_id": 101, "question": "How many dogs are there?", "image_id": 1,
     "answers": ["two"] * 2 + ["2"] * 2 + ["3"] * 6, "answer_type": "number", "image": img(1)},
    {"question_id": 102, "question": "Is it raining?", "image_id": 1,
     "answers": ["yes"] * 10, "answer_type": "yes/no", "image": img(1)},
    {"question_id": 201, "question": "What color is the bus?", "image_id": 2,
     "answers": ["red"] * 2 + ["blue"] * 8, "answer_type": "other", "image": img(2)},
]
PREDS = {"101": "Two", "102": "Yes.", "201": "red"}


def run(task, docs, protocol, preds=PREDS):
    scores = [task.score(d, Prediction(text=preds[d.doc_id]), protocol) for d in docs]
    return scores, task.aggregate(scores, protocol)


@pytest.mark.parametrize("layout", ["parquet", "official"])
def test_val_end_to_end(tmp_path, layout):
    VQAv2.write_layout(tmp_path, ROWS, split="val", layout=layout)
    task = VQAv2(split="val")
    docs = task.load_docs(tmp_path)
    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == (
        ("lmms-lab-parquet", "lmms-lab/VQAv2", "validation", 3) if layout == "parquet" else
        ("official", "vqa-v2.0", "val", 3))
    assert {f.name for f in src.files} == ({"data/validation-00000-of-00001.parquet"} if layout == "parquet" else
                                           {"v2_OpenEnded_mscoco_val2014_questions.json",
                                            "v2_mscoco_val2014_annotations.json"})
    assert [d.doc_id for d in docs] == ["101", "102", "201"]
    assert docs[0].target == ["two", "two", "2", "2", "3", "3", "3", "3", "3", "3"]
    assert docs[0].images[0].load().size == (8, 8)
    assert docs[0].group_key == docs[1].group_key == "1"

    req = task.request(docs[0], "llava")
    assert req.prompt == "How many dogs are there?\nAnswer the question using a single word or phrase."
    assert req.generation.max_new_tokens == 128
    assert task.request(docs[0], "lmms-eval").generation.max_new_tokens == 16

    # llava: "Two" -> "2"; GT disagree -> punctuation only, so "2" matches the two "2"s: 0.6.
    scores, m = run(task, docs, "llava")
    assert [s["correct"] for s in scores] == pytest.approx([0.6, 1.0, 0.6])
    assert m["accuracy"] == pytest.approx(100 * 2.2 / 3)
    assert m["accuracy_yes_no"] == pytest.approx(100.0)
    assert m["accuracy_number"] == pytest.approx(60.0)
    # lmms-eval normalises digits of the ground truth too: "two" and "2" all count -> 4 agree -> 1.0.
    scores, m = run(task, docs, "lmms-eval")
    assert [s["correct"] for s in scores] == pytest.approx([1.0, 1.0, 0.6])
    assert set(m) == {"accuracy"}
    assert task.headline("llava") == "accuracy"
    assert task.finalize([], tmp_path, "llava") == {}


def test_testdev_writes_submission(tmp_path):
    rows = [dict(r, answers=None) for r in ROWS]
    VQAv2.write_layout(tmp_path / "d", rows, split="testdev", layout="official")
    (tmp_path / "d" / "v2_OpenEnded_mscoco_test2015_questions.json").write_text(json.dumps(
        {"questions": [{"question_id": q, "question": "?", "image_id": 1} for q in (101, 102, 201, 999)]}))
    task = VQAv2()  # default split: testdev
    assert task.split == "testdev"
    docs = task.load_docs(tmp_path / "d")
    assert all(d.target is None for d in docs)
    assert "test2015" in docs[0].images[0].path
    scores = [task.score(d, Prediction(text=PREDS[d.doc_id]), "llava") for d in docs]
    assert all(not s["scored"] for s in scores)
    assert task.aggregate(scores, "llava") == {}
    records = [{"doc_id": d.doc_id, "scores": s} for d, s in zip(docs, scores, strict=True)]
    out = tmp_path / "run"
    notes = task.finalize(records, out, "llava")
    sub = json.loads((out / "vqav2_testdev_submission.json").read_text())
    assert sub == [{"question_id": 101, "answer": "2"}, {"question_id": 102, "answer": "yes"},
                   {"question_id": 201, "answer": "red"}, {"question_id": 999, "answer": ""}]
    assert "EvalAI" in notes["note"] and notes["submission"].endswith("vqav2_testdev_submission.json")


def test_testdev_parquet_without_full_list(tmp_path):
    VQAv2.write_layout(tmp_path, [dict(r, answers=None) for r in ROWS], split="testdev", layout="parquet")
    task = VQAv2(split="testdev")
    docs = task.load_docs(tmp_path)
    scores = [task.score(d, Prediction(text="Two dogs!"), "lmms-eval") for d in docs]
    notes = task.finalize([{"scores": s} for s in scores], tmp_path / "run", "lmms-eval")
    sub = json.loads((tmp_path / "run" / "vqav2_testdev_submission.json").read_text())
    assert [e["answer"] for e in sub] == ["2 dogs"] * 3
    assert "test_questions" in notes["note"]


def test_errors(tmp_path):
    with pytest.raises(UnknownNameError):
        VQAv2(split="train")
    with pytest.raises(UnknownNameError):
        VQAv2(foo="1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="v2_OpenEnded_mscoco_val2014_questions.json"):
        VQAv2(split="val").load_docs(tmp_path / "empty")
    VQAv2.write_layout(tmp_path / "noann", ROWS, split="val", layout="official")
    (tmp_path / "noann" / "v2_mscoco_val2014_annotations.json").unlink()
    with pytest.raises(DataError, match="annotations"):
        VQAv2(split="val").load_docs(tmp_path / "noann")
    with pytest.raises(DataError, match="offline"):
        VQAv2(split="val").load_docs(None)
