"""Hand-worked cases of the official VQA normaliser and accuracy (vqaEval.py / EvalAI rules)."""

import pytest

from mmeval.metrics import vqa as V
from mmeval.metrics.exact import gqa_llava_answer, gqa_prismatic_answer, lmms_eval_exact_match


@pytest.mark.parametrize("raw, expected", [
    ("two", "2"),
    ("Ten", "10"),
    ("none", "0"),
    ("the dog.", "dog"),
    ("A cat", "cat"),
    ("an apple", "apple"),
    ("dont", "don't"),
    ("isnt it", "isn't it"),
    ("somebody'd", "somebodyd"),          # the official table's own quirk
    ("yes!", "yes"),
    ("3.5", "3.5"),                        # a period before a digit stays
    ("1,000", "1000"),                     # digit,digit: every mark is deleted
    ("red/white", "red white"),            # a mark touching no space becomes a space
    ("red / white", "red white"),          # one touching a space is deleted
    ("  left\tside\n", "left side"),
    ("it's", "it's"),                      # apostrophes are not punctuation here
])
def test_official_normaliser(raw, expected):
    assert V.normalize_answer(raw) == expected


def test_period_strip_count_quirk():
    # vqaEval.py passes re.UNICODE (32) as the `count` of re.sub: only 32 periods go.
    assert V.normalize_answer("." * 40) == "." * 8


def test_evalai_processor_differs_from_official():
    assert V.evalai_answer("What's up?") == "what 's up"
    assert V.normalize_answer("What's up?") == "what's up"
    assert V.evalai_answer("Two, Dogs") == "2 dogs"


@pytest.mark.parametrize("n_agree, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_by_hand(n_agree, expected):
    # 2 agree: leaving out one of the 2 leaves 1 match (1/3); leaving out one of the other 8 leaves
    # 2 matches (2/3); mean = (2 * 1/3 + 8 * 2/3) / 10 = 0.6.
    gts = ["cat"] * n_agree + ["dog"] * (10 - n_agree)
    assert V.vqa_accuracy("cat", gts) == pytest.approx(expected, abs=1e-12)
    assert V.leave_one_out_accuracy("cat", gts) == pytest.approx(expected, abs=1e-12)


def test_official_ground_truth_processed_only_when_answers_disagree():
    # All ten identical: ground truth compared raw, so a normalised "yes" misses "yes.".
    assert V.vqa_accuracy("yes.", ["yes."] * 10) == 0.0
    # Disagreeing answers are punctuation-processed: "yes." -> "yes".
    assert V.vqa_accuracy("yes", ["yes."] * 9 + ["no"]) == 1.0
    # ...but the ground truth is not stripped afterwards: "yes!" -> "yes " never matches.
    assert V.process_punctuation("yes!") == "yes "
    assert V.vqa_accuracy("yes", ["yes!"] * 9 + ["no"]) == 0.0
    # Ground truth never gets the digit step: "two" stays "two", the prediction becomes "2".
    assert V.vqa_accuracy("two", ["two"] * 5 + ["2"] * 5) == 1.0
    assert V.vqa_accuracy("two", ["two"] * 10) == 0.0


def test_prismatic_and_lmms_eval_variants():
    # TRI's refactored scorer processes punctuation of the ground truth even when all agree.
    assert V.prismatic_vqav2_accuracy("yes", ["yes."] * 10) == 1.0
    assert V.vqa_accuracy("yes", ["yes."] * 10) == 0.0
    # lmms-eval processes digits on both sides.
    assert V.lmms_eval_vqav2_accuracy("two", ["two"] * 10) == 1.0
    # VizWiz rules: ground truth as given.
    assert V.vizwiz_accuracy("Unanswerable.", ["unanswerable"] * 10) == 1.0
    assert V.vizwiz_accuracy("yes", ["Yes"] * 10) == 0.0
    # m4c: EvalAI on both sides.
    assert V.m4c_accuracy("Dakota.", ["DAKOTA"] * 3 + ["kodak"] * 7) == pytest.approx(0.9)


def test_gqa_answer_rules():
    assert gqa_llava_answer(" Yes.") == "yes"
    assert gqa_llava_answer("left side, mostly") == "left side, mostly"
    assert gqa_prismatic_answer("T-shirt.") == "tshirt"
    assert lmms_eval_exact_match(" Yes. ", "yes") == 1.0
    assert lmms_eval_exact_match("no", "yes") == 0.0
