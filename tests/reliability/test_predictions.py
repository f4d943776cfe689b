"""`mmeval score` checks every prediction line before scoring anything (`validation.prediction_from_record`,
the one function every predictions reader goes through), says when predictions cover fewer documents
than the task has, and never loses a computed score to `--output`. Each probe of issue 21 is a test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmeval.errors import DataError
from mmeval.types import Prediction
from mmeval.validation import coverage_line, prediction_from_record
from tests.reliability.helpers import cli, load_docs, only_error_line, pope_data, result_files

N_DOCS = 60


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return pope_data(tmp_path_factory.mktemp("data"), n_images=20, per_image=3)


@pytest.fixture(scope="module")
def doc_ids(data) -> list[str]:
    return [d.doc_id for d in load_docs("pope", data)]


def lines(doc_ids, **fields) -> list[dict]:
    """One valid prediction line per doc ("yes"/"no" alternating, P(Yes)/P(No) for the prismatic protocol)."""
    out = []
    for i, d in enumerate(doc_ids):
        p_yes = 0.2 + 0.6 * (i % 2)
        out.append({"doc_id": d, "prediction": "yes" if i % 2 else "no",
                    "candidate_probs": {"Yes": p_yes, "No": 1 - p_yes}, "n_tokens": 1, **fields})
    return out


def write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def score(data, preds: Path, *extra):
    return cli("score", "--task", "pope", "--predictions", preds, "--data", data, "--bootstrap", "0", *extra)


# ------------------------------------------------------------------------------------------ null predictions
def test_null_prediction_is_an_error_for_that_line(data, doc_ids, tmp_path):
    rows = lines(doc_ids)
    rows[2]["prediction"] = None
    p = write(tmp_path / "p.jsonl", rows)
    assert only_error_line(score(data, p, "--output", tmp_path / "out.json")) == (
        f"error: {p}:3: prediction is null; expected text (a sample that failed gives an error field instead)")
    assert not (tmp_path / "out.json").exists()


def test_all_null_predictions_no_longer_score(data, doc_ids, tmp_path):
    """All-null predictions once scored F1 66.67 under LLaVA's rule (null -> "" -> "yes")."""
    p = write(tmp_path / "p.jsonl", [{"doc_id": d, "prediction": None} for d in doc_ids])
    assert only_error_line(score(data, p, "--protocol", "llava")).startswith(f"error: {p}:1: prediction is null")


def test_a_failed_sample_is_marked_with_error_and_counted(data, doc_ids, tmp_path):
    rows = lines(doc_ids)
    rows[0] = {"doc_id": doc_ids[0], "prediction": None, "error": "the model timed out"}
    r = score(data, write(tmp_path / "p.jsonl", rows), "--output", tmp_path / "o.json")
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "o.json").read_text())
    assert (res["n"], res["n_errors"]) == (N_DOCS - 1, 1)


@pytest.mark.parametrize("value, says", [
    (5, "prediction is int 5; expected text"),
    (["yes"], "prediction is list ['yes']; expected text"),
])
def test_a_prediction_that_is_not_text(data, doc_ids, tmp_path, value, says):
    rows = lines(doc_ids)
    rows[0]["prediction"] = value
    p = write(tmp_path / "p.jsonl", rows)
    assert only_error_line(score(data, p)) == f"error: {p}:1: {says}"


# ------------------------------------------------------------------------------------------ candidate_probs
@pytest.mark.parametrize("raw, says", [
    ("NaN", "candidate_probs['Yes'] is nan; expected a probability between 0 and 1"),
    ("Infinity", "candidate_probs['Yes'] is inf; expected a probability between 0 and 1"),
    ("-Infinity", "candidate_probs['Yes'] is -inf; expected a probability between 0 and 1"),
    ("-0.25", "candidate_probs['Yes'] is -0.25; expected a probability between 0 and 1"),
    ("1.5", "candidate_probs['Yes'] is 1.5; expected a probability between 0 and 1"),
    ('"0.3"', "candidate_probs['Yes'] is str '0.3'; expected a probability between 0 and 1"),
    ("true", "candidate_probs['Yes'] is bool True; expected a probability between 0 and 1"),
    ("null", "candidate_probs['Yes'] is null; expected a probability between 0 and 1"),
])
@pytest.mark.parametrize("protocol", ["prismatic", "llava"])
def test_candidate_probs_must_be_probabilities(data, doc_ids, tmp_path, raw, says, protocol):
    rows = [json.dumps(r) for r in lines(doc_ids)]
    rows[4] = rows[4].replace('"Yes": 0.2', f'"Yes": {raw}')
    p = write(tmp_path / "p.jsonl", rows)
    assert only_error_line(score(data, p, "--protocol", protocol)) == f"error: {p}:5: {says}"


