"""The predictions readers (mmeval/data/predictions.py): each format told from its content, one
line type out of all of them, structural errors in one line; and the default id mappings
(mmeval/data/external_ids.py) on documents that keep LLaVA's ids."""

from __future__ import annotations

import json

import pytest

from mmeval.data.external_ids import by_llava_question_id, by_row_index, default_doc_id_map
from mmeval.data.predictions import (
    LLAVA,
    LMMS_EVAL,
    MMEVAL,
    VLM_EVALUATION,
    PredictionLine,
    read_prediction_file,
)
from mmeval.data.provenance import DataSource
from mmeval.errors import DataError
from mmeval.types import Doc
from tests.core.harness_files import SHORT_ANSWER, llava_answer, lmms_eval_line, write_jsonl, write_vlm_results


def test_each_format_is_told_from_its_content_not_its_name(tmp_path):
    same_name = tmp_path / "predictions.jsonl"
    write_jsonl(same_name, [{"doc_id": "random/1", "prediction": "yes", "candidate_probs": {"Yes": 0.7, "No": 0.3},
                             "n_tokens": 2}])
    pf = read_prediction_file(same_name)
    assert pf.format == MMEVAL
    assert pf.lines[0].as_json("random/1") == {"doc_id": "random/1", "prediction": "yes",
                                               "candidate_probs": {"Yes": 0.7, "No": 0.3}, "n_tokens": 2}

    write_jsonl(same_name, [llava_answer("003a8ae2ef43b901", "What?" + SHORT_ANSWER, "Dakota"),
                            llava_answer("003a8ae2ef43b901", "Who?" + SHORT_ANSWER, "Kodak")])
    pf = read_prediction_file(same_name)
    assert pf.format == LLAVA and [ln.key for ln in pf.lines] == ["003a8ae2ef43b901"] * 2
    assert pf.lines[1].prediction == "Kodak" and pf.lines[1].context == {"prompt": "Who?" + SHORT_ANSWER}
    assert pf.lines[1].where == f"{same_name}:2"

    write_jsonl(same_name, [lmms_eval_line(0, "yes", "No.", {"pope_accuracy": {"score": 0.0}}, "Is it?")],
                ensure_ascii=False)
    pf = read_prediction_file(same_name)
    assert pf.format == LMMS_EVAL and pf.lines[0].key == 0 and pf.lines[0].prediction == "No."
    assert pf.lines[0].context == {"target": "yes", "input": "Is it?"}

    write_vlm_results(same_name, [{"question_id": 7, "question": "Q", "yes_no_probabilities": [0.2, 0.8],
                                   "ground_truth_answer": "no"},
                                  {"question_id": 8, "question": "Q", "yes_no_probabilities": [0.5, 0.5],
                                   "ground_truth_answer": "no"}])
    pf = read_prediction_file(same_name)
    assert pf.format == VLM_EVALUATION
    # np.argmax over [P(Yes), P(No)]: a tie goes to the first
    assert [(ln.key, ln.prediction, ln.candidate_probs) for ln in pf.lines] == [
        (7, "No", {"Yes": 0.2, "No": 0.8}), (8, "Yes", {"Yes": 0.5, "No": 0.5})]


def test_vlm_evaluation_variants_and_vsr(tmp_path):
    path = write_vlm_results(tmp_path / "r.json", [{"question_id": 34602, "question": "Q", "model_output_ocr": "a",
                                                    "model_output_no_ocr": "b", "ground_truth_answer": "a or c"}])
    line = read_prediction_file(path).lines[0]
    assert line.prediction is None and line.variants == {"ocr": "a", "no_ocr": "b"}
    assert line.choose("no_ocr").prediction == "b" and line.choose("ocr").prediction == "a"
    with pytest.raises(DataError, match="one answer per variant \\(ocr, no_ocr\\) and the task asks for None"):
        line.choose(None)
    path = write_vlm_results(tmp_path / "v.json", [{"example_id": 0, "caption": "The cat is on the bed.",
                                                    "true_false_probabilities": [0.39, 0.61],
                                                    "ground_truth_answer": True}], id_field="example_id")
    line = read_prediction_file(path).lines[0]
    assert (line.key, line.prediction, line.candidate_probs) == (0, "False", {"True": 0.39, "False": 0.61})
    assert line.context["caption"] == "The cat is on the bed."


