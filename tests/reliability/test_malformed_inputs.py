"""Property-based: malformed rows in every task's layout and malformed prediction lines never reach a
user as a traceback, and an error never leaves a result file behind.

Valid data comes from the tasks' own writers (`mmeval synth` for the ten benchmarks, `write_layout`
for the caption tasks); hypothesis then corrupts it: a column retyped (integers, floats, booleans,
bytes that are or are not UTF-8, lists, nulls), dropped or emptied in one cell; a file emptied,
truncated, replaced by garbage or left without rows; a JSONL field given any JSON value, dropped,
or its line replaced by any text or bytes. Each case must either load (and then run, with results
written) or stop with one error line, exit 2 and no file written. One property is sharper: a column
the task requires (dropping it is "missing column") given a type no column of any task may hold
(floats, booleans) is refused by the shared column check, naming the column.

The quick loop runs a few examples per property (derandomized, so CI sees the same ones); the
`slow`-marked variants run many more.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import mmeval.data.sources as sources
from mmeval.errors import MMEvalError
from mmeval.registry import get_task
from mmeval.runner import load_task_docs
from tests.reliability.helpers import (
    CAPTION_TASKS,
    SYNTH_TASKS,
    cli,
    load_docs,
    mock_run,
    only_error_line,
    result_files,
    write_valid_layouts,
)

QUICK = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MANY = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def quick_and_many(check):
    """The property `check(<fixtures>..., data)` as two tests: a quick one (QUICK) and a `slow` one (MANY)."""
    return QUICK(given(data=st.data())(check)), pytest.mark.slow(MANY(given(data=st.data())(check)))


PARQUET_TASKS = tuple(t for t in (*SYNTH_TASKS, *CAPTION_TASKS) if t != "vsr")
N = 5


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    return write_valid_layouts(tmp_path_factory.mktemp("layouts"), n=N)


@pytest.fixture(scope="module", autouse=True)
def own_datasets_cache(tmp_path_factory):
    """Every example is new parquet files: their `datasets` cache goes to a folder of this module's."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf-datasets-cache"))
        yield


# ------------------------------------------------------------------------------------ corrupting parquet
def retyped(column: pa.ChunkedArray, kind: str) -> pa.Array:
    values, n = column.to_pylist(), len(column)
    return {
        "int": lambda: pa.array(range(n), pa.int64()),
        "float": lambda: pa.array([0.5 + i for i in range(n)]),
        "bool": lambda: pa.array([i % 2 == 0 for i in range(n)]),
        "bytes_utf8": lambda: pa.array([json.dumps(v, default=str).encode() for v in values], pa.binary()),
        "bytes_not_utf8": lambda: pa.array([b"\xff\xfe" + str(i).encode() for i in range(n)], pa.binary()),
        "list": lambda: pa.array([[json.dumps(v, default=str)] for v in values]),
        "all_null": lambda: pa.nulls(n, pa.string()),
        "empty_text": lambda: pa.array([""] * n),
        "text": lambda: pa.array([json.dumps(v, default=str) for v in values]),
    }[kind]()


KINDS = ("int", "float", "bool", "bytes_utf8", "bytes_not_utf8", "list", "all_null", "empty_text", "text")


