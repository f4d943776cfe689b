"""MMBench end to end on tiny dev sets (lmms-lab parquet and the official TSV) with option
rotations: CircularEval vs vanilla, per-category scores, and the LLM fallback through a fake
chat-completions endpoint (cached: rescoring sends nothing)."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.mmbench import MMBench
from tests.fake_judge import fake_endpoint


@pytest.fixture(autouse=True)
def no_env_judge(monkeypatch):
    for k in ("MMEVAL_JUDGE_URL", "MMEVAL_JUDGE_MODEL", "MMEVAL_JUDGE_KEY"):
        monkeypatch.delenv(k, raising=False)




def cat_letter(body):
    """The fake judge picks the option that reads 'cat' in Example 3 of MMBench's prompt."""
    prompt = body["messages"][0]["content"]
    example = prompt.split("Example 3:")[1]
    m = re.search(r"\n([A-E])\. cat\n", example)
    return m.group(1) if m else "Z"


def mmbench_rows():
    img = lambda c: Image.new("RGB", (7, 5), c)  # noqa: E731
    base = [
        dict(index=1, question="What animal is shown?", hint="A photo from a farm.", A="cow", B="horse", C="cat",
             D="pig", answer="C", category="object_localization", l2_category="FP-S", image=img((1, 2, 3))),
        dict(index=2, question="What color is the sky?", hint=None, A="blue", B="red", C="green", D=None,
             answer="A", category="attribute_recognition", l2_category="FP-S", image=img((4, 5, 6))),
        dict(index=3, question="Which pet is this?", hint=None, A="dog", B="cat", C=None, D=None,
             answer="B", category="attribute_recognition", l2_category="FP-C", image=img((7, 8, 9))),
    ]
    rows = []
    for r in base:
        rows.extend(MMBench.rotations(r))
    return rows


def predictions(docs):
    out = []
    for d in docs:
        i = d.fields["index"]
        if i == 2_000_002:
            text = "A" if d.target != "A" else "B"       # question 2: the last rotation is wrong
        elif i % 1_000_000 == 3:
            text = "It looks like a small kitten."         # no letter, no option text: needs the judge
        else:
            text = d.target if i % 2 else f"({d.target}) is right"
        out.append(Prediction(text=text))
    return out


@pytest.mark.parametrize("layout", ["parquet", "tsv"])
def test_end_to_end(tmp_path, layout):
    rows = mmbench_rows()
    assert [r["index"] for r in rows] == [1, 1000001, 2000001, 3000001, 2, 1000002, 2000002, 3, 1000003]
    assert rows[1]["answer"] == "B" and rows[1]["A"] == "horse"  # the rotation moved 'cat' to B
    root = MMBench.write_layout(tmp_path / "mmbench", rows, layout)
    task = MMBench()
    docs = task.load_docs(root)
    assert len(docs) == 9 and docs[0].images[0].load().size == (7, 5)
    assert docs[1].images[0].load().size == (7, 5)  # TSV rotations point at the original's image

    d = docs[0]
    assert task.request(d, "llava").prompt == (
        "A photo from a farm.\nWhat animal is shown?\nA. cow\nB. horse\nC. cat\nD. pig\n"
        "Answer with the option's letter from the given choices directly.")
    lm = task.request(d, "lmms-eval")
    assert lm.prompt == ("A photo from a farm. What animal is shown? There are several options:\nA. cow\nB. horse\n"
                         "C. cat\nD. pig\nAnswer with the option's letter from the given choices directly.")
    assert lm.generation.stop == ("ASSISTANT:",)
    assert task.request(docs[4], "llava").prompt.startswith("What color is the sky?\nA. blue\nB. red\nC. green\nAnswer")

    preds = predictions(docs)
    scores = [task.score(d, p, "llava") for d, p in zip(docs, preds, strict=True)]
    assert sum(s["unparsed"] for s in scores) == 2
    m = task.aggregate(scores, "llava")
    assert m["circular_accuracy"] == pytest.approx(100 / 3)   # only question 1 survives every rotation
    assert m["vanilla_accuracy"] == pytest.approx(200 / 3)    # originals of questions 1 and 2 are right
    assert m["category/object_localization"] == 100.0 and m["category/attribute_recognition"] == 0.0
    assert m["l2/FP-S"] == 50.0 and m["l2/FP-C"] == 0.0
    notes = task.finalize([{"scores": s} for s in scores], tmp_path, "llava")
    assert notes["mmbench_unparsed"] == 2 and "judge_url" in notes["note"]

    # with a judge endpoint the free-form answers are matched to 'cat' and question 3 counts
    with fake_endpoint(cat_letter) as (url, seen):
        judged = MMBench(judge_url=url, judge_model="fake", judge_cache=str(tmp_path / "cache"))
        s2 = [judged.score(d, p, "llava") for d, p in zip(docs, preds, strict=True)]
        assert len(seen) == 2 and all(
            s["judged"] == (d.fields["index"] % 10**6 == 3) for s, d in zip(s2, docs, strict=True)
        )
        m2 = judged.aggregate(s2, "llava")
        assert m2["circular_accuracy"] == pytest.approx(200 / 3)
        assert m2["vanilla_accuracy"] == pytest.approx(100.0)
        again = MMBench(judge_url=url, judge_model="fake", judge_cache=str(tmp_path / "cache"))
        s3 = [again.score(d, p, "llava") for d, p in zip(docs, preds, strict=True)]
        assert len(seen) == 2 and s3 == s2                    # served from the cache


def test_bad_data(tmp_path):
    rows = mmbench_rows()
    rows[0]["answer"] = "E"
    root = MMBench.write_layout(tmp_path / "a", rows, "tsv")
    with pytest.raises(DataError, match="not one of its options"):
        MMBench().load_docs(root)
    root = MMBench.write_layout(tmp_path / "b", mmbench_rows()[1:], "parquet")  # rotations of 1 without 1
    with pytest.raises(DataError, match="no original question"):
        MMBench().load_docs(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no MMBench data"):
        MMBench().load_docs(tmp_path / "empty")
    with pytest.raises(Exception, match="takes no options"):
        MMBench(bogus="1")
