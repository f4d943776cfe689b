"""ScienceQA-IMG end to end on tiny datasets in both real layouts (lmms-lab parquet, official files)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.scienceqa_img import ScienceQAImg


def sqa_rows():
    img = lambda c: Image.new("RGB", (8, 6), c)  # noqa: E731
    return [
        dict(pid="11", question="Which is a mammal?", choices=["frog", "dog", "snake"], answer=1, hint="Look closely.",
             subject="natural science", grade="grade3", image=img((255, 0, 0))),
        dict(pid="12", question="Which state is farthest north?", choices=["Ohio", "Texas"], answer=0, hint="",
             subject="social science", grade="grade8", image=img((0, 255, 0))),
        dict(pid="13", question="Which word is a noun?", choices=["run", "table", "blue", "fast"], answer=1, hint="",
             subject="language science", grade="grade10", image=img((0, 0, 255))),
        dict(pid="14", question="No image here?", choices=["yes", "no"], answer=0, hint="",
             subject="natural science", grade="grade2", image=None),  # dropped: not in the IMG subset
    ]


@pytest.mark.parametrize("layout", ["parquet", "official"])
def test_end_to_end(tmp_path, layout):
    root = ScienceQAImg.write_layout(tmp_path / "sqa", sqa_rows(), layout)
    task = ScienceQAImg()
    docs = task.load_docs(root)
    assert len(docs) == 3
    assert [d.target for d in docs] == ["B", "A", "B"]
    assert docs[0].images[0].load().size == (8, 6)

    req = task.request(docs[0], "llava")
    assert req.prompt == ("Context: Look closely.\nWhich is a mammal?\nA. frog\nB. dog\nC. snake\n"
                          "Answer with the option's letter from the given choices directly.")
    assert "<image>" not in req.prompt
    assert req.generation.max_new_tokens == 1024
    assert task.request(docs[1], "lmms-eval").prompt.startswith("Which state is farthest north?\nA. Ohio\nB. Texas\n")
    assert task.request(docs[1], "lmms-eval").generation.max_new_tokens == 16

    preds = ["The answer is B.", "A. Ohio", "b"]
    scores = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, preds, strict=True)]
    assert [s["correct"] for s in scores] == [1.0, 1.0, 0.0]  # LLaVA's rules don't read a lower-case 'b'
    m = task.aggregate(scores, "llava")
    assert m["accuracy"] == pytest.approx(200 / 3)
    assert (m["nat"], m["soc"], m["lan"]) == (100.0, 100.0, 0.0)
    assert m["txt"] == 100.0 and m["img"] == pytest.approx(200 / 3)
    assert m["g1_6"] == 100.0 and m["g7_12"] == 50.0
    assert task.headline("llava") == "accuracy"

    lm = [task.score(d, Prediction(text=t), "lmms-eval") for d, t in zip(docs, preds, strict=True)]
    assert [s["correct"] for s in lm] == [0.0, 1.0, 1.0]  # lmms-eval: exact letter or 'X.' prefix only
    assert task.aggregate(lm, "lmms-eval")["accuracy"] == pytest.approx(200 / 3)


def test_official_missing_pieces(tmp_path):
    root = ScienceQAImg.write_layout(tmp_path / "sqa", sqa_rows(), "official")
    (root / "pid_splits.json").write_text(json.dumps({"train": []}))
    with pytest.raises(DataError, match="no 'test' split"):
        ScienceQAImg().load_docs(root)
    root = ScienceQAImg.write_layout(tmp_path / "sqa2", sqa_rows(), "official")
    for p in sorted((root / "images").rglob("*.png")):
        p.unlink()
    with pytest.raises(DataError, match="images not found"):
        ScienceQAImg().load_docs(root)


def test_empty_folder_and_options(tmp_path):
    with pytest.raises(DataError, match="no ScienceQA data"):
        ScienceQAImg().load_docs(tmp_path)
    with pytest.raises(Exception, match="takes no options"):
        ScienceQAImg(judge_url="x")
