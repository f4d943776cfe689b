"""Multiple-choice answers: letter parsing, MMBench's rule-based choice extraction, circular eval.

Everything here is a pure function over strings and dicts (no model, no network). The rules
re-implement, in our own code, the behaviour of the official scripts:

- ScienceQA: LLaVA's ``llava/eval/eval_science_qa.py`` (single letter, "X. ...", "The answer is X")
  and lmms-eval's ``sqa_process_results`` (exact letter, or "X." prefix).
- MMBench: the choice extraction of the MMBench evaluator (``can_infer``: an option letter standing
  alone among the words, else the one option whose text occurs in the answer), in two dialects:
  VLMEvalKit's current one (used by the MMBench server that LLaVA-1.5 submitted to) and the older
  one that lmms-eval ships in ``mmbench_evals.py``; the LLM-fallback prompts of both; and
  CircularEval (a question counts only when every rotation of its options is answered right;
  rotations share ``index % 1_000_000``, the original has ``index < 1_000_000``).

Rates are fractions in [0, 1]; tasks scale them to percentages.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LETTERS = string.ascii_uppercase
CIRCULAR_BASE = 1_000_000
FAIL_MSG = "Failed to obtain answer via API"


def is_missing(value: Any) -> bool:
    """None, NaN, or the strings 'nan'/'none' that pandas and the TSVs use for an absent cell."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and value.strip().lower() in ("nan", "none", ""):
        return True
    return False


# --------------------------------------------------------------------------------------------
# ScienceQA
# --------------------------------------------------------------------------------------------

_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")  # eval_science_qa.py's pattern: "." is any character


def parse_sqa_llava(text: str, n_choices: int, options: str = "ABCDE") -> int:
    """Index of the chosen option under LLaVA's eval_science_qa.py (haotian-liu/LLaVA c121f04,
    unchanged since ce1aa08), or -1 when it fails: the text as a whole letter, a leading 'X. ', or
    exactly one match of 'The answer is X' followed by any character; the letter must be one of the
    problem's choices (get_pred_idx). The text is stripped first, as model_vqa_science.py strips
    the model's output before writing it."""
    opts = list(options)
    pred = text.strip()
    if pred in opts:
        answer = pred
    elif len(pred) >= 3 and pred[0] in opts and pred[1:3] == ". ":
        answer = pred[0]
    else:
        found = _ANSWER_IS.findall(pred)
        answer = found[0] if len(found) == 1 else "FAILED"
    return opts.index(answer) if answer in opts[:n_choices] else -1


def parse_sqa_lmms_eval(text: str) -> str | None:
    """The letter lmms-eval's sqa_process_results credits: the whole stripped text if it is one
    character (compared case-insensitively), else the first character of an 'X.' prefix whose
    first character is upper case; None otherwise."""
    pred = text.strip()
    if len(pred) == 1:
        return pred.upper()
    if len(pred) >= 2 and pred[0].isupper() and pred[1] == ".":
        return pred[0]
    return None


def sqa_lmms_eval_correct(text: str, target_letter: str) -> bool:
    target = target_letter.strip().lower()
    pred = text.strip()
    if pred.lower() == target:
        return True
    if len(pred) >= 2 and pred[0].isupper() and pred[1] == ".":
        return pred[0].lower() == target
    return False


def lettered_options(choices: Sequence[str], sep: str = "\n") -> str:
    """'A. first<sep>B. second ...'"""
    return sep.join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))


# --------------------------------------------------------------------------------------------
# MMBench choice extraction
# --------------------------------------------------------------------------------------------

_REJECTIONS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)


def _count_tokens(tokens: Sequence[str], letters: Iterable[str], prefix: str = "", suffix: str = "") -> int:
    return sum(1 for c in letters if prefix + c + suffix in tokens)


def can_infer_option_vlmeval(answer: str, choices: Iterable[str]) -> str | bool:
    """VLMEvalKit's option matcher: refusals give 'Z'; punctuation '.()[],:;!*#{}' becomes
    spaces; exactly one option letter among the words wins, unless 'A' is among more than three
    words (then 'A' may be the article and nothing is inferred); a lone 'Z' with no option
    letter gives 'Z'. False when nothing can be inferred."""
    if FAIL_MSG in answer:
        return False
    for err in _REJECTIONS:
        if err in answer:
            return "Z"
    mod = answer
    for ch in ".()[],:;!*#{}":
        mod = mod.replace(ch, " ")
    tokens = [t.strip() for t in mod.split()]
    letters = list(choices)
    n = _count_tokens(tokens, letters)
    if n == 1:
        if "A" in tokens and len(tokens) > 3:
            return False
        for ch in letters:
            if ch in tokens:
                return ch
    elif n == 0 and "Z" in tokens:
        return "Z"
    return False


