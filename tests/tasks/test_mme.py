"""MME end to end on tiny datasets (lmms-lab parquet, the official benchmark folder, and the
eval_tool layout), with hand-worked subtask scores, and the yes/no parsers."""

from __future__ import annotations

import pytest
from PIL import Image

from mmeval.errors import DataError
from mmeval.metrics.mme import (
    COGNITION,
    PERCEPTION,
    SUBTASKS,
    mme_official_scores,
    parse_mme_lmms_eval,
    parse_mme_official,
)
from mmeval.types import Prediction
from tasks.mme import MME


def mme_rows():
    rows = []
    for s, sub in enumerate(SUBTASKS):
        n_images = 2 if sub == "existence" else 1
        for i in range(n_images):
            image = Image.new("RGB", (6, 6), (10 * s, 20 * i, 100))
            name = f"{i:04d}.png" if sub in ("code_reasoning", "OCR") else f"{i:04d}.jpg"
            rows.append(dict(category=sub, image_name=name, image=image, answer="Yes",
                             question=f"Is there a thing {i} in this {sub} image? Please answer yes or no."))
            rows.append(dict(category=sub, image_name=name, image=image, answer="No",
                             question=f"Is there a other {i} in this {sub} image? Please answer yes or no."))
    return rows


def predictions(docs):
    """Right answers everywhere, except: existence image 1 gets one wrong, code_reasoning gets
    'maybe' once, and color answers 'Y' (unreadable for the official tool, 'yes' for lmms-eval)."""
    out = []
    for d in docs:
        text = "Yes." if d.target == "yes" else "No, there is not."
        if d.fields["category"] == "existence" and d.fields["image"].endswith("0001.jpg") and d.target == "no":
            text = "Yes"
        if d.fields["category"] == "code_reasoning" and d.target == "yes":
            text = "maybe"
        if d.fields["category"] == "color" and d.target == "yes":
            text = "Y"
        out.append(Prediction(text=text))
    return out


@pytest.mark.parametrize("layout", ["parquet", "official", "eval_tool"])
def test_end_to_end(tmp_path, layout):
    root = MME.write_layout(tmp_path / "mme", mme_rows(), layout)
    task = MME()
    docs = task.load_docs(root)
    assert len(docs) == 30
    assert len({d.doc_id for d in docs}) == 30
    assert {d.fields["category"] for d in docs} == set(SUBTASKS)
    d0 = docs[0]
    assert d0.images[0].load().size == (6, 6)
    req = task.request(d0, "llava")
    assert req.prompt.endswith("image?\nAnswer the question using a single word or phrase.")
    assert "Please answer yes or no" not in req.prompt
    assert req.generation.max_new_tokens == 128 and task.request(d0, "lmms-eval").generation.max_new_tokens == 16

    preds = predictions(docs)
    scores = [task.score(d, p, "llava") for d, p in zip(docs, preds, strict=True)]
    m = task.aggregate(scores, "llava")
    assert m["existence/acc"] == 75.0 and m["existence/acc_plus"] == 50.0 and m["existence/score"] == 125.0
    assert m["code_reasoning/score"] == 50.0
    assert m["color/score"] == 50.0  # 'Y' is 'other' for calculation.py
    assert m["perception"] == pytest.approx(125 + 50 + 8 * 200)
    assert m["cognition"] == pytest.approx(50 + 3 * 200)
    assert task.headline("llava") == "perception"

    lm = [task.score(d, p, "lmms-eval") for d, p in zip(docs, preds, strict=True)]
    ml = task.aggregate(lm, "lmms-eval")
    assert ml["perception"] == pytest.approx(125 + 9 * 200)  # 'Y' counts as yes in lmms-eval
    assert ml["cognition"] == pytest.approx(650.0)


def test_official_errors(tmp_path):
    root = MME.write_layout(tmp_path / "mme", mme_rows(), "official")
    bench = root / "MME_Benchmark_release_version"
    txt = next((bench / "existence").glob("*.txt"))
    txt.write_text("just one column\n")
    with pytest.raises(DataError, match="question<TAB>answer"):
        MME().load_docs(root)
    import shutil

    shutil.rmtree(bench / "OCR")
    with pytest.raises(DataError, match="missing: OCR"):
        MME().load_docs(root)
    with pytest.raises(DataError, match="no MME data"):
        MME().load_docs(tmp_path / "mme" / "MME_Benchmark_release_version" / "count")


@pytest.mark.parametrize("text,official,lmms", [
    ("Yes", "yes", "yes"),
    ("No.", "no", "no"),
    ("yes.", "yes", "yes"),
    ("Not at all", "no", "no"),
    ("Y", "other", "yes"),
    ("n", "other", "no"),
    ("The answer is yes", "other", "other"),
    (" no", "no", "no"),
    ("I think yes", "other", "other"),
])
def test_parsers(text, official, lmms):
    assert parse_mme_official(text) == official
    assert parse_mme_lmms_eval(text) == lmms


def test_official_scores_hand_worked():
    rows = [{"category": "count", "image": "a", "correct": 1}, {"category": "count", "image": "a", "correct": 1},
            {"category": "count", "image": "b", "correct": 0}, {"category": "count", "image": "b", "correct": 1},
            {"category": "text_translation", "image": "c", "correct": 0},
            {"category": "text_translation", "image": "c", "correct": 0}]
    m = mme_official_scores(rows)
    assert m["count/score"] == 125.0 and m["perception"] == 125.0
    assert m["cognition"] == 0.0 and m["total"] == 125.0
    assert len(PERCEPTION) == 10 and len(COGNITION) == 4
