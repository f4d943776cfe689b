"""VQAv2, VizWiz and GQA on LLaVA-1.5's evaluation bundle (`playground/data/eval/<task>/` as it is).

VizWiz and GQA lines are copied from haotian-liu/LLaVA 32cebc38 (`vizwiz/llava_test.jsonl`,
`vizwiz/answers/llava-v1.5-13b.jsonl`, the released `vizwiz/answers_upload/llava-v1.5-13b.json`;
`gqa/llava_gqa_testdev_balanced.jsonl`); VQAv2's question files are absent from that snapshot (over 4
MiB), so its lines follow the format of the first test-dev line (spec A.7) with made-up questions.
"""

import json

import pytest

from mmeval.data.sources import task_data_dir
from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.gqa import GQA
from tasks.vizwiz import VizWiz
from tasks.vqav2 import VQAv2

SHORT = "\nAnswer the question using a single word or phrase."
UNSURE = "\nWhen the provided information is insufficient, respond with 'Unanswerable'." + SHORT


def write(folder, name, lines):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(line) + "\n" for line in lines))


def load(task, root, protocol=None):
    if protocol:
        task.use_protocol(protocol)
    return task.load_docs(task_data_dir(task.name, root, task.data_folders))


# ------------------------------------------------------------------------------------------ VQAv2
def vqa_q(qid, text):
    return {"question_id": qid, "image": f"COCO_test2015_{qid // 1000:012d}.jpg", "text": text + SHORT,
            "category": "default"}


TESTDEV = [vqa_q(262144000, "Is the ball flying towards the batter?"), vqa_q(262144005, "How many dogs are there?")]
TEST2015 = [TESTDEV[0], vqa_q(262144001, "What is the man holding?"), TESTDEV[1], vqa_q(393225000, "Is it sunny?")]


def test_vqav2_llava_bundle_writes_what_convert_vqav2_writes(tmp_path):
    write(tmp_path / "vqav2", "llava_vqav2_mscoco_test-dev2015.jsonl", TESTDEV)
    write(tmp_path / "vqav2", "llava_vqav2_mscoco_test2015.jsonl", TEST2015)
    task = VQAv2()
    docs = load(task, tmp_path, "llava")
    assert task.split == "testdev" and [d.doc_id for d in docs] == ["262144000", "262144005"]
    assert docs[0].fields["image_id"] == "262144" and docs[0].images[0].path.endswith(
        "vqav2/test2015/COCO_test2015_000000262144.jpg")
    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == ("llava-bundle", "llava-1.5-eval@32cebc38",
                                                                   "testdev", 2)
    assert task.request(docs[0], "llava").prompt == TESTDEV[0]["text"]
    assert task.request(docs[0], "prismatic").prompt == TESTDEV[0]["text"]
    scores = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, ["Yes", "Two dogs."], strict=True)]
    task.finalize([{"scores": s} for s in reversed(scores)], tmp_path / "run", "llava")
    # convert_vqav2_for_submission.py by hand: every test2015 question in that file's order, EvalAI's
    # processor on the answers ("Two dogs." -> "2 dogs"), "" for questions outside test-dev, json.dump
    expected = ('[{"question_id": 262144000, "answer": "yes"}, {"question_id": 262144001, "answer": ""}, '
                '{"question_id": 262144005, "answer": "2 dogs"}, {"question_id": 393225000, "answer": ""}]')
    assert (tmp_path / "run" / "vqav2_testdev_submission.json").read_text() == expected


def test_vqav2_llava_bundle_without_the_test2015_list(tmp_path):
    write(tmp_path / "vqav2", "llava_vqav2_mscoco_test-dev2015.jsonl", TESTDEV)
    with pytest.raises(DataError) as err:
        load(VQAv2(), tmp_path, "llava")
    msg = str(err.value)
    assert "llava_vqav2_mscoco_test-dev2015.jsonl but not llava_vqav2_mscoco_test2015.jsonl" in msg
    assert "convert_vqav2_for_submission.py" in msg and "./playground/data/eval/vqav2/" in msg
    with pytest.raises(DataError, match="LLaVA's test-dev questions: --task-args vqav2.split=testdev"):
        load(VQAv2(), tmp_path, "prismatic")  # vlm-evaluation's split is val, which the bundle lacks


