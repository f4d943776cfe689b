"""Is a measured number comparable with a paper's?  What each paper's number was computed on.

A measured cell sits beside a published one as comparable only when it was computed under the
paper's protocol, on the paper's split and on the paper's release of the data (and, for TextVQA, with
the paper's prompt order).  ``PAPER_DATA`` says, per paper version and benchmark, what the paper's
number was computed on; ``comparability`` compares a result file with it and returns the reasons
it differs, worded for a footnote.  Result files record their data under the top-level key ``data``
(layout, version, split, questions, ...); files without it get "data source not recorded".

Benchmarks are our task names; a task's variants have their own keys (``textvqa_ocr_last``: Cobra's
Table 7 columns).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmeval.report.published import paper_key, resolve_version

PROTOCOL_WORDS = {
    "llava": "LLaVA-1.5's evaluation scripts",
    "prismatic": "TRI's vlm-evaluation",
    "lmms-eval": "lmms-eval's task definitions",
}

#: TextVQA prompt orders, named as Cobra's Table 7 columns.
ORDER_WORDS = {
    "ocr_first": "the OCR tokens before the question",
    "ocr_last": "the OCR tokens after the question",
    "wo_ocr_tokens": "no OCR tokens",
}
NOT_STATED = None  # PaperData.prompt_order when the paper does not say


@dataclass(frozen=True)
class PaperData:
    """What one published number was computed on."""

    name: str  # the benchmark as printed ("POPE")
    task: str  # our task
    protocol: str  # our protocol that reproduces the paper's prompts and scoring
    described: str  # the paper's data in words, for footnotes
    splits: tuple[str, ...] = ()  # accepted data.split values, normalised (empty: not checked)
    questions: tuple[int, ...] = ()  # accepted question counts (empty: not checked)
    versions: tuple[str, ...] = ()  # accepted data.version prefixes (empty: any real release of the split)
    prompt_order: str | None = ""  # TextVQA: a key of ORDER_WORDS; NOT_STATED; "" = not applicable


# -- VL-Mamba: its numbers are LLaVA-1.5's benchmarks scored the LLaVA-1.5 way (protocol `llava`,
#    results/published/vl_mamba.json); what those scripts run is haotian-liu/LLaVA docs/Evaluation.md
#    and scripts/v1_5/eval/*.sh:
_LLAVA = {
    # vqav2.sh: llava_vqav2_mscoco_test-dev2015.jsonl, convert_vqav2_for_submission.py -> EvalAI
    "vqav2": PaperData("VQAv2", "vqav2", "llava", "VQAv2 test-dev (107,394 questions), scored by the EvalAI server",
                       splits=("testdev", "test_dev2015", "testdev2015"), questions=(107394,)),
    # gqa.sh: llava_gqa_testdev_balanced.jsonl, the official eval.py
    "gqa": PaperData("GQA", "gqa", "llava", "GQA test-dev balanced (12,578 questions)",
                     splits=("testdev", "testdev_balanced"), questions=(12578,)),
    # sqa.sh: llava_test_CQM-A.json, the IMG accuracy of eval_science_qa.py
    "scienceqa_img": PaperData("ScienceQA-IMG", "scienceqa_img", "llava",
                               "ScienceQA test, the 2,017 questions with an image", splits=("test",),
                               questions=(2017,)),
    # textvqa.sh: llava_textvqa_val_v051_ocr.jsonl ("<question>\nReference OCR token: ...")
    "textvqa": PaperData("TextVQA", "textvqa", "llava",
                         "TextVQA val (5,000 questions) with LLaVA's OCR-token prompt (tokens after the question)",
                         splits=("val", "validation"), questions=(5000,), prompt_order="ocr_last"),
    # Evaluation.md: "Download coco from POPE (tree/e3e39262...)"; llava_pope_test.jsonl holds the
    # same 8,910 questions (random 2,910, popular 3,000, adversarial 3,000)
    "pope": PaperData("POPE", "pope", "llava", "POPE's original release (AoiDragon/POPE@e3e3926, 8,910 questions)",
                      questions=(8910,), versions=("pope-original@e3e3926", "llava-1.5-eval")),
    # mme.sh: llava_mme.jsonl, the MME eval_tool (perception = 10 subtasks); 2,374 questions in all
    "mme": PaperData("MME", "mme", "llava", "MME (2,374 questions), perception score", questions=(2374,)),
    # mmbench.sh: mmbench_dev_20230712.tsv, answers uploaded to the OpenCompass server (CircularEval);
    # the question count is not checked: layouts count rotations differently
    "mmbench": PaperData("MMBench", "mmbench", "llava", "MMBench dev (mmbench_dev_20230712), CircularEval",
                         splits=("dev",)),
    # mmvet.sh: llava-mm-vet.jsonl -> the official MM-Vet grader (GPT-4)
    "mmvet": PaperData("MM-Vet", "mmvet", "llava", "MM-Vet (218 questions) graded by GPT-4", questions=(218,)),
}

# -- Cobra: evaluated with TRI's vlm-evaluation (Cobra's README; h-zhao1997/vlm-evaluation is its
#    fork). Splits and counts: TRI-ML/vlm-evaluation vlm_eval/conf/datasets.py (the *-full variants)
#    and vlm_eval/tasks/registry.py (download URLs).
_POPE_ORIGINAL = PaperData(
    "POPE", "pope", "prismatic", "POPE's original release (AoiDragon/POPE@e3e3926, 8,910 questions)",
    # registry.py downloads coco_pope_{adversarial,popular,random}.json at commit e3e39262;
    # harnesses/pope.py expects 3,000 / 3,000 / 2,910 of them (datasets.py's "9000" comment is stale)
    questions=(8910,), versions=("pope-original@e3e3926", "llava-1.5-eval"))


def _cobra(textvqa_order: str | None) -> dict[str, PaperData]:
    tv = "TextVQA val (5,000 questions) with "
    return {
        # VQAv2FullDatasetConfig: split val, 214,354; VQAv2SubSampledDatasetConfig: 16,384 of them.
        # Cobra does not say which one it scored.
        "vqav2": PaperData("VQAv2", "vqav2", "prismatic",
                           "VQAv2 val (214,354 questions, or vlm-evaluation's 16,384 subsample)",
                           splits=("val", "validation"), questions=(214354, 16384)),
        # GQAFullDatasetConfig: testdev_balanced, 12,578
        "gqa": PaperData("GQA", "gqa", "prismatic", "GQA test-dev balanced (12,578 questions)",
                         splits=("testdev", "testdev_balanced"), questions=(12578,)),
        # VizWizFullDatasetConfig: val, 4,319
        "vizwiz": PaperData("VizWiz", "vizwiz", "prismatic", "VizWiz val (4,319 questions)",
                            splits=("val", "validation"), questions=(4319,)),
        # TextVQAFull(OCR)DatasetConfig: val, 5,000; the prompt order: Cobra v4 Table 7
        "textvqa": PaperData("TextVQA", "textvqa", "prismatic",
                             tv + (ORDER_WORDS[textvqa_order] if textvqa_order else "a prompt order the paper does "
                                   "not state"), splits=("val", "validation"), questions=(5000,),
                             prompt_order=textvqa_order),
        # VSRFullDatasetConfig: the zero-shot test split, 1,222
        "vsr": PaperData("VSR", "vsr", "prismatic", "VSR zero-shot test (1,222 captions)",
                         splits=("test", "zeroshot_test"), questions=(1222,)),
        "pope": _POPE_ORIGINAL,
    }


def _cobra_table7() -> dict[str, PaperData]:
    """Cobra v4 Table 7: TextVQA under each prompt order."""
    return {f"textvqa_{order}": PaperData("TextVQA", "textvqa", "prismatic",
                                         f"TextVQA val (5,000 questions) with {words}", splits=("val", "validation"),
                                         questions=(5000,), prompt_order=order)
            for order, words in ORDER_WORDS.items()}


#: (paper, version) -> benchmark -> what the paper's number was computed on.
PAPER_DATA: dict[tuple[str, str], dict[str, PaperData]] = {
    ("vl-mamba", "arxiv"): _LLAVA,
    # v1 predates the prompt-format fix and does not say where its TextVQA prompt put the OCR tokens
    ("cobra", "v1"): _cobra(NOT_STATED),
    # v4 Table 2/5 print Cobra's OCR-first number (Table 7: 58.2 first, 43.0 last, 47.9 without)
    ("cobra", "v4"): {**_cobra("ocr_first"), **_cobra_table7()},
}


def paper_data(paper: str, version: str | None, benchmark: str) -> PaperData | None:
    """What the paper's number for ``benchmark`` was computed on (None: the paper reports none)."""
    key = paper_key(paper)
    return PAPER_DATA[(key, resolve_version(key, version))].get(benchmark)


