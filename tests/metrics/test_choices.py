"""Hand-worked cases of the multiple-choice rules: LLaVA's ScienceQA parser, lmms-eval's ScienceQA
match, MMBench's can_infer (both dialects) and CircularEval."""

from __future__ import annotations

import math

import pytest

from mmeval.metrics.choices import (
    can_infer,
    can_infer_option_lmms_eval,
    can_infer_option_vlmeval,
    can_infer_text,
    circular_eval,
    is_missing,
    mmbench_judge_prompt,
    parse_sqa_llava,
    parse_sqa_lmms_eval,
    sqa_lmms_eval_correct,
)


@pytest.mark.parametrize("text,n,expected", [
    ("B", 3, 1),
    (" C ", 3, 2),
    ("D", 3, -1),                      # a letter beyond the problem's choices fails
    ("A. the first one", 2, 0),        # 'X. ' prefix
    ("A.the first one", 2, -1),        # no space after the period
    ("The answer is B.", 2, 1),
    ("I think The answer is C,", 4, 2),
    ("I think The answer is C", 4, -1),  # the pattern wants one character after the letter
    ("The answer is A. The answer is B.", 2, -1),  # two matches fail
    ("The answer is F.", 4, -1),       # a letter outside the options
    ("the answer is B.", 2, -1),       # case-sensitive
    ("B\nbecause", 2, -1),             # neither a lone letter nor 'B. '
    ("b", 2, -1),
    ("", 2, -1),
    ("Answer: B", 2, -1),
])
def test_parse_sqa_llava(text, n, expected):
    assert parse_sqa_llava(text, n) == expected


@pytest.mark.parametrize("text,target,expected", [
    ("B", "B", True),
    ("b", "B", True),                  # compared lower-cased
    (" B ", "B", True),
    ("B. two", "B", True),
    ("b. two", "B", False),            # the prefix rule needs an upper-case letter
    ("The answer is B", "B", False),
    ("BB", "B", False),
])
def test_sqa_lmms_eval(text, target, expected):
    assert sqa_lmms_eval_correct(text, target) is expected
    letter = parse_sqa_lmms_eval(text)
    assert (letter is not None and letter.lower() == target.lower()) is expected


def test_can_infer_vlmeval_rules():
    abcd = ["A", "B", "C", "D"]
    assert can_infer_option_vlmeval("B", abcd) == "B"
    assert can_infer_option_vlmeval("(C) a cat", abcd) == "C"
    assert can_infer_option_vlmeval("The answer is D.", abcd) == "D"
    assert can_infer_option_vlmeval("A", abcd) == "A"
    # 'A' among more than three words may be the article: nothing inferred
    assert can_infer_option_vlmeval("A cat is on the mat", abcd) is False
    assert can_infer_option_vlmeval("B or C", abcd) is False          # two letters
    assert can_infer_option_vlmeval("Cannot determine the answer", abcd) == "Z"
    assert can_infer_option_vlmeval("Z", abcd) == "Z"
    assert can_infer_option_vlmeval("Failed to obtain answer via API", abcd) is False
    assert can_infer_option_vlmeval("E", ["A", "B"]) is False          # only the offered letters


def test_can_infer_lmms_eval_rules():
    assert can_infer_option_lmms_eval("B") == "B"
    assert can_infer_option_lmms_eval("E") == "E"                    # always A-E
    # punctuation is not stripped: 'B.' is found by the affix pass, '(C)' too
    assert can_infer_option_lmms_eval("The answer is B.") == "B"
    assert can_infer_option_lmms_eval("(C) a cat") == "C"
    assert can_infer_option_lmms_eval("[C] a cat") is False           # no such affix
    assert can_infer_option_lmms_eval("A dog, B.") == "A"            # a lone 'A' among three words wins
    assert can_infer_option_lmms_eval("A dog sits, so B.") == "B"    # 'A' skipped (>3 words); 'B.' is the one affix hit
    assert can_infer_option_lmms_eval("A cat sits here") is False     # 'A' as an article in >3 words


def test_can_infer_text_and_combined():
    choices = {"A": "Teddy bear", "B": "rabbit", "C": "cat"}
    assert can_infer_text("it is a cute teddy bear", dict(choices)) == "A"
    assert can_infer_text("a rabbit and a cat", dict(choices)) is False  # two texts occur
    assert can_infer("I see a rabbit", choices, "vlmevalkit") == "B"
    assert can_infer("I see a rabbit", choices, "lmms-eval") == "B"
    # the article 'A' blocks the letter rule; the text rule then finds nothing unique
    assert can_infer("A rabbit and a cat", choices) is False
    with pytest.raises(ValueError):
        can_infer("B", choices, "nope")


def test_judge_prompt_dialects():
    p = mmbench_judge_prompt("What is it", {"A": "cat", "B": "dog"}, "a kitten", "vlmevalkit")
    assert "output Z" in p and p.endswith(
        "Question: What is it?\nOptions: There are several options: \nA. cat\nB. dog\n\nAnswer: a kitten\nYour output: "
    )
    q = mmbench_judge_prompt("What is it", {"A": "cat", "B": "dog"}, "a kitten", "lmms-eval")
    assert "output E" in q and "Your output: E\n" in q


def test_is_missing():
    assert is_missing(None) and is_missing(float("nan")) and is_missing("nan") and is_missing("None")
    assert not is_missing("0") and not is_missing("no")


def test_circular_eval_hand_worked():
    rows = [
        # question 1: both rotations right -> circular hit
        {"index": 1, "correct": 1, "category": "x"}, {"index": 1_000_001, "correct": 1, "category": "x"},
        # question 2: original right, rotation wrong -> vanilla hit, circular miss
        {"index": 2, "correct": 1, "category": "x"}, {"index": 1_000_002, "correct": 0, "category": "x"},
        {"index": 2_000_002, "correct": 1, "category": "x"},
        # question 3: original wrong, rotation right
        {"index": 3, "correct": 0, "category": "y"}, {"index": 1_000_003, "correct": 1, "category": "y"},
        # an orphan rotation (no original) is ignored
        {"index": 1_000_009, "correct": 1, "category": "y"},
    ]
    res = circular_eval(rows)
    assert res["n_questions"] == 3
    assert res["circular"] == pytest.approx(1 / 3)
    assert res["vanilla"] == pytest.approx(2 / 3)
    assert res["category"]["x"] == {"circular": 0.5, "vanilla": 1.0, "n": 2}
    assert res["category"]["y"]["circular"] == 0.0
    assert math.isnan(circular_eval([{"index": 1_000_001, "correct": 1}])["circular"])