def test_vqav2_default_split_follows_the_protocol():
    for protocol, split in (("llava", "testdev"), ("prismatic", "val"), ("lmms-eval", "val")):
        task = VQAv2()
        task.use_protocol(protocol)
        assert task.split == split, protocol
    task = VQAv2(split="testdev")
    task.use_protocol("prismatic")
    assert task.split == "testdev"  # an explicit split wins
    assert VQAv2().split == "testdev"  # no protocol given: LLaVA's, the task's default protocol


# ------------------------------------------------------------------------------------------ VizWiz
VIZWIZ = [  # question_id 0, 7 (trailing space), 995 (leading space), 174, 436, 514 of llava_test.jsonl
    {"question_id": 0, "image": "VizWiz_test_00000000.jpg", "text": "What is this? and what color is it?" + UNSURE,
     "category": "default"},
    {"question_id": 7, "image": "VizWiz_test_00000007.jpg", "text": "What is this? " + UNSURE, "category": "default"},
    {"question_id": 995, "image": "VizWiz_test_00000995.jpg", "text": " what color is this shirt?" + UNSURE,
     "category": "default"},
    {"question_id": 174, "image": "VizWiz_test_00000174.jpg", "text": "What is the expiration date?" + UNSURE,
     "category": "default"},
    {"question_id": 436, "image": "VizWiz_test_00000436.jpg", "text": "Is this a gift card for?" + UNSURE,
     "category": "default"},
    {"question_id": 514, "image": "VizWiz_test_00000514.jpg", "text": "What does this coupon say on it?" + UNSURE,
     "category": "default"},
]
VIZWIZ_ANSWERS = {0: "Black", 7: "Unanswerable", 995: "Yellow", 174: "08/13/2011", 436: "Macy's",
                  514: "Buy one pizza at regular price get one pizza of equal or lesser value free"}
# the released answers_upload/llava-v1.5-13b.json entries of those questions, as its bytes are
VIZWIZ_UPLOAD = ('[{"image": "VizWiz_test_00000000.jpg", "answer": "black"}, {"image": "VizWiz_test_00000007.jpg", '
                 '"answer": "unanswerable"}, {"image": "VizWiz_test_00000995.jpg", "answer": "yellow"}, {"image": '
                 '"VizWiz_test_00000174.jpg", "answer": "08 13 2011"}, {"image": "VizWiz_test_00000436.jpg", '
                 '"answer": "macy \'s"}, {"image": "VizWiz_test_00000514.jpg", "answer": "buy 1 pizza at regular '
                 'price get 1 pizza of equal or lesser value free"}]')


def test_vizwiz_llava_bundle(tmp_path):
    write(tmp_path / "vizwiz", "llava_test.jsonl", VIZWIZ)
    task = VizWiz()
    docs = load(task, tmp_path)
    assert task.split == "test"  # the bundle holds the test questions only
    assert [d.doc_id for d in docs][:2] == ["VizWiz_test_00000000", "VizWiz_test_00000007"]
    assert (task.data_source.layout, task.data_source.questions) == ("llava-bundle", 6)
    # the questions as they are: LLaVA's text; vlm-evaluation's builder strips the leading
    # whitespace only; lmms-eval capitalises the raw question (a leading space stays lower-case)
    assert [task.request(d, "llava").prompt for d in docs] == [q["text"] for q in VIZWIZ]
    assert task.request(docs[1], "prismatic").prompt == "What is this? " + UNSURE
    assert task.request(docs[2], "prismatic").prompt == "what color is this shirt?" + UNSURE
    assert task.request(docs[2], "lmms-eval").prompt == " what color is this shirt?" + UNSURE

    scores = [task.score(d, Prediction(text=VIZWIZ_ANSWERS[d.fields["llava_question_id"]]), "llava") for d in docs]
    notes = task.finalize([{"scores": s} for s in reversed(scores)], tmp_path / "run", "llava")
    assert (tmp_path / "run" / "vizwiz_test_submission.json").read_text() == VIZWIZ_UPLOAD
    assert "have no answer" not in notes["note"]
    notes = task.finalize([{"scores": s} for s in scores[:4]], tmp_path / "run", "llava")
    assert "2 of the 6 test questions have no answer" in notes["note"]


