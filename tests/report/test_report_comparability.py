"""comparability(paper, version, benchmark, result): what differs from the paper's data, split, protocol, prompt."""

from __future__ import annotations

import pytest

from mmeval.errors import UnknownNameError
from mmeval.report.comparability import comparability, paper_data, textvqa_prompt_order
from mmeval.report.loading import load_task_result
from tests.report._report_helpers import write_task

POPE_ORIGINAL = {"layout": "pope-original", "version": "pope-original@e3e3926", "split": "test",
                 "source": "/data/pope", "questions": 8910,
                 "questions_per_split": {"random": 2910, "popular": 3000, "adversarial": 3000}}
POPE_LMMS = {"layout": "lmms-lab-parquet", "version": "lmms-lab/POPE", "split": "test", "source": "lmms-lab/POPE",
             "questions": 9000}


def result(task, protocol, data=None, n=None, task_args=None, **extra):
    out = {"task": task, "protocol": protocol, "metrics": {"accuracy": 50.0}, "headline": "accuracy", **extra}
    if data is not None:
        out["data"] = data
        out["n"] = data.get("questions") if n is None else n
    elif n is not None:
        out["n"] = n
    if task_args is not None:
        out["task_args"] = task_args
    return out


def test_pope_original_is_comparable_for_both_papers():
    assert comparability("vl-mamba", None, "pope", result("pope", "llava", POPE_ORIGINAL)) == (True, [])
    assert comparability("cobra", "v4", "pope", result("pope", "prismatic", POPE_ORIGINAL)) == (True, [])
    assert comparability("cobra", "v1", "pope", result("pope", "prismatic", POPE_ORIGINAL)) == (True, [])
    # LLaVA's bundled question file is the same release
    llava = {**POPE_ORIGINAL, "layout": "llava-bundle", "version": "llava-1.5-eval@32cebc38"}
    assert comparability("vl-mamba", None, "pope", result("pope", "llava", llava)) == (True, [])


def test_pope_lmms_copy_says_what_differs():
    ok, reasons = comparability("vl-mamba", None, "pope", result("pope", "llava", POPE_LMMS))
    assert not ok
    assert reasons == ["POPE on lmms-lab/POPE (9,000 questions); the paper: POPE's original release "
                       "(AoiDragon/POPE@e3e3926, 8,910 questions)"]


def test_old_results_without_data_and_generated_data():
    assert comparability("cobra", None, "gqa", result("gqa", "prismatic", n=12578)) == (
        False, ["data source not recorded"])
    synth = {"layout": "lmms-lab-parquet", "version": "synthetic-pope@seed0", "split": "test", "questions": 90}
    ok, reasons = comparability("vl-mamba", None, "pope", result("pope", "llava", synth))
    assert not ok and reasons == ["generated data (synthetic-pope@seed0), not POPE"]


def test_protocol_split_and_partial_runs():
    gqa = {"version": "lmms-lab/GQA", "split": "testdev", "questions": 12578}
    ok, reasons = comparability("vl-mamba", None, "gqa", result("gqa", "lmms-eval", gqa))
    assert not ok and reasons == ["protocol lmms-eval; the paper's number uses llava (LLaVA-1.5's evaluation scripts)"]
    # --limit 100 (or errors): fewer questions scored than the data holds
    ok, reasons = comparability("vl-mamba", None, "gqa", result("gqa", "llava", gqa, n=100))
    assert not ok and reasons == ["100 of 12,578 questions scored"]
    assert comparability("vl-mamba", None, "gqa", result("gqa", "llava", {**gqa, "split": "testdev_balanced"})) == (
        True, [])
    # VQAv2: VL-Mamba reports test-dev (LLaVA's server submission), Cobra val through TRI's harness
    val = {"version": "lmms-lab/VQAv2", "split": "validation", "questions": 214354}
    ok, reasons = comparability("vl-mamba", None, "vqav2", result("vqav2", "llava", val))
    assert not ok and reasons == ["VQAv2 split validation; the paper: VQAv2 test-dev (107,394 questions), "
                                  "scored by the EvalAI server"]
    assert comparability("cobra", "v4", "vqav2", result("vqav2", "prismatic", val)) == (True, [])
    sub = {**val, "questions": 16384}
    assert comparability("cobra", "v4", "vqav2", result("vqav2", "prismatic", sub)) == (True, [])
    ok, reasons = comparability("cobra", "v4", "vqav2", result("vqav2", "prismatic", {**val, "questions": 1024}))
    assert not ok and reasons[0].startswith("VQAv2 with 1,024 questions; the paper: VQAv2 val")