def can_infer_option_lmms_eval(answer: str, num_choice: int = 5) -> str | bool:
    """The older MMBench matcher in lmms-eval's mmbench_evals.py: letters A..E whatever the
    question offers; a lone letter among the whitespace-split words (skipped when 'A' is among
    more than three words), else a letter written with one of the affixes 'X.', 'X,', 'X:', 'X)',
    'X).', '(X)', '(X).', ':X', ':X,', ':X.', ':X)', ':X).' that occurs for exactly one letter."""
    letters = LETTERS[:num_choice]
    if FAIL_MSG in answer:
        return False
    tokens = [t.strip() for t in answer.split()]
    if _count_tokens(tokens, letters) == 1:
        if not ("A" in tokens and len(tokens) > 3):
            for ch in letters:
                if ch in tokens:
                    return ch
    affixes = (("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."),
               (":", ""), (":", ","), (":", "."), (":", ")"), (":", ")."))
    for pre, suf in affixes:
        if _count_tokens(tokens, letters, pre, suf) == 1:
            for ch in letters:
                if pre + ch + suf in tokens:
                    return ch
    return False


def can_infer_text(answer: str, choices: Mapping[str, Any]) -> str | bool:
    """The one option whose (lower-cased) text occurs in the lower-cased answer; False if none
    or several do."""
    low = answer.lower()
    hits = [k for k, v in choices.items() if str(v).lower() in low]
    return hits[0] if len(hits) == 1 else False


def can_infer(answer: Any, choices: Mapping[str, Any], style: str = "vlmevalkit") -> str | bool:
    """Option letter first, option text second (MMBench's can_infer). `choices` maps letters to
    option texts (present options only). `style` is 'vlmevalkit' or 'lmms-eval'."""
    answer = str(answer)
    if style == "lmms-eval":
        opt = can_infer_option_lmms_eval(answer)
    elif style == "vlmevalkit":
        opt = can_infer_option_vlmeval(answer, list(choices))
    else:
        raise ValueError(f"unknown can_infer style {style!r}")
    return opt if opt else can_infer_text(answer, dict(choices))


def mmbench_judge_prompt(question: str, choices: Mapping[str, Any], prediction: str,
                         style: str = "vlmevalkit") -> str:
    """The prompt MMBench's evaluator sends to its LLM to map a free-form answer onto an option
    (the 'no match' letter is Z in VLMEvalKit, E in lmms-eval's copy)."""
    none_letter = "E" if style == "lmms-eval" else "Z"
    option_str = "There are several options: \n" + "".join(f"{k}. {v}\n" for k, v in choices.items())
    return (
        "You are an AI assistant who will help me to match an answer with several options of a "
        "single-choice question. You are provided with a question, several options, and an answer, "
        "and you need to find which option is most similar to the answer. If the meaning of all "
        f"options are significantly different from the answer, output {none_letter}. Your should "
        "output a single uppercase character in A, B, C, D (if they are valid options), and "
        f"{none_letter}. \n"
        "Example 1: \n"
        "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        "Answer: a cute teddy bear\nYour output: A\n"
        "Example 2: \n"
        "Question: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n"
        f"Answer: Spider\nYour output: {none_letter}\n"
        "Example 3: \n"
        f"Question: {question}?\nOptions: {option_str}\nAnswer: {prediction}\nYour output: "
    )


# --------------------------------------------------------------------------------------------
# CircularEval
# --------------------------------------------------------------------------------------------

def circular_group(index: int) -> int:
    return int(index) % CIRCULAR_BASE


def circular_eval(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """CircularEval over rows carrying 'index' (int), 'correct' (0/1) and optionally 'category'
    and 'l2_category'.

    A question is its original row (index < 1e6) together with every row whose index is congruent
    to it modulo 1e6 (the option rotations); it is right only when all those rows are. Groups
    without an original row are ignored (as the evaluators do). Returns fractions:
    'circular', 'vanilla' (original rows alone), and per-category dicts of both, plus counts."""
    groups: dict[int, list[Mapping[str, Any]]] = {}
    mains: dict[int, Mapping[str, Any]] = {}
    for r in rows:
        idx = int(r["index"])
        groups.setdefault(circular_group(idx), []).append(r)
        if idx < CIRCULAR_BASE:
            mains.setdefault(idx, r)
    circ: dict[int, float] = {}
    van: dict[int, float] = {}
    for idx, main in mains.items():
        members = groups[idx]
        circ[idx] = float(all(float(m["correct"]) >= 1.0 for m in members))
        van[idx] = float(float(main["correct"]) >= 1.0)

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else float("nan")

    out: dict[str, Any] = {
        "circular": mean(list(circ.values())),
        "vanilla": mean(list(van.values())),
        "n_questions": len(mains),
        "n_rows": len(rows),
    }
    for key in ("category", "l2_category"):
        by: dict[str, list[int]] = {}
        for idx, main in mains.items():
            if main.get(key) is not None:
                by.setdefault(str(main[key]), []).append(idx)
        out[key] = {c: {"circular": mean([circ[i] for i in ids]), "vanilla": mean([van[i] for i in ids]),
                        "n": len(ids)} for c, ids in sorted(by.items())}
    return out
