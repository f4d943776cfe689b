"""VQA accuracy and the answer normalisers of the official evaluation scripts.

Three normalisers appear in the references, and they differ in small ways that change scores:

- `normalize_answer`: the official VQA evaluation (GT-Vision-Lab/VQA, vqaEval.py) applied to a
  predicted answer: newlines/tabs to spaces, strip, `process_punctuation`, `process_digit_article`.
- `evalai_answer`: EvalAI's answer processor (mmf/m4c `EvalAIAnswerProcessor`), used by LLaVA's
  TextVQA scorer (m4c_evaluator.py), LLaVA's convert_{vqav2,vizwiz}_for_submission.py and by
  lmms-eval's textvqa / vizwiz_vqa tasks: lower-case, drop ',' and '?', split "'s", then the two
  steps above.
- the punctuation step alone, which the official script applies to ground-truth answers only when
  the ten answers disagree.

Rules as in vqaEval.py: a punctuation mark is deleted when it touches a space (or the text has a
digit-comma-digit group), otherwise replaced by a space; periods not followed by a digit are
removed (at most 32 of them: the official call passes re.UNICODE, 32, as `count`); number words up
to ten become digits ("none" -> "0"); articles a/an/the are dropped; apostrophe-less contractions
are restored ("dont" -> "don't").

VQA accuracy of one answer: for each of the n ground-truth answers, leave it out and count how many
of the other n-1 equal the prediction; the score is min(count / 3, 1); average over the n subsets.
All functions return fractions in [0, 1].
"""

from __future__ import annotations

import re
import statistics
import string
from collections.abc import Callable, Sequence

_CONTRACTION_PAIRS = (
    "aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've "
    "couldnt've>couldn't've didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't hadnt've>hadn't've "
    "hadn'tve>hadn't've hasnt>hasn't havent>haven't hed>he'd hed've>he'd've he'dve>he'd've hes>he's "
    "howd>how'd howll>how'll hows>how's Id've>I'd've I'dve>I'd've Im>I'm Ive>I've isnt>isn't itd>it'd "
    "itd've>it'd've it'dve>it'd've itll>it'll let's>let's maam>ma'am mightnt>mightn't "
    "mightnt've>mightn't've mightn'tve>mightn't've mightve>might've mustnt>mustn't mustve>must've "
    "neednt>needn't notve>not've oclock>o'clock oughtnt>oughtn't ow's'at>'ow's'at 'ows'at>'ow's'at "
    "'ow'sat>'ow's'at shant>shan't shed've>she'd've she'dve>she'd've she's>she's shouldve>should've "
    "shouldnt>shouldn't shouldnt've>shouldn't've shouldn'tve>shouldn't've somebody'd>somebodyd "
    "somebodyd've>somebody'd've somebody'dve>somebody'd've somebodyll>somebody'll somebodys>somebody's "
    "someoned>someone'd someoned've>someone'd've someone'dve>someone'd've someonell>someone'll "
    "someones>someone's somethingd>something'd somethingd've>something'd've "
    "something'dve>something'd've somethingll>something'll thats>that's thered>there'd "
    "thered've>there'd've there'dve>there'd've therere>there're theres>there's theyd>they'd "
    "theyd've>they'd've they'dve>they'd've theyll>they'll theyre>they're theyve>they've twas>'twas "
    "wasnt>wasn't wed've>we'd've we'dve>we'd've weve>we've werent>weren't whatll>what'll "
    "whatre>what're whats>what's whatve>what've whens>when's whered>where'd wheres>where's "
    "whereve>where've whod>who'd whod've>who'd've who'dve>who'd've wholl>who'll whos>who's "
    "whove>who've whyll>why'll whyre>why're whys>why's wont>won't wouldve>would've wouldnt>wouldn't "
    "wouldnt've>wouldn't've wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll "
    "yall'd've>y'all'd've y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've "
    "you'dve>you'd've youll>you'll youre>you're youve>you've"
)
#: The official contraction table (note its own quirk: "somebody'd" -> "somebodyd").
CONTRACTIONS: dict[str, str] = dict(pair.split(">") for pair in _CONTRACTION_PAIRS.split())
NUMBER_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
              "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