def corrupt_parquet(path: Path, draw) -> str:
    """Apply one drawn corruption to a parquet file; returns what was done (for the failure report)."""
    what = draw(st.sampled_from(["retype", "drop", "null_cell", "empty_file", "garbage", "truncate", "no_rows"]))
    if what in ("empty_file", "garbage", "truncate"):
        data = path.read_bytes()
        path.write_bytes({"empty_file": b"", "garbage": b"not parquet at all",
                          "truncate": data[: len(data) // 2]}[what])
        return what
    table = pq.read_table(path).replace_schema_metadata(None)  # `datasets` features describe the old types
    if what == "no_rows":
        pq.write_table(table.slice(0, 0), path)
        return what
    column = draw(st.sampled_from(table.column_names))
    i = table.schema.get_field_index(column)
    if what == "drop":
        table = table.remove_column(i)
    elif what == "null_cell":
        row = draw(st.integers(0, table.num_rows - 1))
        values = table.column(column).to_pylist()
        values[row] = None
        table = table.set_column(i, column, pa.array(values, table.schema.field(column).type))
    else:
        kind = draw(st.sampled_from(KINDS))
        table = table.set_column(i, column, retyped(table.column(column), kind))
        what = f"retype {column} -> {kind}"
    pq.write_table(table, path)
    return f"{what} {column}"


def parquet_file(layouts: Path, task: str):
    """One of the task's parquet files, as a path relative to the data root."""
    return st.sampled_from(sorted(p.relative_to(layouts) for p in (layouts / task).rglob("*.parquet")))


def task_copy(layouts: Path, task: str, dest: Path) -> Path:
    shutil.copytree(layouts / task, dest / task)
    return dest


def loads_or_one_line(task_name: str, root: Path) -> bool:
    """Load the task's documents and build every protocol's requests: True when that works; False
    when it stops with an MMEvalError of one line. Any other exception fails the test."""
    task = get_task(task_name)
    try:
        for protocol in task.protocols:  # a task's data may depend on the protocol (VQAv2's split, POPE's files)
            for d in load_task_docs(task, protocol, root, None):
                task.request(d, protocol)
        return True
    except MMEvalError as exc:
        assert "\n" not in str(exc) and str(exc), repr(exc)
        return False


def runs_or_one_line(task: str, root: Path, out: Path) -> None:
    """`mmeval run` with the mock: results written (exit 0, or 3 for failed samples), or one error line,
    exit 2 and nothing written."""
    r = mock_run(root, out, task)
    if r.exit_code == 2:
        only_error_line(r)
        assert result_files(out) == [], r.output
    else:
        assert r.exit_code in (0, 3) and r.exception is None or isinstance(r.exception, SystemExit), r.output
        assert any(p.name == f"{task}.json" for p in result_files(out)), r.output


def check_corrupted_parquet(layouts: Path, data) -> None:
    """One corruption of one parquet file of one task: it loads (and runs), or is one line and nothing written."""
    task = data.draw(st.sampled_from(PARQUET_TASKS))
    with tempfile.TemporaryDirectory() as tmp:
        root = task_copy(layouts, task, Path(tmp))
        path = root / data.draw(parquet_file(layouts, task))
        note(f"{task}: {path.relative_to(root)}: {corrupt_parquet(path, data.draw)}")
        loaded = loads_or_one_line(task, root)
        event("loaded" if loaded else "refused with one line")
        if task in SYNTH_TASKS:  # the caption metrics run on Java: end to end only for the ten benchmarks
            runs_or_one_line(task, root, Path(tmp) / "out")
        elif not loaded:
            assert not (Path(tmp) / "out").exists()


test_corrupted_parquet, test_corrupted_parquet_many = quick_and_many(check_corrupted_parquet)


# ------------------------------------------------------------------ required columns are always typed
def test_every_parquet_reader_checks_every_required_column(layouts, monkeypatch):
    """Each task's parquet rows go through `check_table`, and each column it requires has a type there."""
    seen: dict[str, list] = {}
    real = sources.check_table

    def spy(schema, read_columns, required, types, where):
        seen.setdefault(current, []).append((list(required), sources.column_types(required, types)))
        return real(schema, read_columns, required, types, where)

    monkeypatch.setattr(sources, "check_table", spy)
    for current in PARQUET_TASKS:
        load_docs(current, layouts)
    assert set(seen) == set(PARQUET_TASKS)
    for task, calls in seen.items():
        for required, typed in calls:
            assert set(required) == set(typed), (task, set(required) - set(typed))


def check_required_column_of_no_type(layouts, data) -> None:
    """A column the task requires (dropping it is refused), retyped to floats or booleans: refused, naming it."""
    task = data.draw(st.sampled_from(PARQUET_TASKS))
    with tempfile.TemporaryDirectory() as tmp:
        root = task_copy(layouts, task, Path(tmp))
        path = root / data.draw(parquet_file(layouts, task))
        table = pq.read_table(path).replace_schema_metadata(None)
        column = data.draw(st.sampled_from(table.column_names))
        original = path.read_bytes()
        pq.write_table(table.drop_columns([column]), path)
        try:
            load_docs(task, root)
            required = False
        except MMEvalError as exc:
            required = f"missing column(s) {column}" in str(exc) or f", {column}" in str(exc).split("(expected")[0]
        kind = data.draw(st.sampled_from(["float", "bool"]))
        path.write_bytes(original)
        i = table.schema.get_field_index(column)
        pq.write_table(table.set_column(i, column, retyped(table.column(column), kind)), path)
        note(f"{task}: {column} (required: {required}) -> {kind}")
        if required:
            with pytest.raises(MMEvalError, match=f"column {column} holds (float|bool) values"):
                load_docs(task, root)
        else:
            loads_or_one_line(task, root)


test_required_column_of_unread_type, test_required_column_of_unread_type_many = quick_and_many(
    check_required_column_of_no_type)


# --------------------------------------------------------------------------------------- VSR's JSONL
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6)
odd_lines = st.one_of(st.binary(max_size=30), st.text(max_size=30).map(str.encode),
                      json_values.map(lambda v: json.dumps(v).encode()))


def check_corrupted_vsr(layouts, data) -> None:
    """One line of VSR's test.jsonl corrupted: it loads and runs, or is one line and nothing written."""
    with tempfile.TemporaryDirectory() as tmp:
        root = task_copy(layouts, "vsr", Path(tmp))
        jsonl = root / "vsr" / "test.jsonl"
        lines = jsonl.read_bytes().splitlines()
        n = data.draw(st.integers(0, len(lines) - 1))
        what = data.draw(st.sampled_from(["field", "drop", "line"]))
        if what == "line":
            lines[n] = data.draw(odd_lines).replace(b"\n", b" ")
        else:
            row = json.loads(lines[n])
            field = data.draw(st.sampled_from(sorted(row)))
            if what == "drop":
                del row[field]
            else:
                row[field] = data.draw(json_values)
            lines[n] = json.dumps(row).encode()
        note(f"line {n + 1}: {lines[n][:200]!r}")
        jsonl.write_bytes(b"\n".join(lines) + b"\n")
        loads_or_one_line("vsr", root)
        runs_or_one_line("vsr", root, Path(tmp) / "out")


test_corrupted_vsr_jsonl, test_corrupted_vsr_jsonl_many = quick_and_many(check_corrupted_vsr)


# --------------------------------------------------------------------------------------- prediction lines
@pytest.fixture(scope="module")
def pope_lines(layouts) -> list[bytes]:
    docs = load_docs("pope", layouts)
    return [json.dumps({"doc_id": d.doc_id, "prediction": ["no", "yes"][i % 2],
                        "candidate_probs": {"Yes": 0.3 + 0.4 * (i % 2), "No": 0.7 - 0.4 * (i % 2)},
                        "n_tokens": 1}).encode() for i, d in enumerate(docs)]


def check_malformed_predictions(layouts, pope_lines, data) -> None:
    """1-3 prediction lines corrupted: scored with finite metrics, or one line and no output file."""
    lines = list(pope_lines)
    for _ in range(data.draw(st.integers(1, 3))):
        n = data.draw(st.integers(0, len(lines) - 1))
        what = data.draw(st.sampled_from(["field", "drop", "prob", "line"]))
        if what == "line":
            lines[n] = data.draw(odd_lines).replace(b"\n", b" ")
        else:
            try:
                row = json.loads(lines[n])
            except ValueError:
                continue
            if not isinstance(row, dict) or not row:
                continue
            if what == "prob" and isinstance(row.get("candidate_probs"), dict):
                row["candidate_probs"][data.draw(st.sampled_from(["Yes", "No"]))] = data.draw(json_values)
            elif what == "drop":
                del row[data.draw(st.sampled_from(sorted(row)))]
            else:
                row[data.draw(st.sampled_from(["doc_id", "prediction", "candidate_probs", "n_tokens", "error"]))] = \
                    data.draw(json_values)
            lines[n] = json.dumps(row).encode()
        note(f"line {n + 1}: {lines[n][:200]!r}")
    protocol = data.draw(st.sampled_from(["llava", "prismatic", "lmms-eval"]))
    with tempfile.TemporaryDirectory() as tmp:
        preds, out = Path(tmp) / "p.jsonl", Path(tmp) / "scores" / "pope.json"
        preds.write_bytes(b"\n".join(lines) + b"\n")
        r = cli("score", "--task", "pope", "--predictions", preds, "--data", layouts, "--protocol", protocol,
                "--bootstrap", "0", "--output", out)
        if r.exit_code == 2:
            only_error_line(r)
            assert not out.exists()
        else:
            assert r.exit_code == 0 and r.exception is None, (r.exception, r.output)
            summary = json.loads(out.read_text())
            # inputs are finite; only an AUC over one class is undefined (NaN, as its docstring says)
            assert all(math.isfinite(v) for k, v in summary["metrics"].items() if "auc" not in k), summary["metrics"]


test_malformed_prediction_lines, test_malformed_prediction_lines_many = quick_and_many(check_malformed_predictions)