def test_candidate_probs_must_be_an_object(data, doc_ids, tmp_path):
    rows = lines(doc_ids)
    rows[1]["candidate_probs"] = [0.5, 0.5]
    p = write(tmp_path / "p.jsonl", rows)
    assert only_error_line(score(data, p)) == (
        f"error: {p}:2: candidate_probs is list [0.5, 0.5]; expected an object of candidate: probability")


@pytest.mark.parametrize("value", ["abc", -1, 2.5, True])
def test_n_tokens_must_be_a_count(data, doc_ids, tmp_path, value):
    rows = lines(doc_ids)
    rows[0]["n_tokens"] = value
    p = write(tmp_path / "p.jsonl", rows)
    assert only_error_line(score(data, p)) == f"error: {p}:1: n_tokens is {value!r}; expected a count (an integer >= 0)"


# ----------------------------------------------------------------------------------------------- coverage
def test_coverage_below_100_percent_is_said_in_one_line(data, doc_ids, tmp_path):
    """10 predictions for 60 documents were once scored with no word."""
    r = score(data, write(tmp_path / "p.jsonl", lines(doc_ids[:10])), "--output", tmp_path / "o.json")
    assert r.exit_code == 0, r.output
    warning = [x for x in r.stderr.splitlines() if x.startswith("warning")]
    assert warning == ["warning: pope: predictions for 10 of 60 documents (16.7%); the metrics cover those 10 "
                       "only, the other 50 are not counted"]
    assert json.loads((tmp_path / "o.json").read_text())["coverage"] == {"predictions": 10, "docs": 60}


def test_full_coverage_says_nothing(data, doc_ids, tmp_path):
    r = score(data, write(tmp_path / "p.jsonl", lines(doc_ids)))
    assert r.exit_code == 0, r.output
    assert "warning" not in r.output
    assert coverage_line("pope", 60, 60) is None


# ------------------------------------------------------------------------------------------------ encoding
def test_non_utf8_predictions_name_the_line(data, doc_ids, tmp_path):
    p = tmp_path / "p.jsonl"
    body = "".join(json.dumps(r) + "\n" for r in lines(doc_ids)).encode()
    p.write_bytes(body.replace(b'"prediction": "yes"', b'"prediction": "y\xe9s"', 1))
    line = only_error_line(score(data, p))
    assert line.startswith(f"error: {p}:2: not UTF-8 text (invalid continuation byte at byte ")
    assert line.endswith("; predictions)")


# ------------------------------------------------------------------------------------------------ --output
def test_output_folder_gets_the_task_file(data, doc_ids, tmp_path):
    """`score --output DIR` once computed the score and then lost it with a traceback."""
    out = tmp_path / "scores"
    out.mkdir()
    r = score(data, write(tmp_path / "p.jsonl", lines(doc_ids)), "--output", out)
    assert r.exit_code == 0, r.output
    assert result_files(out) == [out / "pope.json"]
    assert json.loads((out / "pope.json").read_text())["n"] == N_DOCS


def test_output_that_cannot_be_written_is_refused_before_scoring(data, doc_ids, tmp_path, monkeypatch):
    import mmeval.rescore

    def never(*a, **k):
        raise AssertionError("scored before the output was checked")

    monkeypatch.setattr(mmeval.rescore, "score_file", never)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = only_error_line(score(data, write(tmp_path / "p.jsonl", lines(doc_ids)), "--output", blocker / "o.json"))
    assert line == f"error: --output {blocker}: is a file; expected a folder"


# ------------------------------------------------------------------------------------- the one validator
def test_prediction_from_record_is_the_normalised_record_check():
    assert prediction_from_record({"doc_id": "a", "prediction": "Yes", "candidate_probs": {"Yes": 1, "No": 0},
                                   "n_tokens": 2}, "f:1") == Prediction("Yes", {"Yes": 1.0, "No": 0.0}, 2)
    assert prediction_from_record({"doc_id": "a", "error": "boom"}, "f:1") == Prediction(error="boom")
    assert prediction_from_record({"doc_id": "a", "prediction": ""}, "f:1") == Prediction("")
    with pytest.raises(DataError, match="f:9: no prediction field"):
        prediction_from_record({"doc_id": "a"}, "f:9")
    with pytest.raises(DataError, match=r"f:1: error is dict \{'x': 1\}; expected text"):
        prediction_from_record({"doc_id": "a", "error": {"x": 1}, "prediction": "y"}, "f:1")


def test_error_line_escapes_control_characters_of_the_input():
    """Found by the property test: a field named "\\r" made the one-line error two lines."""
    from mmeval.cli import one_line

    assert one_line('unrecognised predictions line (fields: \r, \n, a\tb)') == \
        "unrecognised predictions line (fields: \\r, \\n, a\\tb)"
    assert one_line("naïve — ok") == "naïve — ok"  # printable non-ASCII stays as it is
