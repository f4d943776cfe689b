"""Differential tests: our `lmms-eval` protocol against lmms-eval's own task functions
(ScienceQA-IMG, MME, MMBench, MM-Vet) on the same documents and predictions: the same prompts and
the same scores, to the last digit. Judge calls go to a local fake endpoint on our side and to a
patched get_chat_response on lmms-eval's side, both returning the same canned replies."""

from __future__ import annotations

import re

import pytest

from mmeval.scoring import sample_record
from mmeval.types import ImageRef, Prediction
from tasks.mmbench import MMBench
from tasks.mme import MME
from tasks.mmvet import MMVet
from tasks.scienceqa_img import ScienceQAImg
from tests.fake_judge import fake_endpoint

IMG = ImageRef(source="unused")


@pytest.fixture(autouse=True)
def no_env_judge(monkeypatch):
    for k in ("MMEVAL_JUDGE_URL", "MMEVAL_JUDGE_MODEL", "MMEVAL_JUDGE_KEY"):
        monkeypatch.delenv(k, raising=False)




SQA_POST = {
    "format": "default",
    "pre_prompt": "",
    "post_prompt": "\nAnswer with the option's letter from the given choices directly.",
}


def test_scienceqa_img():
    from lmms_eval.tasks.scienceqa import utils as u

    raw = [dict(question="Which is a mammal?", choices=["frog", "dog", "snake"], answer=1, hint="Look.",
                subject="natural science", grade="grade3"),
           dict(question="Which is north?", choices=["Ohio", "Texas"], answer=0, hint="",
                subject="social science", grade="grade8")]
    preds = ["B", "b", " B ", "B. dog", "b. dog", "The answer is B", "A", "A.", "a", "Ohio", "", "BB"]
    task = ScienceQAImg()
    ours, theirs = [], []
    for i, r in enumerate(raw):
        doc = ScienceQAImg._doc(str(i), r, IMG)
        assert task.request(doc, "lmms-eval").prompt == u.sqa_doc_to_text(r, SQA_POST)
        assert doc.target == u.sqa_doc_to_target(r)
        for p in preds:
            ours.append(task.score(doc, Prediction(text=p), "lmms-eval")["correct"])
            theirs.append(u.sqa_process_results(r, [p])["exact_match"])
    assert ours == theirs and 0 < sum(ours) < len(ours)
    ours_acc = task.aggregate(
        [{"correct": c, "subject": "", "grade": "", "has_text": False} for c in ours], "lmms-eval"
    )
    assert ours_acc["accuracy"] == 100.0 * sum(theirs) / len(theirs)


def test_mme():
    from lmms_eval.tasks.mme import utils as u

    cats = ["existence", "count", "OCR", "code_reasoning", "text_translation"]
    preds = ["Yes", "No.", "y", "N", "maybe", "Yes, it is", "no way", "Not sure", "YES.", "nope"]
    raw, k = [], 0
    for c in cats:
        for img in range(3):
            for ans in ("Yes", "No"):
                raw.append(dict(question_id=f"{c}/{img:03d}.png", category=c, answer=ans,
                                question=f"Is it {ans} {k}? Please answer yes or no."))
                k += 1
    task = MME()
    ours, per_kind = [], {"mme_perception_score": [], "mme_cognition_score": []}
    for i, r in enumerate(raw):
        doc = MME._doc(r["question_id"], i % 2, r["category"], r["question"], r["answer"], IMG)
        kw = {"pre_prompt": "", "post_prompt": "\nAnswer the question using a single word or phrase."}
        assert task.request(doc, "lmms-eval").prompt == u.mme_doc_to_text(r, kw)
        pred = preds[(i * 7) % len(preds)]
        ours.append(task.score(doc, Prediction(text=pred), "lmms-eval"))
        ((key, value),) = u.mme_process_results(r, [pred]).items()
        per_kind[key].append(value)
    m = task.aggregate(ours, "lmms-eval")
    assert m["perception"] == u.mme_aggregate_results(per_kind["mme_perception_score"])
    assert m["cognition"] == u.mme_aggregate_results(per_kind["mme_cognition_score"])
    assert 0 < m["perception"] < 600


def mmbench_raw():
    rows = []
    base = [dict(index=1, question="What animal is shown?", hint="A farm photo.", A="cow", B="horse", C="cat", D="pig",
                 answer="C", category="object_localization", **{"L2-category": "FP-S"}),
            dict(index=2, question="What color is the sky?", hint="nan", A="blue", B="red", C="green", D=None,
                 answer="A", category="attribute_recognition", **{"L2-category": "FP-S"}),
            dict(index=3, question="Which pet is this?", hint=None, A="dog", B="cat", C=None, D=None,
                 answer="B", category="attribute_recognition", **{"L2-category": "FP-C"}),
            dict(index=4, question="Where is it?", hint=None, A="beach", B="forest", C=None, D=None,
                 answer="A", category="scene", **{"L2-category": "CP"})]
    for r in base:
        for rot in MMBench.rotations(r):
            rot.update(source="synthetic", split="dev")
            rows.append(rot)
    return rows


