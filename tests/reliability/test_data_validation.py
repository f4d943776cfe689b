"""Data is checked where it is read (`mmeval.data.sources`): column types and values for every task's
parquet rows, UTF-8 for JSON/JSONL files, and messages that say what is wrong with `--data`.
Each probe of issue 21 is a test: a binary question column, an integer one, a POPE category outside
the three, a list-typed category, non-UTF-8 JSONL, `--data` pointing at a file, an empty parquet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmeval.data.sources import COLUMN_TYPES, TEXT, check_record, read_jsonl
from mmeval.errors import DataError
from mmeval.registry import get_task
from mmeval.runner import load_task_docs
from tests.reliability.helpers import (
    SYNTH_TASKS,
    load_docs,
    mock_run,
    only_error_line,
    result_files,
    write_valid_layouts,
)

N = 6


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    return write_valid_layouts(tmp_path_factory.mktemp("layouts"), n=N)


def copy_task(layouts: Path, task: str, dest: Path) -> Path:
    shutil.copytree(layouts / task, dest / task)
    return dest


def rewrite_column(path: Path, column: str, values: pa.Array) -> None:
    """Replace one column of a parquet file (the `datasets` features metadata dropped with the old type)."""
    table = pq.read_table(path)
    i = table.schema.get_field_index(column)
    pq.write_table(table.set_column(i, column, values).replace_schema_metadata(None), path)


def parquet_with(root: Path, task: str, column: str) -> Path:
    return next(p for p in sorted((root / task).rglob("*.parquet")) if column in pq.read_schema(p).names)


QUESTION_TASKS = [t for t in SYNTH_TASKS if t != "vsr"]  # VSR's caption is in JSONL, tested below


# ------------------------------------------------------------------------------------------ column types
@pytest.mark.parametrize("task", QUESTION_TASKS)
def test_binary_question_column_is_decoded_as_utf8(layouts, tmp_path, task):
    """A question column stored as binary once made every prompt `b'...'`."""
    root = copy_task(layouts, task, tmp_path)
    path = parquet_with(root, task, "question")
    questions = pq.read_table(path).column("question").to_pylist()
    rewrite_column(path, "question", pa.array([q.encode() + " é".encode() for q in questions], pa.binary()))
    t = get_task(task)
    prompts = [t.request(d, t.default_protocol).prompt for d in load_task_docs(t, t.default_protocol, root, None)]
    assert prompts and all("é" in p and "b'" not in p and 'b"' not in p for p in prompts), prompts[:2]


@pytest.mark.parametrize("task", QUESTION_TASKS)
def test_binary_question_that_is_not_utf8_is_refused(layouts, tmp_path, task):
    root = copy_task(layouts, task, tmp_path)
    path = parquet_with(root, task, "question")
    n = pq.read_metadata(path).num_rows
    rewrite_column(path, "question", pa.array([b"ok"] * (n - 1) + [b"\xff\xfebad"], pa.binary()))
    line = only_error_line(mock_run(root, tmp_path / "out", task))
    assert line == (f"error: {path}: column question holds bytes that are not UTF-8 text (row {n - 1}: "
                    "invalid start byte at byte 0); expected text")
    assert result_files(tmp_path / "out") == []


@pytest.mark.parametrize("task", QUESTION_TASKS)
@pytest.mark.parametrize("values, held", [
    (lambda n: pa.array(range(n), pa.int64()), "integer values (int64)"),
    (lambda n: pa.array([0.5] * n), "float values (double)"),
    (lambda n: pa.array([["what?"]] * n), "list values (list<element: string>)"),
])
def test_question_column_of_another_type_is_refused(layouts, tmp_path, task, values, held):
    """An integer question column was once stringified silently."""
    root = copy_task(layouts, task, tmp_path)
    path = parquet_with(root, task, "question")
    rewrite_column(path, "question", values(pq.read_metadata(path).num_rows))
    line = only_error_line(mock_run(root, tmp_path / "out", task))
    assert line == f"error: {path}: column question holds {held}; expected text"


def test_an_empty_question_cell_is_refused(layouts, tmp_path):
    root = copy_task(layouts, "mme", tmp_path)
    path = parquet_with(root, "mme", "question")
    questions = pq.read_table(path).column("question").to_pylist()
    rewrite_column(path, "question", pa.array(questions[:2] + [None] + questions[3:], pa.string()))
    assert only_error_line(mock_run(root, tmp_path / "out", "mme")) == (
        f"error: {path}: column question is empty in row 2; expected text")


@pytest.mark.parametrize("column, values, expected", [
    ("question_id", lambda n: pa.array([[1]] * n), "column question_id holds list values (list<element: int64>); "
                                                   "expected text or integer ids"),
    ("answer", lambda n: pa.array(range(n)), "column answer holds integer values (int64); expected text (or empty)"),
    ("category", lambda n: pa.array(["random"] * (n - 1) + [None]), "column category is empty in row {last}; "
                                                                    "expected one of adversarial, popular, random"),
])
def test_pope_columns_are_typed(layouts, tmp_path, column, values, expected):
    root = copy_task(layouts, "pope", tmp_path)
    path = parquet_with(root, "pope", column)
    n = pq.read_metadata(path).num_rows
    rewrite_column(path, column, values(n))
    assert only_error_line(mock_run(root, tmp_path / "out", "pope")) == f"error: {path}: " + expected.format(last=n - 1)


def test_pope_category_outside_the_three_is_refused(layouts, tmp_path):
    """It was counted in `n` and dropped from every metric."""
    root = copy_task(layouts, "pope", tmp_path)
    path = parquet_with(root, "pope", "category")
    cats = pq.read_table(path).column("category").to_pylist()
    rewrite_column(path, "category", pa.array(cats[:3] + ["Adversarial "] + ["populer"] + cats[5:]))
    assert only_error_line(mock_run(root, tmp_path / "out", "pope")) == (
        f"error: {path}: column category has the value 'populer' in row 4; expected one of adversarial, "
        "popular, random")  # 'Adversarial ' is read as adversarial (stripped, lower-cased), as the task reads it


def test_pope_category_as_a_list_is_refused(layouts, tmp_path):
    """It gave empty metrics and exit 0."""
    root = copy_task(layouts, "pope", tmp_path)
    path = parquet_with(root, "pope", "category")
    rewrite_column(path, "category", pa.array([[c] for c in pq.read_table(path).column("category").to_pylist()]))
    assert only_error_line(mock_run(root, tmp_path / "out", "pope")) == (
        f"error: {path}: column category holds list values (list<element: string>); "
        "expected one of adversarial, popular, random")


def test_scienceqa_answer_must_be_the_choice_index(layouts, tmp_path):
    root = copy_task(layouts, "scienceqa_img", tmp_path)
    path = parquet_with(root, "scienceqa_img", "answer")
    assert len(load_docs("scienceqa_img", root)) == N  # integers: read
    rewrite_column(path, "answer", pa.array(["A"] * pq.read_metadata(path).num_rows))
    assert only_error_line(mock_run(root, tmp_path / "out", "scienceqa_img")) == (
        f"error: {path}: column answer holds text values (string); expected integers")


def test_column_types_name_only_what_the_lmms_lab_copies_hold():
    """Every typed column is one some task requires (a stale entry would check nothing)."""
    import inspect

    import tasks

    sources = "".join(inspect.getsource(m) for m in _task_modules(tasks))
    assert all(f'"{name}"' in sources for name in COLUMN_TYPES)


def _task_modules(package):
    import importlib
    import pkgutil

    return [importlib.import_module(f"tasks.{i.name}") for i in pkgutil.iter_modules(package.__path__)]


# ------------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("content, says", [
    (b"", "not a readable parquet file (0 bytes; ArrowInvalid: Parquet file size is 0 bytes)"),
    (b"PAR1 truncated", "not a readable parquet file (14 bytes; ArrowInvalid:"),
])
def test_a_parquet_file_that_is_not_parquet(tmp_path, content, says):
    """An empty parquet once said only "DatasetGenerationError"."""
    path = tmp_path / "pope" / "data" / "test-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    line = only_error_line(mock_run(tmp_path, tmp_path / "out", "pope"))
    assert line.startswith(f"error: {path}: {says}")


def test_a_parquet_file_without_rows(layouts, tmp_path):
    root = copy_task(layouts, "pope", tmp_path)
    path = parquet_with(root, "pope", "question")
    pq.write_table(pq.read_table(path).slice(0, 0), path)
    assert only_error_line(mock_run(root, tmp_path / "out", "pope")) == (
        f"error: {root / 'pope'}: the parquet files hold no rows (test-00000-of-00001.parquet)")


def test_data_pointing_at_a_parquet_file(layouts, tmp_path):
    """It said "no .parquet files found"."""
    root = copy_task(layouts, "pope", tmp_path)
    path = parquet_with(root, "pope", "question")
    assert only_error_line(mock_run(path, tmp_path / "out", "pope")) == (
        f"error: --data {path}: is a file; expected a folder holding one folder per task (DIR/pope/) or pope's "
        f"own folder (e.g. --data {path.parent})")


def test_data_pointing_at_vsr_test_jsonl(layouts, tmp_path):
    """It said "has no test.jsonl"."""
    root = copy_task(layouts, "vsr", tmp_path)
    line = only_error_line(mock_run(root / "vsr" / "test.jsonl", tmp_path / "out", "vsr"))
    assert line.startswith(f"error: --data {root / 'vsr' / 'test.jsonl'}: is a file; expected a folder")
    assert line.endswith(f"(e.g. --data {root / 'vsr'})")


def test_non_utf8_jsonl_data_names_the_file_and_line(layouts, tmp_path):
    root = copy_task(layouts, "vsr", tmp_path)
    jsonl = root / "vsr" / "test.jsonl"
    lines = jsonl.read_bytes().splitlines(keepends=True)
    lines[3] = lines[3].replace(b"The ", b"The \xe9 ", 1)  # latin-1, not UTF-8
    jsonl.write_bytes(b"".join(lines))
    line = only_error_line(mock_run(root, tmp_path / "out", "vsr"))
    assert line.startswith(f"error: {jsonl}:4: not UTF-8 text (invalid continuation byte at byte ")
    assert line.endswith("; VSR zero-shot test split)")


def test_non_utf8_json_data_names_the_file_and_line(tmp_path):
    from mmeval.data.sources import read_json

    path = tmp_path / "questions.json"
    path.write_bytes(b'{"questions": [\n{"q": "ok"},\n{"q": "caf\xe9"}]}')
    with pytest.raises(DataError, match=r"questions.json:3: not UTF-8 text \(invalid continuation byte at byte 39; "
                                        r"VQAv2 questions\)"):
        read_json(path, "VQAv2 questions")


@pytest.mark.parametrize("row, says", [
    ('{"image": "a.jpg", "caption": 5, "label": 1}', "field caption is integer 5; expected text"),
    ('{"image": "a.jpg", "caption": "x", "label": "yes"}', "field label is text 'yes'; expected 0 or 1"),
    ('{"image": "a.jpg", "caption": "x", "label": 2}', "field label is 2; expected 0 or 1"),
    ('{"image": "a.jpg", "caption": "x", "label": true}', "field label is bool True; expected 0 or 1"),
    ('{"image": ["a.jpg"], "caption": "x", "label": 1}', "field image is list ['a.jpg']; expected text"),
    ('{"caption": "x", "label": 1}', "missing field 'image'"),
])
def test_vsr_jsonl_fields_are_typed(layouts, tmp_path, row, says):
    root = copy_task(layouts, "vsr", tmp_path)
    jsonl = root / "vsr" / "test.jsonl"
    lines = jsonl.read_text().splitlines()
    jsonl.write_text("\n".join(lines[:2] + [row] + lines[3:]) + "\n")
    assert only_error_line(mock_run(root, tmp_path / "out", "vsr")) == f"error: {jsonl}:3: {says}"


def test_jsonl_lines_must_be_objects(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x.jsonl:2: expected a JSON object, got list"):
        read_jsonl(path, "things")


def test_check_record_accepts_what_the_official_files_hold():
    check_record({"image": "a.jpg", "caption": "The cat is on the mat.", "label": 0}, {"image": TEXT}, "x:1")
    with pytest.raises(DataError, match="x:1: expected an object with fields image, got text"):
        check_record("a.jpg", {"image": TEXT}, "x:1")


def test_a_layout_problem_no_check_names_is_still_one_line(layouts, tmp_path):
    """The fallback: an exception inside a task's reader on malformed data names the task and folder."""
    root = copy_task(layouts, "vqav2", tmp_path)
    path = parquet_with(root, "vqav2", "question_id")  # text ids are ids, but VQAv2's must be numbers
    rewrite_column(path, "question_id", pa.array([f"q{i}" for i in range(pq.read_metadata(path).num_rows)]))
    line = only_error_line(mock_run(root, tmp_path / "out", "vqav2"))
    assert line.startswith(f"error: task vqav2: the data in {root / 'vqav2'} is not in a layout it reads "
                           "(ValueError: invalid literal for int() with base 10: 'q0')")


def test_every_task_reads_its_valid_layout(layouts):
    """The checks refuse nothing that the tasks' own writers produce (the other tests' baseline)."""
    for task in [*SYNTH_TASKS, "coco_caption", "nocaps", "textcaps"]:
        assert len(load_docs(task, layouts)) > 0, task


def test_run_results_on_the_valid_layout_are_written(layouts, tmp_path):
    root = copy_task(layouts, "pope", tmp_path)
    r = mock_run(root, tmp_path / "out", "pope")
    assert r.exit_code == 0, r.output
    run = next((tmp_path / "out").iterdir())
    assert json.loads((run / "pope.json").read_text())["n"] == N
