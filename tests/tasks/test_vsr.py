"""VSR zero-shot test end to end with True/False next-token probabilities (TRI's harness)."""

import pytest
from PIL import Image

from mmeval.errors import DataError, UnknownNameError
from mmeval.types import Prediction
from tasks.vsr import VSR


def img(i):
    return Image.new("RGB", (8, 8), (i * 40, 0, 0))


ROWS = [
    {"image": "000000085637.jpg", "caption": "The cat is on the bed.", "label": 1, "relation": "on", "picture": img(1)},
    {"image": "000000085637.jpg", "caption": "The bed is on the cat.", "label": 0, "relation": "on", "picture": img(1)},
    {"image": "000000012345.jpg", "caption": "The dog is left of the car.", "label": 1, "relation": "left of",
     "picture": img(2)},
    {"image": "000000054321.jpg", "caption": "The cup is under the table.", "label": 0, "relation": "under",
     "picture": img(3)},
]


def test_end_to_end(tmp_path):
    VSR.write_layout(tmp_path, ROWS)
    task = VSR()
    assert task.default_protocol == "prismatic" and task.protocols == ("prismatic",)
    docs = task.load_docs(tmp_path)
    assert [d.target for d in docs] == [True, False, True, False]
    assert docs[0].group_key == docs[1].group_key
    req = task.request(docs[0], "prismatic")
    assert req.prompt == ('Based on the image, is this statement "True" or "False"? The cat is on the bed.'
                          '\nRespond with "True" or "False" directly.')
    assert req.generation.max_new_tokens == 0 and req.generation.candidates == ("True", "False")
    probs = [(0.7, 0.2), (0.3, 0.3), (0.1, 0.6), (0.2, 0.5)]  # tie on doc 1 goes to True (wrong)
    scores = [task.score(d, Prediction(candidate_probs={"True": t, "False": f}), "prismatic")
              for d, (t, f) in zip(docs, probs, strict=True)]
    assert [s["correct"] for s in scores] == [1.0, 0.0, 0.0, 1.0]
    m = task.aggregate(scores, "prismatic")
    assert m["accuracy"] == pytest.approx(50.0)
    # P(True) normalised: 0.778, 0.5, 0.143, 0.286; positives {0.778, 0.143} vs negatives {0.5, 0.286}:
    # 2 of 4 pairs ranked right -> AUC 0.5.
    assert m["aucroc"] == pytest.approx(50.0)
    assert task.headline("prismatic") == "accuracy"
    with pytest.raises(UnknownNameError):
        task.request(docs[0], "llava")
    with pytest.raises(DataError, match="probabilities"):
        task.score(docs[0], Prediction(text="True"), "prismatic")


def test_coco_folders_and_missing_images(tmp_path):
    VSR.write_layout(tmp_path, ROWS)
    (tmp_path / "images").rename(tmp_path / "train2017")  # COCO layout, found through image_link
    docs = VSR().load_docs(tmp_path)
    assert "train2017" in docs[0].images[0].path
    (tmp_path / "train2017" / "000000012345.jpg").unlink()
    with pytest.raises(DataError, match="000000012345.jpg"):
        VSR().load_docs(tmp_path)
    with pytest.raises(DataError, match="no hub copy"):
        VSR().load_docs(None)
