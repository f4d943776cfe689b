"""MME on LLaVA-1.5's bundle, in its real format: questions joined to MME's answer files as
convert_answer_to_mme.py does (double-spaced questions included), scored as calculation.py does.

The question and answer lines below are copied from haotian-liu/LLaVA 32cebc38
(`playground/data/eval/MME/llava_mme.jsonl` and `answers/llava-v1.5-13b.jsonl`): two questions per
image, question_id = the image path under MME_Benchmark_release_version (artwork keeps its `images/`
level). MME's own files (`<subtask>/<image>.txt`, 'question<TAB>answer' lines) are not public in any
repository: the answers below are made up, in MME's format.
"""

import json

import pytest
from PIL import Image

from mmeval.data.sources import task_data_dir
from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.mme import BENCHMARK, LLAVA_QUESTIONS, MME
from tests.tasks.test_mme import mme_rows

SUFFIX = "\nAnswer the question using a single word or phrase."
LINES = [
    '{"question_id": "code_reasoning/0020.png", "image": "code_reasoning/0020.png", "text": "Is a python code shown in the picture?\\nAnswer the question using a single word or phrase.", "category": "code_reasoning"}',  # noqa: E501
    '{"question_id": "code_reasoning/0020.png", "image": "code_reasoning/0020.png", "text": "Is a c++ code shown in the picture?\\nAnswer the question using a single word or phrase.", "category": "code_reasoning"}',  # noqa: E501
    '{"question_id": "artwork/images/14777.jpg", "image": "artwork/images/14777.jpg", "text": "Does this artwork belong to the type of religious?\\nAnswer the question using a single word or phrase.", "category": "artwork"}',  # noqa: E501
    '{"question_id": "artwork/images/14777.jpg", "image": "artwork/images/14777.jpg", "text": "Does this artwork belong to the type of historical?\\nAnswer the question using a single word or phrase.", "category": "artwork"}',  # noqa: E501
    '{"question_id": "count/000000470121.jpg", "image": "count/000000470121.jpg", "text": "Is there only one bottle in the image?\\nAnswer the question using a single word or phrase.", "category": "count"}',  # noqa: E501
    '{"question_id": "count/000000470121.jpg", "image": "count/000000470121.jpg", "text": "Is there two bottles in the image?\\nAnswer the question using a single word or phrase.", "category": "count"}',  # noqa: E501
]
RELEASED = ["Yes", "Yes", "Yes", "Yes", "Yes", "No"]  # the `text` of those six lines in LLaVA-1.5-13B's answers
# MME's answer files (made-up answers); the first artwork question is double-spaced, as some are in MME
QA_FILES = {
    "code_reasoning/0020.txt": "Is a python code shown in the picture? Please answer yes or no.\tYes\n"
                               "Is a c++ code shown in the picture? Please answer yes or no.\tNo\n",
    "artwork/questions_answers_YN/14777.txt": "Does this artwork belong to the type of religious?  Please answer yes "
                                              "or no.\tYes\nDoes this artwork belong to the type of historical? "
                                              "Please answer yes or no.\tNo\n",
    "count/000000470121.txt": "Is there only one bottle in the image? Please answer yes or no.\tYes\n"
                              "Is there two bottles in the image? Please answer yes or no.\tNo\n",
}


def write_bundle(root, lines=LINES, qa_files=QA_FILES, benchmark=True):
    folder = root / "MME"
    folder.mkdir(parents=True)
    (folder / LLAVA_QUESTIONS).write_text("".join(line + "\n" for line in lines))
    if benchmark:
        (folder / BENCHMARK / "artwork" / "images").mkdir(parents=True)  # images/ -> questions_answers_YN/
        for name, text in qa_files.items():
            path = folder / BENCHMARK / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return folder