def mmbench_pred(r):
    i, ans = r["index"], r["answer"]
    if i == 2_000_002:
        return "B" if ans != "B" else "A"
    if i % 1_000_000 == 3:
        return "it is a small kitten"  # needs the judge
    if i % 1_000_000 == 4:
        return ["(A) or so", f"I pick {ans}.", "beach", f"{ans}: yes"][i // 1_000_000 % 4]
    return [ans, f"The answer is {ans}.", f"({ans})", f"Option {ans}"][i // 1_000_000 % 4]


def judge_reply(prompt):
    m = re.search(r"\n([A-E])\. cat\n", prompt.split("Example 3:")[1])
    return m.group(1) if m else "E"


def test_mmbench(tmp_path, monkeypatch):
    from lmms_eval.tasks.mmbench import en_utils as u

    post = {"post_prompt": "Answer with the option's letter from the given choices directly."}
    raw = mmbench_raw()
    task_plain = MMBench()
    with fake_endpoint(lambda body: judge_reply(body["messages"][0]["content"])) as (url, seen):
        task = MMBench(judge_url=url, judge_model="fake", judge_cache=str(tmp_path))
        ours, results = [], []
        for r in raw:
            doc = MMBench._doc(r, IMG)
            assert task.request(doc, "lmms-eval").prompt == u.mmbench_doc_to_text(r, post)
            pred = mmbench_pred(r)
            ours.append(task.score(doc, Prediction(text=pred), "lmms-eval"))
            results.append(u.mmbench_process_results(r, [pred])["gpt_eval_score"])
        assert seen  # the free-form answers went to the judge

    their_prompts = []

    def fake_chat(prompt, *args, **kwargs):
        their_prompts.append(prompt)
        return judge_reply(prompt)

    monkeypatch.setattr(u.mmbench_evaluator, "get_chat_response", fake_chat)
    overall, by_cat, by_l2 = u.mmbench_evaluator.eval_result(results, eval_method="openai")
    m = task.aggregate(ours, "lmms-eval")
    assert m["circular_accuracy"] == overall * 100
    for cat, v in by_cat.items():
        assert m[f"category/{cat}"] == v * 100
    for cat, v in by_l2.items():
        assert m[f"l2/{cat}"] == v * 100
    assert 0 < overall < 1 and their_prompts
    # our judge saw exactly the prompts lmms-eval would send (for the rows it asked about)
    assert set(their_prompts) <= {b["messages"][0]["content"] for b in seen}
    # without a judge the free-form answers count as wrong: question 3 is lost
    plain = task_plain.aggregate([task_plain.score(MMBench._doc(r, IMG), Prediction(text=mmbench_pred(r)), "lmms-eval")
                                  for r in raw], "lmms-eval")
    assert plain["circular_accuracy"] < m["circular_accuracy"]


def test_mmvet(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")  # lmms-eval builds its judge client at import
    from lmms_eval.tasks.mmvet import utils as u

    raw = [dict(question_id="v1_0", question="What number?", answer="42", capability="ocr,rec"),
           dict(question_id="v1_1", question="Sum?", answer="3<OR>three", capability="ocr,math"),
           dict(question_id="v1_2", question="Which cars?", answer="red<AND>blue", capability="rec,spat,know"),
           dict(question_id="v1_3", question="Explain.", answer="It is funny.", capability="rec,gen,know")]
    preds = ["42", "three", "red", "It is a joke."]
    canned = {"42": "1.0", "three": "1.0", "red": "0.5 because blue is missing", "It is a joke.": "0.4"}

    def reply(prompt):
        return canned[[c.strip() for c in prompt.rstrip().splitlines()[-1].split("|")][2]]

    their_prompts = []

    def fake_chat(prompt, *args, **kwargs):
        their_prompts.append(prompt)
        return reply(prompt), "fake"

    monkeypatch.setattr(u, "get_chat_response", fake_chat)
    with fake_endpoint(lambda body: reply(body["messages"][0]["content"])) as (url, seen):
        task = MMVet(judge_url=url, judge_model="fake", judge_cache=str(tmp_path))
        records, docs, theirs = [], {}, []
        for r, p in zip(raw, preds, strict=True):
            doc = docs[r["question_id"]] = MMVet._doc(r["question_id"], r, IMG)
            kw = {"pre_prompt": "First please perform reasoning, and think step by step to provide best answer to "
                                "the following question: \n\n", "post_prompt": ""}
            assert task.request(doc, "lmms-eval").prompt == u.doc_to_text(r, kw)
            records.append(sample_record(task, "lmms-eval", doc, task.request(doc, "lmms-eval"), Prediction(text=p)))
            theirs.append(u.mmvet_process_results(r, [p])["gpt_eval_score"])
        ours = [rec.scores for rec in task.grade(records, docs, "lmms-eval", lambda m: None)]  # the judge asked here
        assert [b["messages"][0]["content"] for b in seen] == their_prompts
    assert [s["score"] for s in ours] == [t["score"] for t in theirs]
    assert task.aggregate(ours, "lmms-eval")["total"] == u.mmvet_aggregate_results(theirs)
