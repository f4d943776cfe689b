"""POPE's original release and LLaVA-1.5's bundle, in their real formats.

The label lines are copied from AoiDragon/POPE e3e3926 `output/coco/coco_pope_*.json` (JSON lines with
CRLF ends, the "imange" typo of random question 11 kept); the question and answer lines from
haotian-liu/LLaVA 32cebc38 `playground/data/eval/pope/llava_pope_test.jsonl` and
`answers/llava-v1.5-13b.jsonl` (question_id = category offset + POPE's id).
"""

import json

import pytest

from mmeval.data.sources import task_data_dir
from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.pope import RELEASES, Pope, pope_release
from tests.conftest import pope_rows

SUFFIX = "\nAnswer the question using a single word or phrase."
IMG = "COCO_val2014_000000310196.jpg"
OBJECTS = {"adversarial": ["snowboard", "backpack", "person", "car"],
           "random": ["snowboard", "car", "person", "sandwich"],
           "popular": ["snowboard", "dining table", "person", "car"]}
LABELS = ["yes", "no", "yes", "no"]
OFFSET = {"adversarial": 0, "random": 10_000_000, "popular": 20_000_000}
EXTRA = {"question_id": 11, "image": "COCO_val2014_000000210789.jpg", "text": "Is there an umbrella in the imange?",
         "label": "yes"}  # random 11 at e3e3926
ANSWERS = ["No", "No", "Yes", "No"]  # LLaVA-1.5-13B's answers to questions 1-4 of each category
EXTRA_ANSWER = "Yes"


def label_lines(category):
    rows = [{"question_id": i, "image": IMG, "text": f"Is there a {o} in the image?", "label": lab}
            for i, (o, lab) in enumerate(zip(OBJECTS[category], LABELS, strict=True), 1)]
    return rows + ([EXTRA] if category == "random" else [])


def write_labels(folder, categories=("adversarial", "popular", "random"), lines=label_lines):
    folder.mkdir(parents=True, exist_ok=True)
    for c in categories:
        # POPE writes json.dumps lines with Windows line ends
        (folder / f"coco_pope_{c}.json").write_bytes(b"".join(json.dumps(r).encode() + b"\r\n" for r in lines(c)))


def llava_lines():
    out = []
    for c in ("adversarial", "random", "popular"):  # LLaVA's file order
        for r in label_lines(c):
            out.append({"question_id": OFFSET[c] + r["question_id"], "image": r["image"], "text": r["text"] + SUFFIX,
                        "category": c})
    return out


def write_bundle(root, questions=None):
    folder = root / "pope"
    write_labels(folder / "coco")
    (folder / "llava_pope_test.jsonl").write_text("".join(json.dumps(q) + "\n" for q in (questions or llava_lines())))
    return folder


def load(root, protocol=None):
    task = Pope()
    if protocol:
        task.use_protocol(protocol)
    return task, task.load_docs(task_data_dir(task.name, root, task.data_folders))


def test_original_release_layout(tmp_path):
    write_labels(tmp_path / "pope" / "output" / "coco")
    assert (tmp_path / "pope/output/coco/coco_pope_random.json").read_bytes().count(b"\r\n") == 5
    task, docs = load(tmp_path)
    assert [d.doc_id for d in docs[:4]] == ["adversarial/1", "adversarial/2", "adversarial/3", "adversarial/4"]
    assert docs[-1].doc_id == "random/11" and docs[-1].target == "yes"
    assert docs[-1].images[0].path.endswith("pope/val2014/COCO_val2014_000000210789.jpg")
    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == ("pope-original", "pope-original@unknown", "test", 13)
    assert src.questions_per_split == {"adversarial": 4, "popular": 4, "random": 5}
    assert [f.name for f in src.files] == [f"output/coco/coco_pope_{c}.json" for c in ("adversarial", "popular",
                                                                                         "random")]
    # the typo stays in every prompt; vlm-evaluation and LLaVA read the text as it is
    for protocol in ("llava", "prismatic", "lmms-eval"):
        assert task.request(docs[-1], protocol).prompt == "Is there an umbrella in the imange?" + SUFFIX
    assert "llava_question_id" not in docs[0].fields  # numbering of an unrecognised release: not LLaVA's


def test_release_recognised_by_counts_and_typos(tmp_path):
    assert pope_release(RELEASES["e3e3926"]) == "e3e3926"
    assert pope_release(RELEASES["edebdda"]) == "edebdda"
    assert pope_release(RELEASES["109985c"]) == "109985c"
    assert pope_release({"random": (3000, 0), "popular": (3000, 0)}) == "109985c"  # edebdda's are the same
    assert pope_release({"random": (12, 1)}) == "unknown"
    mixed = dict(RELEASES["e3e3926"], random=(3000, 0))
    with pytest.raises(DataError, match=r"coco_pope_random.json 3000 questions \(0 'imange'\)"):
        pope_release(mixed)

    def e3e3926_lines(category):  # files shaped like e3e3926's: 3000/3000/2910 lines, 58/44/144 typos
        n, typos = RELEASES["e3e3926"][category]
        return [{"question_id": i, "image": IMG, "text": "Is there a cat in the " + ("imange?" if i <= typos else
                                                                                      "image?"),
                 "label": "yes" if i % 2 else "no"} for i in range(1, n + 1)]
    write_labels(tmp_path / "pope" / "coco", lines=e3e3926_lines)
    task, docs = load(tmp_path)
    assert (task.data_source.version, task.data_source.questions) == ("pope-original@e3e3926", 8910)
    assert task.data_source.questions_per_split == {"adversarial": 3000, "popular": 3000, "random": 2910}
    ids = {d.doc_id: d.fields["llava_question_id"] for d in docs}
    assert (ids["adversarial/7"], ids["random/2910"], ids["popular/1"]) == (7, 10002910, 20000001)
    assert task.finalize([], tmp_path, "llava") == {}  # the papers' release: nothing to warn about


