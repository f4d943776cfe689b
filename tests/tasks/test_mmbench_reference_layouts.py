"""MMBench dev on LLaVA-1.5's folder: `mmbench_dev_20230712.tsv` (OpenMMLab's file, where mmbench.sh
reads it), prompts equal to model_vqa_mmbench.py's, CircularEval over the released answers.

The rows (index, question, options, answer) and the answer lines below are copied from
haotian-liu/LLaVA 32cebc38 (`playground/data/eval/mmbench/answers/mmbench_dev_20230712/llava-v1.5-13b.jsonl`
and the upload xlsx, which keeps the TSV's columns but hint, category, source, image, comment,
l2-category); the hint is the one the answer file's prompt shows; categories and images are made up.
The TSV's column order is the one that xlsx implies.
"""

import base64
import json

import pandas as pd
import pytest
from PIL import Image

from mmeval.data.writers import png_bytes
from mmeval.errors import DataError
from mmeval.types import Prediction
from tasks.mmbench import LLAVA_TSV, MMBench

OPTION_LETTER = "\nAnswer with the option's letter from the given choices directly."
COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
           "comment", "split"]
ROWS = [  # index, question, hint, A, B, C, D, answer
    (1534, "how many dogs are there?", None, "0", "2", "1", "3", "C"),
    (1001534, "how many dogs are there?", None, "3", "0", "2", "1", "D"),
    (2001534, "how many dogs are there?", None, "1", "3", "0", "2", "A"),
    (3001534, "how many dogs are there?", None, "2", "1", "3", "0", "B"),
    (295, "Which property do these two objects have in common?", "Select the better answer.", "yellow", "salty", None,
     None, "B"),
    (1000295, "Which property do these two objects have in common?", "Select the better answer.", "salty", "yellow",
     None, None, "A"),
]
ANSWERS = [
    '{"question_id": 1534, "round_id": 0, "prompt": "how many dogs are there?\\nA. 0\\nB. 2\\nC. 1\\nD. 3", "text": "C", "options": ["0", "2", "1", "3"], "option_char": ["A", "B", "C", "D"], "answer_id": "FAtUNembBvcGfsneY6EsTo", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": 1001534, "round_id": 0, "prompt": "how many dogs are there?\\nA. 3\\nB. 0\\nC. 2\\nD. 1", "text": "D", "options": ["3", "0", "2", "1"], "option_char": ["A", "B", "C", "D"], "answer_id": "9WKHPZxnnaK7wgVkhPfWaj", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": 2001534, "round_id": 0, "prompt": "how many dogs are there?\\nA. 1\\nB. 3\\nC. 0\\nD. 2", "text": "A", "options": ["1", "3", "0", "2"], "option_char": ["A", "B", "C", "D"], "answer_id": "AMo8FSXyjF3U96DxYe445q", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": 3001534, "round_id": 0, "prompt": "how many dogs are there?\\nA. 2\\nB. 1\\nC. 3\\nD. 0", "text": "B", "options": ["2", "1", "3", "0"], "option_char": ["A", "B", "C", "D"], "answer_id": "7MWK2TaPcibvTLjygF3xYi", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": 295, "round_id": 0, "prompt": "Select the better answer.\\nWhich property do these two objects have in common?\\nA. yellow\\nB. salty", "text": "A", "options": ["yellow", "salty"], "option_char": ["A", "B"], "answer_id": "5yXkda6udE52cvF3adSqgi", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
    '{"question_id": 1000295, "round_id": 0, "prompt": "Select the better answer.\\nWhich property do these two objects have in common?\\nA. salty\\nB. yellow", "text": "B", "options": ["salty", "yellow"], "option_char": ["A", "B"], "answer_id": "RRzAaVXffUCj9TLKeZbeDk", "model_id": "llava-v1.5-13b", "metadata": {}}',  # noqa: E501
]


def write_tsv(path):
    image = base64.b64encode(png_bytes(Image.new("RGB", (5, 5), (9, 9, 9)))).decode()
    records = [dict(zip(COLUMNS, (*row, "counting" if "dogs" in row[1] else "attribute", image, "made-up",
                                  "perception", None, "dev"), strict=True)) for row in ROWS]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records, columns=COLUMNS).to_csv(path, sep="\t", index=False)
    return path.parent


def test_llava_tsv_prompts_and_circular_eval(tmp_path):
    folder = write_tsv(tmp_path / "mmbench" / LLAVA_TSV)
    write_tsv(tmp_path / "mmbench" / "mmbench_dev_en_20231003.tsv")  # a later release beside it: not chosen
    task = MMBench()
    docs = task.load_docs(folder)
    assert [d.doc_id for d in docs] == [str(r[0]) for r in ROWS]
    src = task.data_source
    assert (src.layout, src.version, src.split, src.questions) == ("official", "mmbench_dev_20230712", "dev", 6)
    assert [f.name for f in src.files] == [LLAVA_TSV]
    for doc, line in zip(docs, ANSWERS, strict=True):
        answer = json.loads(line)
        assert doc.fields["llava_question_id"] == answer["question_id"]
        assert doc.fields["llava_prompt"] == answer["prompt"]
        assert task.request(doc, "llava").prompt == answer["prompt"] + OPTION_LETTER

    released = [json.loads(line)["text"] for line in ANSWERS]
    scores = [task.score(d, Prediction(text=t), "llava") for d, t in zip(docs, released, strict=True)]
    m = task.aggregate(scores, "llava")
    # 1534: all four rotations right; 295: both wrong -> circular 1 of 2, vanilla 1 of 2
    assert (m["circular_accuracy"], m["vanilla_accuracy"]) == (50.0, 50.0)
    scores[3] = task.score(docs[3], Prediction(text="A"), "llava")  # one rotation of 1534 wrong
    m = task.aggregate(scores, "llava")
    assert (m["circular_accuracy"], m["vanilla_accuracy"]) == (0.0, 50.0)


def test_llava_folder_without_the_tsv(tmp_path):
    folder = tmp_path / "mmbench"
    (folder / "answers" / "mmbench_dev_20230712").mkdir(parents=True)
    with pytest.raises(DataError) as err:
        MMBench().load_docs(folder)
    assert str(err.value) == (f"mmbench: {folder} has LLaVA's answers but not mmbench_dev_20230712.tsv, which "
                              "model_vqa_mmbench.py reads from ./playground/data/eval/mmbench/mmbench_dev_20230712.tsv "
                              "(scripts/v1_5/eval/mmbench.sh; download.openmmlab.com/mmclassification/datasets/mmbench/"
                              "mmbench_dev_20230712.tsv)")