#: Marks handled by the punctuation step (no period, apostrophe, colon: periods have their own rule).
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
               "@", "`", ",", "?", "!")
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")  # vqaEval.py
EVALAI_COMMA_STRIP = re.compile(r"(?<=\d)(\,)+(?=\d)")  # EvalAIAnswerProcessor (lmms-eval, m4c)
_OFFICIAL_SUB_COUNT = int(re.UNICODE)  # vqaEval.py passes re.UNICODE (== 32) as `count`


def process_punctuation(text: str, comma_strip: re.Pattern = COMMA_STRIP) -> str:
    out = text
    joined = re.search(comma_strip, text) is not None
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or joined:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out, _OFFICIAL_SUB_COUNT)


def process_digit_article(text: str) -> str:
    words = [NUMBER_MAP.get(w, w) for w in text.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def _clean_whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(text: str) -> str:
    """A predicted answer as the official vqaEval.py normalises it before matching."""
    return process_digit_article(process_punctuation(_clean_whitespace(text)))


def evalai_answer(text: str) -> str:
    """EvalAI's answer processor (m4c_evaluator.EvalAIAnswerProcessor.__call__)."""
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = _clean_whitespace(text)
    return process_digit_article(process_punctuation(text, EVALAI_COMMA_STRIP))


def _plain_mean(values: Sequence[float]) -> float:
    return float(sum(values)) / len(values)


def leave_one_out_accuracy(pred: str, gt_answers: Sequence[str],
                           mean: Callable[[Sequence[float]], float] = _plain_mean) -> float:
    """min(#other annotators agreeing / 3, 1) averaged over the leave-one-out subsets (exact string
    match; both sides already normalised). 0 when there are no ground-truth answers. `mean` is
    sum/len as in vqaEval.py; lmms-eval averages with statistics.mean (last-digit differences)."""
    n = len(gt_answers)
    if n == 0:
        return 0.0
    total_matches = sum(1 for a in gt_answers if a == pred)
    accs = []
    for a in gt_answers:
        others = total_matches - (1 if a == pred else 0)
        accs.append(min(1.0, others / 3))
    return float(mean(accs))


def vqa_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """The official VQA accuracy (vqaEval.py): the prediction fully normalised; ground-truth answers
    punctuation-processed only when they are not all identical."""
    gts = list(gt_answers)
    if len(set(gts)) > 1:
        gts = [process_punctuation(a) for a in gts]
    return leave_one_out_accuracy(normalize_answer(pred), gts)


def prismatic_vqav2_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """TRI vlm-evaluation's refactored VQAv2 scorer: prediction fully normalised, ground truth always
    punctuation-processed (no digit/article step, no 'all identical' exception)."""
    return leave_one_out_accuracy(normalize_answer(pred), [process_punctuation(a) for a in gt_answers])


def vizwiz_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """The VizWiz evaluation (vizwiz VQAEval, as in TRI vlm-evaluation): prediction fully normalised,
    ground-truth answers compared as given."""
    return leave_one_out_accuracy(normalize_answer(pred), list(gt_answers))


def m4c_accuracy(pred: str, gt_answers: Sequence[str], lmms_eval: bool = False) -> float:
    """TextVQA's m4c evaluator (LLaVA eval_textvqa, TRI textvqa) and lmms-eval's textvqa/vizwiz
    scoring: EvalAI processing on both sides, then leave-one-out VQA accuracy (averaged with
    statistics.mean when `lmms_eval`, as its process_results does)."""
    return leave_one_out_accuracy(evalai_answer(pred), [evalai_answer(a) for a in gt_answers],
                                  statistics.mean if lmms_eval else _plain_mean)


def lmms_eval_vqav2_answer(text: str) -> str:
    """lmms-eval vqav2's processing of one answer: whitespace, punctuation (EvalAI's comma rule),
    digits/articles/contractions; no lower-casing before punctuation, no "'s" split."""
    return process_digit_article(process_punctuation(_clean_whitespace(text), EVALAI_COMMA_STRIP))


def lmms_eval_vqav2_accuracy(pred: str, gt_answers: Sequence[str]) -> float:
    """lmms-eval's vqav2_process_results: both sides processed with `lmms_eval_vqav2_answer`."""
    return leave_one_out_accuracy(lmms_eval_vqav2_answer(pred), [lmms_eval_vqav2_answer(a) for a in gt_answers],
                                  statistics.mean)


def strip_punctuation_lower(text: str) -> str:
    """Lower-case and delete every character of string.punctuation."""
    return text.lower().translate(str.maketrans("", "", string.punctuation))
