"""POPE scoring under the three protocols: hand-worked cases of each script's rules, and a
differential test against lmms-eval's own POPE functions."""

from __future__ import annotations

import numpy as np
import pytest

from mmeval.metrics.yesno import average_precision, binary_metrics, lmms_eval_pope_metrics, parse_yes_no_llava, roc_auc
from mmeval.types import Doc, Prediction
from tasks.pope import Pope


@pytest.mark.parametrize("text,expected", [
    ("Yes", "yes"), ("No", "no"), ("no", "no"), ("No, there is no cat.", "no"),
    ("Yes. But not a dog.", "yes"),          # only the first sentence counts
    ("There is not a cat", "no"), ("Nope", "yes"),  # 'Nope' is not one of the words
    ("NO", "yes"),                           # the rule is case-sensitive, as written
    ("Yes, no doubt", "no"),                 # commas dropped, then 'no' is a word
    ("", "yes"),
])
def test_llava_parse_rule(text, expected):
    assert parse_yes_no_llava(text) == expected


def test_binary_metrics_hand_worked():
    # TP=2 (0,1), FN=1 (2), FP=1 (3), TN=2 (4,5)
    preds = ["yes", "yes", "no", "yes", "no", "no"]
    labels = ["yes", "yes", "yes", "no", "no", "no"]
    m = binary_metrics(preds, labels)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["yes_ratio"] == pytest.approx(3 / 6)


def test_lmms_eval_quirks():
    # 'maybe' is neither: lmms-eval counts it wrong but not as a false negative
    preds = ["yes", "maybe", "no", "yes"]
    labels = ["yes", "yes", "no", "no"]
    m = lmms_eval_pope_metrics(preds, labels)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(1.0)        # TP=1, FN=0
    assert m["precision"] == pytest.approx(0.5)     # FP=1
    assert m["yes_ratio"] == pytest.approx(0.5)     # share of 'yes' labels


def test_auc_hand_worked():
    labels = [1, 0, 1, 0]
    scores = [0.9, 0.8, 0.4, 0.1]
    # pairs (pos, neg): (.9,.8)+ (.9,.1)+ (.4,.8)- (.4,.1)+ -> 3/4
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    # thresholds .9: P=1 R=.5; .8: P=.5 R=.5; .4: P=2/3 R=1; -> .5*1 + .5*2/3
    assert average_precision(labels, scores) == pytest.approx(0.5 + 1 / 3)
    # ties count 1/2
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)


def test_auc_matches_sklearn_on_random_data():
    import sklearn.metrics as sk
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 50)
        s = np.round(rng.random(50), 1)  # rounding makes ties
        assert roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s))
        assert average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s))


def docs_and_preds():
    rng = np.random.default_rng(1)
    cats = ["random", "popular", "adversarial"]
    texts = ["Yes", "No", "yes", "no", "Yes, there is a dog.", "No.", "maybe", " yes "]
    docs, preds = [], []
    for i in range(60):
        docs.append(Doc(doc_id=str(i), fields={"question": "q", "category": cats[i % 3]},
                        target="yes" if rng.random() < 0.5 else "no"))
        p = float(rng.random())
        preds.append(Prediction(text=texts[int(rng.integers(len(texts)))], candidate_probs={"Yes": p, "No": 1 - p}))
    return docs, preds


def test_prismatic_protocol_as_the_harness_computes():
    task = Pope()
    docs, preds = docs_and_preds()
    scores = [task.score(d, p, "prismatic") for d, p in zip(docs, preds, strict=True)]
    m = task.aggregate(scores, "prismatic")
    accs = []
    for cat in ("adversarial", "popular", "random"):
        idx = [i for i, d in enumerate(docs) if d.fields["category"] == cat]
        acc = np.mean([["yes", "no"][int(np.argmax([preds[i].candidate_probs["Yes"], preds[i].candidate_probs["No"]]))]
                       == docs[i].target for i in idx])
        accs.append(acc)
        assert m[f"{cat}/accuracy"] == pytest.approx(100 * acc)
    assert m["accuracy"] == pytest.approx(100 * np.mean(accs))
    assert task.headline("prismatic") == "accuracy"


def test_lmms_eval_protocol_matches_lmms_eval_functions():
    import lmms_eval.tasks.pope.utils as utils
    task = Pope()
    docs, preds = docs_and_preds()
    ours = task.aggregate([task.score(d, p, "lmms-eval") for d, p in zip(docs, preds, strict=True)], "lmms-eval")
    results = []
    for i, (d, p) in enumerate(zip(docs, preds, strict=True)):
        doc = {"question_id": str(i), "answer": d.target, "question": "q"}
        results.append(utils.pope_process_results(doc, [p.text])["pope_accuracy"])
    theirs = {
        "accuracy": utils.pope_aggregate_accuracy(results), "precision": utils.pope_aggregate_precision(results),
        "recall": utils.pope_aggregate_recall(results), "f1": utils.pope_aggregate_f1_score(results),
        "yes_ratio": utils.pope_aggregate_yes_ratio(results),
    }
    for k, v in theirs.items():
        assert ours[k] == 100.0 * v, k  # to the last digit


def test_llava_protocol_per_category_then_mean():
    task = Pope()
    docs, preds = docs_and_preds()
    m = task.aggregate([task.score(d, p, "llava") for d, p in zip(docs, preds, strict=True)], "llava")
    f1s = []
    for cat in ("adversarial", "popular", "random"):
        idx = [i for i, d in enumerate(docs) if d.fields["category"] == cat]
        bm = binary_metrics([parse_yes_no_llava(preds[i].text) for i in idx], [docs[i].target for i in idx])
        f1s.append(bm["f1"])
    assert m["f1"] == pytest.approx(100 * np.mean(f1s))