def test_llava_bundle_and_eval_pope_by_hand(tmp_path):
    write_bundle(tmp_path)
    task, docs = load(tmp_path)
    assert [d.fields["llava_question_id"] for d in docs][:6] == [1, 2, 3, 4, 10000001, 10000002]  # LLaVA's order
    assert docs[4].doc_id == "random/1"
    assert (task.data_source.layout, task.data_source.version) == ("llava-bundle", "pope-original@unknown")
    assert [f.name for f in task.data_source.files][-1] == "llava_pope_test.jsonl"
    assert task.request(docs[0], "llava").prompt == "Is there a snowboard in the image?" + SUFFIX
    assert task.request(docs[0], "prismatic").prompt == "Is there a snowboard in the image?" + SUFFIX

    by_qid = {d.fields["llava_question_id"]: d for d in docs}
    scores = []
    for c in ("adversarial", "random", "popular"):
        for i, text in enumerate(ANSWERS, 1):
            scores.append(task.score(by_qid[OFFSET[c] + i], Prediction(text=text), "llava"))
    scores.append(task.score(by_qid[10000011], Prediction(text=EXTRA_ANSWER), "llava"))
    m = task.aggregate(scores, "llava")
    # eval_pope.py per category: labels yes,no,yes,no answered No,No,Yes,No -> TP 1 FN 1 TN 2 FP 0:
    # precision 1, recall 1/2, F1 2/3, accuracy 3/4, yes ratio 1/4; random adds a yes answered Yes:
    # TP 2 FN 1 TN 2 -> recall 2/3, F1 0.8, accuracy 0.8, yes ratio 2/5. The paper's number: mean F1.
    assert m["adversarial/f1"] == pytest.approx(200 / 3) and m["popular/f1"] == pytest.approx(200 / 3)
    assert (m["random/f1"], m["random/accuracy"], m["random/yes_ratio"]) == pytest.approx((80.0, 80.0, 40.0))
    assert m["f1"] == pytest.approx((200 / 3 + 200 / 3 + 80) / 3)
    assert m["yes_ratio"] == pytest.approx((25 + 25 + 40) / 3)


def test_llava_questions_against_another_release(tmp_path):
    questions = [q for q in llava_lines() if q["question_id"] != 10000011]
    write_bundle(tmp_path, questions)
    with pytest.raises(DataError) as err:
        load(tmp_path)
    assert ("has adversarial 4, popular 4, random 4 questions but the label files have adversarial 4, popular 4, "
            "random 5") in str(err.value)
    questions = llava_lines()
    questions[-5]["text"] = questions[-5]["text"].replace("imange", "image")  # random 11 as POPE fixed it later
    write_bundle(tmp_path / "b", questions)
    with pytest.raises(DataError, match=r"question 10000011 \(random: 'Is there an umbrella in the image\?'.*"
                                        r"is 'Is there an umbrella in the imange\?'"):
        load(tmp_path / "b")


def test_llava_folder_without_labels(tmp_path):
    folder = tmp_path / "pope"
    folder.mkdir()
    (folder / "llava_pope_test.jsonl").write_text(json.dumps(llava_lines()[0]) + "\n")
    with pytest.raises(DataError) as err:
        load(tmp_path)
    msg = str(err.value)
    assert "llava_pope_test.jsonl but not coco/coco_pope_adversarial.json" in msg
    assert "./playground/data/eval/pope/coco/" in msg and "\n" not in msg


def test_lmms_lab_copy_is_said_not_comparable(tmp_path):
    Pope.write_layout(tmp_path / "pope", pope_rows(n_images=2))
    task, docs = load(tmp_path, "llava")
    assert (task.data_source.layout, task.data_source.version) == ("lmms-lab-parquet", "lmms-lab/POPE")
    note = task.finalize([], tmp_path, "llava")["data_note"]
    assert "lmms-lab/POPE" in note and "e3e3926 (8,910 questions" in note
    assert "data_note" in task.finalize([], tmp_path, "prismatic")
    assert task.finalize([], tmp_path, "lmms-eval") == {}  # lmms-eval's own data


def test_original_files_preferred_except_under_lmms_eval(tmp_path):
    Pope.write_layout(tmp_path / "pope", pope_rows(n_images=2))
    write_labels(tmp_path / "pope" / "coco")
    for protocol, layout in (("llava", "pope-original"), ("prismatic", "pope-original"),
                             ("lmms-eval", "lmms-lab-parquet")):
        task, _ = load(tmp_path, protocol)
        assert task.data_source.layout == layout, protocol


def test_synthetic_data_version(tmp_path):
    Pope.write_layout(tmp_path / "pope", pope_rows(n_images=2))
    (tmp_path / "synth.json").write_text(json.dumps({"seed": 0, "tasks": {"pope": {"rows": 6}}}))
    task, _ = load(tmp_path, "llava")
    assert (task.data_source.layout, task.data_source.version) == ("lmms-lab-parquet", "synthetic@seed0")
    assert task.finalize([], tmp_path, "llava") == {}