# --------------------------------------------------------------------------- reading a result
def _as_dict(result: Any) -> Mapping[str, Any]:
    data = getattr(result, "data", result)  # a loading.TaskResult or the JSON dict itself
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a task result (dict or TaskResult), got {type(result).__name__}")
    return data


def task_options(result: Any) -> dict[str, str] | None:
    """The task options the result was computed with (its ``task_args``), or None when not recorded."""
    opts = _as_dict(result).get("task_args")
    return {str(k): str(v) for k, v in opts.items()} if isinstance(opts, Mapping) else None


def textvqa_prompt_order(result: Any) -> str | None:
    """Where a TextVQA result's prompt put the OCR tokens: a key of ORDER_WORDS, None if not recorded.

    From the task options as tasks/textvqa.py reads them: ``ocr=false`` -> no tokens; ``ocr=auto``
    (the default) follows the protocol (off for lmms-eval); with tokens, ``ocr_order=first|last``
    says where, and its default (``auto``) is first under prismatic (Cobra's fork of vlm-evaluation)
    and after the question otherwise (LLaVA's question file, TRI's original).
    """
    opts = task_options(result)
    if opts is None:
        return None
    protocol = _as_dict(result).get("protocol")
    ocr = opts.get("ocr", "auto").strip().lower()
    if ocr == "auto":
        ocr = "false" if protocol == "lmms-eval" else "true"
    if ocr in ("false", "0", "no"):
        return "wo_ocr_tokens"
    order = opts.get("ocr_order", "auto").strip().lower()
    if order == "auto":
        order = "first" if protocol == "prismatic" else "last"
    return "ocr_first" if order == "first" else "ocr_last"