def test_textvqa_prompt_order():
    tv = {"version": "textvqa-0.5.1", "split": "val", "questions": 5000}
    first = result("textvqa", "prismatic", tv, task_args={"ocr_order": "first"})
    last = result("textvqa", "prismatic", tv, task_args={"ocr": "true", "ocr_order": "last"})
    none = result("textvqa", "prismatic", tv, task_args={"ocr": "false"})
    unknown = result("textvqa", "prismatic", tv)
    assert [textvqa_prompt_order(r) for r in (first, last, none, unknown)] == [
        "ocr_first", "ocr_last", "wo_ocr_tokens", None]
    assert textvqa_prompt_order(result("textvqa", "lmms-eval", tv, task_args={})) == "wo_ocr_tokens"  # auto
    assert textvqa_prompt_order(result("textvqa", "llava", tv, task_args={})) == "ocr_last"
    # prismatic's default is Cobra's fork: the OCR tokens first
    assert textvqa_prompt_order(result("textvqa", "prismatic", tv, task_args={})) == "ocr_first"
    # Cobra v4 Table 2 prints the OCR-first number
    assert comparability("cobra", "v4", "textvqa", first) == (True, [])
    assert comparability("cobra", "v4", "textvqa", last) == (False, [
        "TextVQA with the OCR tokens after the question; the paper's number: the OCR tokens before the question"])
    ok, reasons = comparability("cobra", "v4", "textvqa", unknown)
    assert not ok and reasons[0].startswith("TextVQA prompt order not recorded")
    # Table 7's columns: each prompt order has its own paper number
    assert comparability("cobra", "v4", "textvqa_ocr_last", last) == (True, [])
    assert comparability("cobra", "v4", "textvqa_wo_ocr_tokens", none) == (True, [])
    # v1 does not say; VL-Mamba uses LLaVA's file (tokens after the question)
    ok, reasons = comparability("cobra", "v1", "textvqa", first)
    assert not ok and "does not state" in reasons[0]
    llava = result("textvqa", "llava", tv, task_args={"ocr": "auto"})
    assert comparability("vl-mamba", None, "textvqa", llava) == (True, [])


def test_unknown_benchmarks_versions_and_task_results(tmp_path):
    assert comparability("vl-mamba", None, "vizwiz", result("vizwiz", "llava")) == (
        False, ["vl-mamba (arxiv) reports no vizwiz number"])
    assert paper_data("cobra", None, "mme") is None and paper_data("cobra", "v1", "vsr").questions == (1222,)
    with pytest.raises(UnknownNameError, match="paper cobra has no version 'v2'; known: v4, v1"):
        comparability("cobra", "v2", "pope", result("pope", "prismatic", POPE_ORIGINAL))
    # a TaskResult read from disk works like the dict
    p = write_task(tmp_path, "run", "pope", protocol="prismatic")
    r = load_task_result(p)
    assert comparability("cobra", None, "pope", r) == (False, ["data source not recorded"])
    r.data.update(data=POPE_ORIGINAL, n=8910)
    assert comparability("cobra", None, "pope", r) == (True, [])
    ok, reasons = comparability("cobra", None, "pope", result("gqa", "prismatic", POPE_ORIGINAL))
    assert not ok and reasons[0] == "a result of task 'gqa', not pope"
