"""MM-Vet end to end on tiny datasets (lmms-lab parquet, official mm-vet.json + images): `score`
leaves every sample pending (the answer is saved before any judge is asked); `grade` grades them
through a fake chat-completions endpoint with every response cached (a second pass sends no
request), and leaves them pending without an endpoint."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mmeval.errors import DataError
from mmeval.scoring import sample_record
from mmeval.types import Prediction
from tasks.mmvet import MMVet
from tests.fake_judge import fake_endpoint


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
    rows = [("What number is written?", "42", ["ocr", "rec"]),
            ("How much is 3+4?", "7", ["ocr", "math"]),
            ("What cars are there?", "red<AND>blue<AND>green", ["rec", "spat"])]
    return [dict(question_id=f"v1_{i}", question=q, answer=a, capability=cap,
                 image=Image.new("RGB", (5, 5), (i + 1,) * 3)) for i, (q, a, cap) in enumerate(rows)]


PREDS = ["It says 42.", "Maybe 7?", "A red and a blue car"]


def scored(task, docs, protocol="llava"):
    """Sample records as the runner writes them (PREDS in order, one per doc)."""
    return [sample_record(task, protocol, d, task.request(d, protocol), Prediction(text=t))
            for d, t in zip(docs, PREDS[:len(docs)], strict=True)]


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
    by_id = {d.doc_id: d for d in docs}
    lines = []
    records = task.grade(scored(task, docs), by_id, "llava", lines.append)
    pending = [r.scores for r in records]
    assert all(s["pending"] == 1 and s["correct"] == 0 for s in pending) and lines == []
    assert task.aggregate(pending, "llava") == {}
    notes = task.finalize(records, tmp_path / "run", "llava")
    assert "pending for 3 of 3 samples: no judge endpoint is set" in notes["note"]
    assert json.loads((tmp_path / "run" / "mmvet_results.json").read_text())["v1_1"] == "Maybe 7?"

    # later, with an endpoint: score still asks nothing; grade does, and a second pass is free
    cache = tmp_path / "cache"
    with fake_endpoint(grade) as (url, seen):
        graded = MMVet(judge_url=url, judge_model="fake-grader", judge_cache=str(cache))
        records = scored(graded, docs)
        assert len(seen) == 0 and all(r.scores["pending"] == 1 for r in records)
        records = graded.grade(records, by_id, "llava", lines.append)
        scores = [r.scores for r in records]
        assert len(seen) == 3 and lines == ["mmvet: graded 3 samples with judge fake-grader (3 requests sent, the rest "
                                            "from the cache)"]
        assert seen[2]["model"] == "fake-grader" and seen[2]["max_tokens"] == 3
        assert seen[2]["messages"][0]["content"].endswith(
            "What cars are there? | red <AND> blue <AND> green | A red and a blue car | ")
        assert [s["score"] for s in scores] == [1.0, 0.0, 0.5] and scores[2]["correct"] == 0.5
        assert all(s["pending"] == 0 and s["judge_model"] == "fake-grader" for s in scores)
        m = graded.aggregate(scores, "llava")
        assert m["total"] == pytest.approx(50.0)
        assert m["ocr"] == pytest.approx(50.0) and m["rec"] == pytest.approx(75.0)
        assert m["math"] == 0.0 and m["spat"] == 50.0 and "know" not in m
        assert graded.headline("llava") == "total"
        assert "note" not in graded.finalize(records, tmp_path / "run", "llava")
        rerun = MMVet(judge_url=url, judge_model="fake-grader", judge_cache=str(cache))
        assert [r.scores for r in rerun.grade(scored(rerun, docs), by_id, "llava", lines.append)] == scores
        assert len(seen) == 3  # nothing new was asked
        assert graded.grade(records, by_id, "llava", lines.append) == records  # nothing pending: unchanged


def test_env_endpoint_and_judge_failure(tmp_path, monkeypatch):
    root = MMVet.write_layout(tmp_path / "mmvet", mmvet_rows(), "parquet")
    docs = MMVet().load_docs(root)
    by_id = {d.doc_id: d for d in docs}
    with fake_endpoint(grade) as (url, seen):
        monkeypatch.setenv("MMEVAL_JUDGE_URL", url)
        monkeypatch.setenv("MMEVAL_CACHE", str(tmp_path / "c"))
        task = MMVet()
        s = task.grade(scored(task, docs[:1], "lmms-eval"), by_id, "lmms-eval", lambda m: None)[0].scores
        assert s["score"] == 1.0 and seen[0]["model"] == "gpt-4o-2024-11-20" and seen[0]["max_tokens"] == 128
        assert list((tmp_path / "c" / "judge").rglob("*.json"))
    # an endpoint that does not answer leaves the samples pending instead of failing the run
    monkeypatch.setenv("MMEVAL_JUDGE_URL", "http://127.0.0.1:9/v1")
    task, lines = MMVet(), []
    records = task.grade(scored(task, docs[1:]), by_id, "llava", lines.append)
    assert all(r.scores["pending"] == 1 for r in records) and len(lines) == 1 and "left pending" in lines[0]


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
