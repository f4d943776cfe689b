"""What `mmeval run` shows a person: one progress bar per task on stderr (samples/s, ETA), no
third-party progress lines, each warning once, the final table on stdout; `--quiet` (errors and the
table only); `--json` (the summary as JSON, alone on stdout)."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.cli import main
from mmeval.synth.benchmarks import write_benchmarks

TASKS = ("pope", "gqa", "vsr")  # two parquet layouts (read through `datasets`) and VSR's jsonl


@pytest.fixture
def synth_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_benchmarks(data, seed=0, counts=12, tasks=TASKS)
    return data


def _run(data: Path, out: Path, *extra: str):
    args = ["run", "--model", "mock", "--tasks", ",".join(TASKS), "--data", str(data), "--output", str(out),
            "--batch-size", "4", "--bootstrap", "20", *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _table_rows(stdout: str) -> list[str]:
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["task", "protocol", "metric", "value", "95%", "CI", "n", "errors"], stdout
    return [ln.split()[0] for ln in lines[2:]]


def test_default_output_one_bar_per_task_no_third_party_lines_table_on_stdout(synth_data, tmp_path):
    r = _run(synth_data, tmp_path / "runs")
    assert r.exit_code == 0, r.output
    assert _table_rows(r.stdout) == list(TASKS)  # stdout: the table and nothing else
    pieces = [p.strip() for p in re.split(r"[\r\n]+", r.stderr) if p.strip()]
    bars = [p for p in pieces if re.match(r"^\w+:\s+\d+%\|", p)]
    assert {b.split(":")[0] for b in bars} == set(TASKS)
    for task in TASKS:  # its last state: all done, elapsed<ETA, samples per second
        last = [b for b in bars if b.startswith(task + ":")][-1]
        assert re.fullmatch(rf"{task}:\s+100%\|\S+\| 12/12 \[\d\d:\d\d<\d\d:\d\d, +[\d.]+ samples/s\]", last), last
    assert "Generating" not in r.stderr and "examples/s" not in r.stderr  # the datasets library's bars
    others = [p for p in pieces if p not in bars]
    assert others[0].startswith("run directory: ") and len(others) == 1 + len(TASKS), others  # + one line per task


def test_quiet_shows_only_the_table_and_errors(synth_data, tmp_path):
    r = _run(synth_data, tmp_path / "runs", "--quiet")
    assert r.exit_code == 0 and r.stderr == ""
    assert _table_rows(r.stdout) == list(TASKS)

    from tasks.pope import Pope
    from tests.conftest import pope_rows

    broken = tmp_path / "broken"
    Pope.write_layout(broken / "pope", pope_rows(broken={1}))
    r = CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", "pope", "--data", str(broken), "--output",
                                  str(tmp_path / "runs2"), "--bootstrap", "0", "-q"], catch_exceptions=False)
    assert r.exit_code == 3
    assert r.stderr.splitlines() == ["error: 3 sample(s) failed (see the samples files); metrics exclude them"]
    assert _table_rows(r.stdout) == ["pope"]


def test_json_prints_the_summary_alone_on_stdout(synth_data, tmp_path, monkeypatch):
    from model_adapters.mock import MockAdapter

    generate = MockAdapter.generate

    def chatty(self, requests):
        print("a library printing to stdout")
        return generate(self, requests)

    monkeypatch.setattr(MockAdapter, "generate", chatty)
    r = _run(synth_data, tmp_path / "runs", "--json")
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)  # the whole of stdout is one JSON document
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path / "runs" and list(summary["tasks"]) == list(TASKS)
    for task in TASKS:
        assert summary["tasks"][task] == json.loads((run_dir / f"{task}.json").read_text())
    assert "a library printing to stdout" in r.stderr and "samples/s" in r.stderr


def test_a_warning_raised_per_batch_from_two_places_is_shown_once(synth_data, tmp_path, monkeypatch):
    from model_adapters.mock import MockAdapter

    generate, calls = MockAdapter.generate, []

    def warn_here():
        warnings.warn("mock: answers are hashes", UserWarning, stacklevel=1)

    def warn_there():
        warnings.warn("mock: answers are hashes", UserWarning, stacklevel=1)

    def warning(self, requests):
        calls.append(1)
        (warn_here if len(calls) % 2 else warn_there)()
        return generate(self, requests)

    monkeypatch.setattr(MockAdapter, "generate", warning)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")  # without the run's own filtering, every batch would show it
        r = _run(synth_data, tmp_path / "runs")
        assert r.exit_code == 0
        assert len(calls) > 2
        assert [str(w.message) for w in shown if "hashes" in str(w.message)] == ["mock: answers are hashes"]
        shown.clear()
        r = _run(synth_data, tmp_path / "runs2", "--quiet")
        assert r.exit_code == 0 and not [w for w in shown if "hashes" in str(w.message)]