def _norm_split(split: Any) -> str:
    return str(split).strip().lower().replace("-", "_")


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


# --------------------------------------------------------------------------- the check
def comparability(paper: str, version: str | None, benchmark: str, result: Any) -> tuple[bool, list[str]]:
    """Whether ``result`` (a task result: dict or TaskResult) is comparable with the paper's number
    for ``benchmark`` under that paper version, and the reasons it is not (footnote text)."""
    want = paper_data(paper, version, benchmark)
    key = paper_key(paper)
    if want is None:
        return False, [f"{key} ({resolve_version(key, version)}) reports no {benchmark} number"]
    res = _as_dict(result)
    reasons: list[str] = []
    if res.get("task") != want.task:
        reasons.append(f"a result of task {res.get('task')!r}, not {want.task}")
    protocol = res.get("protocol") or ""
    if protocol != want.protocol:
        reasons.append(f"protocol {protocol or 'not recorded'}; the paper's number uses {want.protocol} "
                       f"({PROTOCOL_WORDS.get(want.protocol, want.protocol)})")
    reasons += _data_reasons(want, res)
    reasons += _prompt_reasons(want, res)
    return not reasons, reasons


def _data_reasons(want: PaperData, res: Mapping[str, Any]) -> list[str]:
    data = res.get("data")
    if not isinstance(data, Mapping):
        return ["data source not recorded"]
    version = str(data.get("version") or "")
    where = version or str(data.get("source") or data.get("layout") or "an unnamed copy")
    if version.startswith("synthetic") or data.get("layout") == "synthetic":
        return [f"generated data ({where}), not {want.name}"]
    split = data.get("split")
    if want.splits and (split is None or _norm_split(split) not in want.splits):
        return [f"{want.name} split {split or 'not recorded'}; the paper: {want.described}"]  # counts follow
    out = []
    questions = data.get("questions")
    if want.versions and not any(version.startswith(v) for v in want.versions):
        size = f" ({_count(questions)} questions)" if questions is not None else ""
        out.append(f"{want.name} on {where}{size}; the paper: {want.described}")
    elif want.questions and questions is not None and questions not in want.questions:
        out.append(f"{want.name} with {_count(questions)} questions; the paper: {want.described}")
    n = res.get("n")
    if want.questions and isinstance(n, int) and n not in want.questions and (questions is None or n < questions):
        total = questions if questions is not None else want.questions[0]
        out.append(f"{_count(n)} of {_count(total)} questions scored")
    return out


def _prompt_reasons(want: PaperData, res: Mapping[str, Any]) -> list[str]:
    if want.prompt_order == "":
        return []
    if want.prompt_order is NOT_STATED:
        return [f"the paper does not state its {want.name} prompt order (Cobra v4 Table 7: 15 points apart)"]
    got = textvqa_prompt_order(res)
    if got is None:
        return [f"{want.name} prompt order not recorded (no task_args in the result); "
                f"the paper's number: {ORDER_WORDS[want.prompt_order]}"]
    if got != want.prompt_order:
        return [f"{want.name} with {ORDER_WORDS[got]}; the paper's number: {ORDER_WORDS[want.prompt_order]}"]
    return []
