"""Exact-match answers for closed-vocabulary short-answer tasks (GQA), per reference script.

Each function maps generated text to the string compared with the gold answer; the comparison is
plain string equality, as GQA's official eval.py does (`predicted == gold`).
"""

from __future__ import annotations

import string

_PUNCT = str.maketrans("", "", string.punctuation)


def gqa_llava_answer(text: str) -> str:
    """LLaVA's convert_gqa_for_eval.py: trailing periods removed, lower-cased (on the stripped output)."""
    return text.strip().rstrip(".").lower()


def gqa_prismatic_answer(text: str) -> str:
    """TRI vlm-evaluation's GQA scorer: every string.punctuation character deleted, lower-cased."""
    return text.strip().translate(_PUNCT).lower()


def lmms_eval_exact_match(pred: str, gold: str) -> float:
    """lmms-eval's exact_match metric with ignore_case and ignore_punctuation (HF evaluate's
    exact_match): lower-case both, delete string.punctuation from both, compare; the prediction is
    stripped first, as lmms-eval's process_results does."""
    p = pred.strip().lower().translate(_PUNCT)
    g = str(gold).lower().translate(_PUNCT)
    return float(p == g)