def test_bundle_loads_and_scores_as_calculation_py(tmp_path):
    folder = write_bundle(tmp_path)
    task = MME()
    assert task_data_dir(task.name, tmp_path, task.data_folders) == folder
    docs = task.load_docs(folder)
    assert [d.doc_id for d in docs] == ["code_reasoning/0020.png#0", "code_reasoning/0020.png#1",
                                        "artwork/images/14777.jpg#0", "artwork/images/14777.jpg#1",
                                        "count/000000470121.jpg#0", "count/000000470121.jpg#1"]
    assert [d.target for d in docs] == ["yes", "no"] * 3
    assert docs[2].fields["question"] == "Does this artwork belong to the type of religious?  Please answer yes or no."
    assert str(docs[2].images[0].path) == str(folder / BENCHMARK / "artwork" / "images" / "14777.jpg")
    for doc, line in zip(docs, LINES, strict=True):
        q = json.loads(line)
        assert task.request(doc, "llava").prompt == q["text"]  # character for character
        assert (doc.fields["llava_question_id"], doc.fields["llava_prompt"]) == (q["question_id"], q["text"])
    # lmms-eval's mme_doc_to_text on MME's question: the second space stays
    assert task.request(docs[2], "lmms-eval").prompt == "Does this artwork belong to the type of religious? " + SUFFIX

    scores = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, RELEASED, strict=True)]
    m = task.aggregate(scores, "llava")
    # calculation.py: code_reasoning acc 50 + acc+ 0; artwork 50 + 0; count 100 + 100
    assert (m["code_reasoning/score"], m["artwork/score"], m["count/score"]) == (50.0, 50.0, 200.0)
    assert (m["perception"], m["cognition"]) == (250.0, 50.0)

    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == ("llava-bundle", "llava-1.5-eval@32cebc38", "test", 6)
    assert [f.name for f in src.files] == [LLAVA_QUESTIONS, f"{BENCHMARK}/**/*.txt (3 files)"]
    (folder / BENCHMARK / "count" / "000000470121.txt").write_text(QA_FILES["count/000000470121.txt"].replace(
        "only one bottle in the image? Please answer yes or no.\tYes", "only one bottle in the image? Please answer "
        "yes or no.\tNo"))
    task.load_docs(folder)
    assert task.data_source.files[1].sha256 != src.files[1].sha256  # an answer file changed


def test_official_layout_llava_prompt_strips_the_double_space(tmp_path):
    pair = [dict(category="artwork", image_name="14777.jpg", image=Image.new("RGB", (4, 4)), answer=a, question=q)
            for q, a in (("Does this artwork belong to the type of religious?  Please answer yes or no.", "Yes"),
                         ("Does this artwork belong to the type of historical? Please answer yes or no.", "No"))]
    rows = mme_rows() + pair  # the official loader wants every subtask
    task = MME()
    docs = task.load_docs(MME.write_layout(tmp_path / "official", rows, "official"))
    artwork = [d for d in docs if d.fields["image"] == "artwork/14777.jpg"]
    assert [task.request(d, "llava").prompt for d in artwork] == [json.loads(line)["text"] for line in LINES[2:4]]
    assert (task.data_source.layout, task.data_source.version) == ("official", BENCHMARK)
    assert [f.name for f in task.data_source.files] == [f"{BENCHMARK}/**/*.txt (16 files)"]

    folder = MME.write_layout(tmp_path / "llava", pair, "llava")  # the writer gives LLaVA's lines
    assert (folder / LLAVA_QUESTIONS).read_text() == LINES[2] + "\n" + LINES[3] + "\n"
    assert [d.target for d in task.load_docs(folder)] == ["yes", "no"]


def test_bundle_without_benchmark_folder_says_where_llava_expects_it(tmp_path):
    folder = write_bundle(tmp_path, benchmark=False)
    with pytest.raises(DataError) as err:
        MME().load_docs(folder)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (f"mme: {folder} has LLaVA's llava_mme.jsonl but not MME_Benchmark_release_version/ (MME's images "
                   "and question/answer files), which LLaVA's convert_answer_to_mme.py reads from "
                   "./playground/data/eval/MME/MME_Benchmark_release_version (scripts/v1_5/eval/mme.sh)")


def test_bundle_question_missing_from_mme_files(tmp_path):
    qa = dict(QA_FILES, **{"count/000000470121.txt": "Is there only one bottle in the image? Please answer yes or "
                                                     "no.\tYes\n"})
    folder = write_bundle(tmp_path, qa_files=qa)
    with pytest.raises(DataError, match=r"llava_mme.jsonl:6: no line 'Is there two bottles in the image\? Please "
                                        r"answer yes or no.' \(nor with two spaces before 'Please answer yes or no.'\) "
                                        r"in .*count/.../000000470121.txt"):
        MME().load_docs(folder)
