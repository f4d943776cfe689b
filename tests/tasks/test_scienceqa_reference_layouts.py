"""ScienceQA-IMG on LLaVA-1.5's bundle, in its real format, scored as eval_science_qa.py does.

The question-file entries and answer lines below are copied from haotian-liu/LLaVA 32cebc38
(`playground/data/eval/scienceqa/llava_test_CQM-A.json`, a JSON list written with indent=2, and the
released `answers/llava-v1.5-13b_output.jsonl`, whose `question`/`pred` are the answer file's
`prompt`/`text`): one text-only problem (not in the IMG subset), one with a "Context:" line, one with
four options that LLaVA-1.5-13B got wrong.
"""

import json

import pytest
from PIL import Image

from mmeval.data.provenance import file_sha256
from mmeval.data.sources import task_data_dir
from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.scienceqa_img import LLAVA_QUESTIONS, ScienceQAImg

ENTRIES = [
    '{"id": "4", "conversations": [{"from": "human", "value": "Which figure of speech is used in this text?\\nSing, O goddess, the anger of Achilles son of Peleus, that brought countless ills upon the Achaeans.\\n\\u2014Homer, The Iliad\\nA. chiasmus\\nB. apostrophe"}, {"from": "gpt", "value": "B"}]}',  # noqa: E501
    '{"id": "16436", "image": "16436/image.png", "conversations": [{"from": "human", "value": "<image>\\nWhich material is this hat made of?\\nA. wool\\nB. wood"}, {"from": "gpt", "value": "A"}]}',  # noqa: E501
    '{"id": "5474", "image": "5474/image.png", "conversations": [{"from": "human", "value": "<image>\\nContext: Select the better answer.\\nWhich property matches this object?\\nA. hard\\nB. soft"}, {"from": "gpt", "value": "B"}]}',  # noqa: E501
    '{"id": "15541", "image": "15541/image.png", "conversations": [{"from": "human", "value": "<image>\\nWhich country is highlighted?\\nA. Tonga\\nB. Fiji\\nC. Nauru\\nD. Samoa"}, {"from": "gpt", "value": "D"}]}',  # noqa: E501
]
ANSWERS = [
    '{"question_id": "16436", "prompt": "<image>\\nWhich material is this hat made of?\\nA. wool\\nB. wood\\nAnswer with the option\'s letter from the given choices directly.", "text": "A"}',  # noqa: E501
    '{"question_id": "5474", "prompt": "<image>\\nContext: Select the better answer.\\nWhich property matches this object?\\nA. hard\\nB. soft\\nAnswer with the option\'s letter from the given choices directly.", "text": "B"}',  # noqa: E501
    '{"question_id": "15541", "prompt": "<image>\\nWhich country is highlighted?\\nA. Tonga\\nB. Fiji\\nC. Nauru\\nD. Samoa\\nAnswer with the option\'s letter from the given choices directly.", "text": "A"}',  # noqa: E501
]


def write_bundle(root, entries=ENTRIES):
    folder = root / "scienceqa"
    folder.mkdir(parents=True)
    (folder / LLAVA_QUESTIONS).write_text(json.dumps([json.loads(e) for e in entries], indent=2))
    return folder


def test_bundle_prompts_are_llavas_character_for_character(tmp_path):
    folder = write_bundle(tmp_path)
    task = ScienceQAImg()
    assert task_data_dir(task.name, tmp_path, task.data_folders) == folder  # LLaVA's folder name
    docs = task.load_docs(folder)
    assert [d.doc_id for d in docs] == ["16436", "5474", "15541"]  # "4" has no image
    assert [d.target for d in docs] == ["A", "B", "D"]
    assert docs[2].fields["choices"] == ["Tonga", "Fiji", "Nauru", "Samoa"]
    assert str(docs[0].images[0].path) == str(folder / "images" / "test" / "16436" / "image.png")
    for doc, line in zip(docs, ANSWERS, strict=True):
        answer = json.loads(line)
        assert doc.fields["llava_question_id"] == answer["question_id"]
        assert doc.fields["llava_prompt"] == answer["prompt"]
        for protocol in ("llava", "lmms-eval"):
            assert "<image>\n" + task.request(doc, protocol).prompt == answer["prompt"]
    assert [task.request(d, "llava").generation.max_new_tokens for d in docs] == [1024] * 3


def test_bundle_scoring_as_eval_science_qa(tmp_path):
    task = ScienceQAImg()
    docs = task.load_docs(write_bundle(tmp_path))
    released = {json.loads(line)["question_id"]: json.loads(line)["text"] for line in ANSWERS}
    scores = [task.score(d, Prediction(text=released[d.doc_id]), "llava") for d in docs]
    # eval_science_qa.py: 16436 'A' = A, 5474 'B' = B, 15541 'A' != D -> IMG-Accuracy 2/3
    assert [s["pred"] for s in scores] == ["A", "B", "A"]
    m = task.aggregate(scores, "llava")
    assert m["accuracy"] == pytest.approx(200 / 3) and m["img"] == pytest.approx(200 / 3)
    assert m["txt"] == 100.0  # 5474 has a Context line
    assert "nat" not in m  # no problems.json: subject and grade unknown

    # eval_science_qa.py's rules on other outputs for 15541 (four options, answer D)
    cases = {"D": 1.0, "D. Samoa": 1.0, "The answer is D.": 1.0, "The answer is D": 0.0,  # the pattern wants a
             "E": 0.0, "The answer is A. The answer is D.": 0.0, "D.Samoa": 0.0, " D\n": 1.0}  # character after D
    got = {text: task.score(docs[2], Prediction(text=text), "llava")["correct"] for text in cases}
    assert got == cases


