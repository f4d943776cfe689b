"""MM-Vet end to end on tiny datasets (lmms-lab parquet, official mm-vet.json + images): grading
pending without an endpoint, then graded through a fake chat-completions endpoint with every
response cached (a second run sends no request)."""

from __future__ import annotations

import json

import pytest

from tests.fake_judge import fake_endpoint
from PIL import Image

from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.mmvet import MMVet


@pytest.fixture(autouse=True)
def no_env_judge(monkeypatch):
    for k in ("MMEVAL_JUDGE_URL", "MMEVAL_JUDGE_MODEL", "MMEVAL_JUDGE_KEY"):
        monkeypatch.delenv(k, raising=False)




GRADES = {"It says 42.": "1.0", "Maybe 7?": "0.0", "A red and a blue car": "0.5"}


def grade(body):
    """The fake grader reads the prediction from the last table row of the query."""
    last = body["messages"][0]["content"].rstrip().splitlines()[-1]
    pred = [c.strip() for c in last.split("|")][2]
    return GRADES[pred]


def mmvet_rows():
    img = lambda c: Image.new("RGB", (5, 5), c)  # noqa: E731
    return [
        dict(question_id="v1_0", question="What number is written?", answer="42", capability=["ocr", "rec"], image=img((1, 1, 1))),
        dict(question_id="v1_1", question="How much is 3+4?", answer="7", capability=["ocr", "math"], image=img((2, 2, 2))),
        dict(question_id="v1_2", question="What cars are there?", answer="red<AND>blue<AND>green",
             capability=["rec", "spat"], image=img((3, 3, 3))),
    ]


PREDS = ["It says 42.", "Maybe 7?", "A red and a blue car"]


@pytest.mark.parametrize("layout", ["parquet", "official"])
def test_pending_then_graded(tmp_path, layout):
    root = MMVet.write_layout(tmp_path / "mmvet", mmvet_rows(), layout)
    task = MMVet()
    docs = task.load_docs(root)
    assert [d.doc_id for d in docs] == ["v1_0", "v1_1", "v1_2"]
    assert docs[0].fields["capability"] == ["ocr", "rec"] and docs[0].images[0].load().size == (5, 5)
    assert task.request(docs[0], "llava").prompt == "What number is written?"
    assert task.request(docs[0], "lmms-eval").prompt.startswith("First please perform reasoning")
    assert task.request(docs[0], "llava").generation.max_new_tokens == 1024

    # no endpoint: predictions are kept, grading is pending
    pending = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, PREDS)]
    assert all(s["pending"] == 1 and s["correct"] == 0 for s in pending)
    assert task.aggregate(pending, "llava") == {}
    records = [{"doc_id": d.doc_id, "prediction": t, "scores": s} for d, t, s in zip(docs, PREDS, pending)]
    notes = task.finalize(records, tmp_path / "run", "llava")
    assert "pending for 3 of 3" in notes["note"]
    assert json.loads((tmp_path / "run" / "mmvet_results.json").read_text())["v1_1"] == "Maybe 7?"

    # later, with an endpoint: graded, and a rerun is free
    cache = tmp_path / "cache"
    with fake_endpoint(grade) as (url, seen):
        graded = MMVet(judge_url=url, judge_model="fake-grader", judge_cache=str(cache))
        scores = [graded.score(d, Prediction(text=t), "llava") for d, t in zip(docs, PREDS)]
        assert len(seen) == 3
        assert seen[2]["model"] == "fake-grader" and seen[2]["max_tokens"] == 3
        assert seen[2]["messages"][0]["content"].endswith(
            "What cars are there? | red <AND> blue <AND> green | A red and a blue car | ")
        assert [s["score"] for s in scores] == [1.0, 0.0, 0.5] and scores[2]["correct"] == 0.5
        m = graded.aggregate(scores, "llava")
        assert m["total"] == pytest.approx(50.0)
        assert m["ocr"] == pytest.approx(50.0) and m["rec"] == pytest.approx(75.0)
        assert m["math"] == 0.0 and m["spat"] == 50.0 and "know" not in m
        assert graded.headline("llava") == "total"
        rerun = MMVet(judge_url=url, judge_model="fake-grader", judge_cache=str(cache))
        assert [rerun.score(d, Prediction(text=t), "llava") for d, t in zip(docs, PREDS)] == scores
        assert len(seen) == 3  # nothing new was asked


def test_env_endpoint_and_judge_failure(tmp_path, monkeypatch):
    root = MMVet.write_layout(tmp_path / "mmvet", mmvet_rows(), "parquet")
    docs = MMVet().load_docs(root)
    with fake_endpoint(grade) as (url, seen):
        monkeypatch.setenv("MMEVAL_JUDGE_URL", url)
        monkeypatch.setenv("MMEVAL_CACHE", str(tmp_path / "c"))
        s = MMVet().score(docs[0], Prediction(text=PREDS[0]), "lmms-eval")
        assert s["score"] == 1.0 and seen[0]["model"] == "gpt-4o-2024-11-20" and seen[0]["max_tokens"] == 128
        assert list((tmp_path / "c" / "judge").rglob("*.json"))
    # an endpoint that does not answer leaves the sample pending instead of failing the run
    monkeypatch.setenv("MMEVAL_JUDGE_URL", "http://127.0.0.1:9/v1")
    task = MMVet()
    task.judge("llava").retries = 0
    s = task.score(docs[1], Prediction(text=PREDS[1]), "llava")
    assert s["pending"] == 1 and "judge_error" in s


def test_bad_data(tmp_path):
    root = MMVet.write_layout(tmp_path / "mmvet", mmvet_rows(), "official")
    meta = json.loads((root / "mm-vet.json").read_text())
    meta["v1_0"]["capability"] = ["vision"]
    (root / "mm-vet.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="capability"):
        MMVet().load_docs(root)
    (root / "images" / "v1_1.png").unlink()
    meta["v1_0"]["capability"] = ["ocr"]
    (root / "mm-vet.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="v1_1.png: missing"):
        MMVet().load_docs(root)
