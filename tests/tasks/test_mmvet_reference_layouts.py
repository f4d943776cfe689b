"""MM-Vet on LLaVA-1.5's folder: `llava-mm-vet.jsonl` joined to MM-Vet's `mm-vet.json` as
convert_mmvet_for_eval.py keys the answers (question_id 2 -> "v1_2"), prompts as LLaVA's file has them.

The question lines are copied from haotian-liu/LLaVA 32cebc38 (`playground/data/eval/mm-vet/
llava-mm-vet.jsonl`: int ids, category always "conv", question 2 on the image of question 1).
mm-vet.json (MM-Vet's release asset, in no repository) is written in its format with made-up answers
and capabilities.
"""

import json

import pytest

from mmeval.data.sources import task_data_dir
from mmeval.errors import DataError
from mmeval.scoring import sample_record
from mmeval.types import Prediction
from tasks.mmvet import LLAVA_QUESTIONS, MMVet
from tests.fake_judge import fake_endpoint

LINES = [
    '{"image": "v1_0.png", "text": "What is x in the equation?", "category": "conv", "question_id": 0}',
    '{"image": "v1_1.png", "text": "What is d in the last equation?", "category": "conv", "question_id": 1}',
    '{"image": "v1_1.png", "text": "What is x in the equation?", "category": "conv", "question_id": 2}',
]
META = {
    "v1_0": {"imagename": "v1_0.png", "capability": ["ocr", "math"], "question": "What is x in the equation?",
             "answer": "-1<AND><AND>-5"},
    "v1_1": {"imagename": "v1_1.png", "capability": ["ocr", "math"], "question": "What is d in the last equation?",
             "answer": "1.25=5/4"},
    "v1_2": {"imagename": "v1_1.png", "capability": ["rec", "ocr", "math"], "question": "What is x in the equation?",
             "answer": "0.5=1/2"},
}


@pytest.fixture(autouse=True)
def no_env_judge(monkeypatch):
    for k in ("MMEVAL_JUDGE_URL", "MMEVAL_JUDGE_MODEL", "MMEVAL_JUDGE_KEY"):
        monkeypatch.delenv(k, raising=False)


def write_bundle(root, name="mm-vet", meta=META):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / LLAVA_QUESTIONS).write_text("".join(line + "\n" for line in LINES))
    if meta is not None:
        (folder / "mm-vet.json").write_text(json.dumps(meta, indent=2))
    return folder


def test_bundle_prompts_and_grading(tmp_path):
    folder = write_bundle(tmp_path)
    task = MMVet()
    assert task_data_dir(task.name, tmp_path, task.data_folders) == folder  # mmvet.sh's folder name
    docs = task.load_docs(folder)
    assert [d.doc_id for d in docs] == ["v1_0", "v1_1", "v1_2"]
    assert str(docs[2].images[0].path) == str(folder / "images" / "v1_1.png")
    for doc, line in zip(docs, LINES, strict=True):
        q = json.loads(line)
        assert task.request(doc, "llava").prompt == q["text"]
        assert (doc.fields["llava_question_id"], doc.fields["llava_prompt"]) == (q["question_id"], q["text"])
    src = task.data_source
    assert (src.layout, src.version, src.questions) == ("llava-bundle", "llava-1.5-eval@32cebc38", 3)
    assert [f.name for f in src.files] == [LLAVA_QUESTIONS, "mm-vet.json"]

    grades = iter(["1.0", "0.5", "0.0"])
    with fake_endpoint(lambda body: next(grades)) as (url, seen):
        graded = MMVet(judge_url=url, judge_model="fake-grader", judge_cache=str(tmp_path / "cache"))
        records = [sample_record(graded, "llava", d, graded.request(d, "llava"), Prediction(text=f"answer {i}"))
                   for i, d in enumerate(docs)]
        records = graded.grade(records, {d.doc_id: d for d in docs}, "llava", lambda m: None)  # the judge asked here
        scores = [r.scores for r in records]
        assert "What is d in the last equation? | 1.25=5/4 | answer 1 |" in seen[1]["messages"][0]["content"]
    m = graded.aggregate(scores, "llava")
    # MM-Vet's grader: total = sum of scores / n; a capability over the samples that have it
    assert m["total"] == pytest.approx(100 * 1.5 / 3) and m["rec"] == 0.0 and m["ocr"] == pytest.approx(50.0)


def test_bundle_without_mm_vet_json(tmp_path):
    folder = write_bundle(tmp_path, meta=None)
    with pytest.raises(DataError) as err:
        MMVet().load_docs(folder)
    assert str(err.value) == (
        f"mmvet: {folder} has LLaVA's llava-mm-vet.jsonl but not mm-vet.json (MM-Vet's answers and capabilities), "
        "which MM-Vet's grader (mm-vet_evaluator.py) reads from ./playground/data/eval/mm-vet/mm-vet.json beside "
        "images/ (mm-vet.zip of github.com/yuweihao/MM-Vet/releases/download/v1; scripts/v1_5/eval/mmvet.sh)")


def test_bundle_other_release(tmp_path):
    meta = dict(META, v1_2=dict(META["v1_2"], imagename="v1_2.png"))
    with pytest.raises(DataError, match="llava-mm-vet.jsonl:3: image v1_1.png but .*mm-vet.json gives v1_2 the image "
                                        "v1_2.png: the files are from different releases"):
        MMVet().load_docs(write_bundle(tmp_path, "mmvet", meta))
    meta = {k: v for k, v in META.items() if k != "v1_1"}
    with pytest.raises(DataError, match="llava-mm-vet.jsonl:2: question_id 1 has no v1_1 in"):
        MMVet().load_docs(write_bundle(tmp_path / "b", "mmvet", meta))


def test_other_layouts_record_their_source(tmp_path):
    from tests.tasks.test_mmvet import mmvet_rows

    task = MMVet()
    task.load_docs(MMVet.write_layout(tmp_path / "official", mmvet_rows(), "official"))
    src = task.data_source
    assert (src.layout, src.version, src.questions) == ("official", "mm-vet@v1", 3)
    task.load_docs(MMVet.write_layout(tmp_path / "parquet", mmvet_rows(), "parquet"))
    assert (task.data_source.layout, task.data_source.questions) == ("lmms-lab-parquet", 3)