def test_bundle_with_problems_json(tmp_path):
    """LLaVA's folder after Evaluation.md's download: problems.json + pid_splits.json beside the
    question file; eval_science_qa.py reads choices and answer from problems.json."""
    rows = [dict(pid="16436", question="Which material is this hat made of?", choices=["wool", "wood"], answer=0,
                 hint="", subject="natural science", grade="grade2", image=Image.new("RGB", (4, 4))),
            dict(pid="5474", question="Which property matches this object?", choices=["hard", "soft"], answer=1,
                 hint="Select the better answer.", subject="natural science", grade="grade8",
                 image=Image.new("RGB", (4, 4))),
            dict(pid="4", question="Which figure of speech is used in this text?", choices=["chiasmus", "apostrophe"],
                 answer=1, hint="", subject="language science", grade="grade9", image=None)]
    folder = tmp_path / "scienceqa"
    ScienceQAImg.write_layout(folder, rows, "official")
    ScienceQAImg.write_layout(folder, rows, "llava")
    entries = json.loads((folder / LLAVA_QUESTIONS).read_text())
    assert json.dumps(entries[1]) == ENTRIES[2]  # the writer writes LLaVA's format
    assert (folder / LLAVA_QUESTIONS).read_text() == json.dumps(entries, indent=2)
    task = ScienceQAImg()
    docs = task.load_docs(folder)
    assert [d.doc_id for d in docs] == ["16436", "5474"]
    assert docs[0].images[0].load().size == (4, 4)
    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == ("llava-bundle", "llava-1.5-eval@32cebc38", "test", 2)
    assert [(f.name, f.sha256) for f in src.files] == [(LLAVA_QUESTIONS, file_sha256(folder / LLAVA_QUESTIONS)),
                                                      ("problems.json", file_sha256(folder / "problems.json"))]
    scores = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, ["A", "A"], strict=True)]
    m = task.aggregate(scores, "llava")
    assert (m["accuracy"], m["nat"], m["g1_6"], m["g7_12"], m["txt"]) == (50.0, 50.0, 100.0, 0.0, 0.0)

    problems = json.loads((folder / "problems.json").read_text())
    problems["5474"]["answer"] = 0
    (folder / "problems.json").write_text(json.dumps(problems))
    with pytest.raises(DataError, match="problem 5474: .* answer B of 2 options, problems.json answer A of 2: "
                                        "the files are from different releases"):
        task.load_docs(folder)


def test_other_layouts_record_their_source(tmp_path):
    rows = [dict(pid="7", question="Q?", choices=["a", "b"], answer=1, hint="", image=Image.new("RGB", (4, 4)))]
    task = ScienceQAImg()
    task.load_docs(ScienceQAImg.write_layout(tmp_path / "official", rows, "official"))
    assert (task.data_source.layout, task.data_source.version, task.data_source.questions) == \
        ("official", "scienceqa-lupantech", 1)
    assert [f.name for f in task.data_source.files] == ["pid_splits.json", "problems.json"]
    rows.append(dict(rows[0], pid="8", image=None))
    task.load_docs(ScienceQAImg.write_layout(tmp_path / "parquet", rows, "parquet"))
    assert task.data_source.layout == "lmms-lab-parquet" and task.data_source.questions == 1  # the IMG subset


def test_bundle_bad_entries(tmp_path):
    bad = json.loads(ENTRIES[1])
    bad["conversations"][0]["value"] = "<image>\nWhich material is this hat made of? wool or wood"
    with pytest.raises(DataError, match="question 16436 does not end with lettered options"):
        ScienceQAImg().load_docs(write_bundle(tmp_path / "a", [json.dumps(bad)]))
    bad = json.loads(ENTRIES[1])
    bad["conversations"][1]["value"] = "The answer is A."
    with pytest.raises(DataError, match="question 16436: the gpt turn 'The answer is A.' is not an option letter"):
        ScienceQAImg().load_docs(write_bundle(tmp_path / "b", [json.dumps(bad)]))
    with pytest.raises(DataError, match="no question with an image"):
        ScienceQAImg().load_docs(write_bundle(tmp_path / "c", ENTRIES[:1]))


def test_score_with_llavas_eval_folder_as_data(tmp_path):
    """`--data` = LLaVA's playground/data/eval as it is: the task finds its `scienceqa/` folder."""
    from click.testing import CliRunner

    from mmeval.cli import main

    write_bundle(tmp_path / "eval")
    preds = tmp_path / "preds.jsonl"
    released = [json.loads(line) for line in ANSWERS]
    preds.write_text("".join(json.dumps({"doc_id": a["question_id"], "prediction": a["text"]}) + "\n"
                             for a in released))
    out = tmp_path / "summary.json"
    r = CliRunner().invoke(main, ["score", "--task", "scienceqa_img", "--predictions", str(preds), "--data",
                                  str(tmp_path / "eval"), "--output", str(out), "--bootstrap", "50"])
    assert r.exit_code == 0, r.output
    summary = json.loads(out.read_text())
    assert summary["metrics"]["accuracy"] == pytest.approx(200 / 3)
    data = summary["data"]
    assert (data["layout"], data["source"]) == ("llava-bundle", str(tmp_path / "eval" / "scienceqa"))