# ------------------------------------------------------------------------------------------ GQA
GQA_LINES = [
    {"question_id": "201307251", "image": "n161313.jpg", "text": "Is it overcast?" + SHORT, "category": "default"},
    {"question_id": "201640614", "image": "n235859.jpg", "text": "Who is wearing the dress?" + SHORT,
     "category": "default"},
]
GQA_ANNOTATIONS = {  # GQA's testdev_balanced_questions.json format (fields trimmed)
    "201640614": {"imageId": "n235859", "question": "Who is wearing the dress?", "answer": "woman",
                  "fullAnswer": "The woman is wearing a dress.", "isBalanced": True,
                  "types": {"structural": "query", "semantic": "rel", "detailed": "relS"}},
    "201307251": {"imageId": "n161313", "question": "Is it overcast?", "answer": "no",
                  "fullAnswer": "No, it is clear.", "isBalanced": True,
                  "types": {"structural": "verify", "semantic": "global", "detailed": "weatherVerify"}},
}


def test_gqa_llava_bundle_and_convert_gqa_by_hand(tmp_path):
    folder = tmp_path / "gqa"
    write(folder, "llava_gqa_testdev_balanced.jsonl", GQA_LINES)
    (folder / "data").mkdir()
    (folder / "data" / "testdev_balanced_questions.json").write_text(json.dumps(GQA_ANNOTATIONS))
    task = GQA()
    docs = load(task, tmp_path)
    assert [d.doc_id for d in docs] == ["201307251", "201640614"]  # LLaVA's order
    assert docs[0].images[0].path.endswith("gqa/data/images/n161313.jpg")
    assert (task.data_source.layout, [f.name for f in task.data_source.files]) == (
        "llava-bundle", ["data/testdev_balanced_questions.json", "llava_gqa_testdev_balanced.jsonl"])
    assert [task.request(d, "llava").prompt for d in docs] == [q["text"] for q in GQA_LINES]
    # convert_gqa_for_eval.py: text.rstrip('.').lower(); eval.py: exact match with the answer
    scores = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, ["No.", "Woman."], strict=True)]
    assert [s["pred"] for s in scores] == ["no", "woman"]
    assert task.aggregate(scores, "llava") == {"accuracy": 100.0, "accuracy_binary": 100.0, "accuracy_open": 100.0}
    scores[1] = task.score(docs[1], Prediction(text="The woman"), "llava")
    assert task.aggregate(scores, "llava")["accuracy"] == 50.0


def test_gqa_llava_bundle_without_annotations(tmp_path):
    write(tmp_path / "gqa", "llava_gqa_testdev_balanced.jsonl", GQA_LINES)
    with pytest.raises(DataError) as err:
        load(GQA(), tmp_path)
    msg = str(err.value)
    assert "llava_gqa_testdev_balanced.jsonl but not testdev_balanced_questions.json" in msg
    assert "./playground/data/eval/gqa/data/testdev_balanced_questions.json" in msg
    (tmp_path / "gqa" / "testdev_balanced_questions.json").write_text(json.dumps({"201307251": GQA_ANNOTATIONS[
        "201307251"]}))
    with pytest.raises(DataError, match=r"llava_gqa_testdev_balanced.jsonl:2: question 201640614 is not in"):
        load(GQA(), tmp_path)