@pytest.mark.parametrize("content, message", [
    ('{"id": 3}\n', "p.jsonl:1: unrecognised predictions line (fields: id)"),
    ('[{"questionId": "1", "prediction": "no"}]', "a JSON list is not a predictions file"),
    ('{\n  "acc": 74.4,\n  "correct": 3155\n}', "a JSON object (keys: acc, correct) that is not vlm-evaluation"),
    ('{"doc_id": "a", "prediction": "x"}\n{"question_id": 1, "prompt": "p", "text": "t"}\n',
     "p.jsonl:2: expected an object with fields doc_id and prediction (the file's first line is mmeval)"),
    ('{"doc_id": "0", "filtered_resps": "yes"}\n', "lmms-eval's doc_id must be a row index (an integer >= 0), got '0'"),
    ('{"doc_id": 0, "filtered_resps": [[-0.3, true]]}\n', "filtered_resps is not one generated text"),
    ('{"doc_id": 0, "target": "x",\n', "p.jsonl:1: not valid JSON"),
    ("", "no predictions"),
])
def test_structural_errors_name_the_file_and_line(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(DataError) as err:
        read_prediction_file(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_lmms_eval_older_list_response_and_metadata_only_for_vlm(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"doc_id": 3, "target": "no", "filtered_resps": ["no"]}])
    assert read_prediction_file(path).lines[0].prediction == "no"
    meta = tmp_path / "metadata-full.json"
    meta.write_text(json.dumps({"5": {"question_id": 5, "split": "random", "split_question_id": 1}}))
    with pytest.raises(DataError, match="only vlm-evaluation results take a metadata file"):
        read_prediction_file(path, meta)
    res = write_vlm_results(tmp_path / "r.json", [{"question_id": 5, "question": "Q", "yes_no_probabilities": [1, 0]}])
    assert read_prediction_file(res, meta).lines[0].context["metadata"]["split_question_id"] == 1


def _docs_with_llava_ids():
    """Documents as a LLaVA-bundle loader keeps them: MME's question id (the image path) is shared by
    the two questions on an image, the question file's text tells them apart."""
    texts = [f"Is a {lang} code shown in the picture?{SHORT_ANSWER}" for lang in ("python", "c++")]
    return [Doc(doc_id=f"code_reasoning/0020.png#{k}",
                fields={"question": t, "llava_question_id": "code_reasoning/0020.png", "llava_prompt": t})
            for k, t in enumerate(texts)]


def test_llava_ids_kept_in_the_documents_decide():
    docs = _docs_with_llava_ids()
    mapper = by_llava_question_id("mme", docs)
    second = PredictionLine(key="code_reasoning/0020.png", context={"prompt": docs[1].fields["llava_prompt"]})
    first = PredictionLine(key="code_reasoning/0020.png", context={"prompt": docs[0].fields["llava_prompt"]})
    assert mapper(second) == "code_reasoning/0020.png#1" and mapper(first) == "code_reasoning/0020.png#0"
    assert mapper(PredictionLine(key="code_reasoning/0020.png", context={"prompt": "Another?"})) is None
    assert mapper(PredictionLine(key="artwork/images/1.jpg", context={"prompt": "x"})) is None


class _Task:
    name = "pope"

    def __init__(self, layout):
        self.data_source = None if layout is None else DataSource(layout=layout, version="v", split="test", source="/d")


def test_lmms_eval_row_index_only_on_lmms_labs_rows():
    docs = [Doc(doc_id="random/1", fields={}, target="yes"), Doc(doc_id="random/2", fields={}, target="no")]
    for layout in (None, "lmms-lab-parquet", "hub"):
        mapper = by_row_index(_Task(layout), docs)
        assert mapper(PredictionLine(key=1, context={"target": "No"})) == "random/2"
        assert mapper(PredictionLine(key=2, context={"target": "no"})) is None
    with pytest.raises(DataError, match="row index into lmms-lab's copy .* read from the pope-original layout"):
        default_doc_id_map(_Task("pope-original"), docs, LMMS_EVAL)
