"""Bad input gets one clear line and a non-zero exit."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mmeval.cli import main
from tasks.pope import Pope
from tests.conftest import pope_rows


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_unknown_names_list_known_ones(pope_data, tmp_path):
    r = invoke("run", "--model", "mock", "--tasks", "nope", "--data", str(pope_data))
    assert r.exit_code == 2 and "unknown task 'nope'" in r.output and "pope" in r.output
    r = invoke("run", "--model", "gpt-9", "--tasks", "pope", "--data", str(pope_data))
    assert r.exit_code == 2 and "unknown model 'gpt-9'" in r.output and "mock" in r.output
    r = invoke("run", "--model", "mock", "--tasks", "pope", "--protocol", "vibes", "--data", str(pope_data))
    assert r.exit_code == 2 and "unknown protocol 'vibes'" in r.output and "prismatic" in r.output
    r = invoke("run", "--model", "mock", "--model-args", "temperature=1", "--tasks", "pope", "--data", str(pope_data))
    assert r.exit_code == 2 and "temperature" in r.output and "seed" in r.output


def test_missing_data_path(tmp_path):
    r = invoke("run", "--model", "mock", "--tasks", "pope", "--data", str(tmp_path / "absent"))
    assert r.exit_code == 2 and "no such directory" in r.output


def test_parquet_without_expected_columns(tmp_path):
    from mmeval.data.writers import write_parquet

    rows = [{k: v for k, v in r.items() if k not in ("category", "image_source")} for r in pope_rows(2)]
    write_parquet(tmp_path / "pope", "test", rows)
    r = invoke("run", "--model", "mock", "--tasks", "pope", "--data", str(tmp_path))
    assert r.exit_code == 2
    assert "missing column(s) image_source, category" in r.output


def test_no_data_offline_names_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = invoke("run", "--model", "mock", "--tasks", "pope", "--output", str(tmp_path))
    assert r.exit_code == 2 and "lmms-lab/POPE" in r.output and "--data" in r.output


def test_unreadable_image_is_recorded_and_run_goes_on(tmp_path):
    Pope.write_layout(tmp_path / "pope", pope_rows(n_images=4, broken={1}))
    out = tmp_path / "out"
    r = invoke("run", "--model", "mock", "--tasks", "pope", "--data", str(tmp_path), "--output", str(out),
               "--no-progress")
    assert r.exit_code == 3 and "3 sample(s) failed" in r.output
    run_dir = next(out.iterdir())
    lines = [json.loads(line) for line in (run_dir / "pope.samples.jsonl").read_text().splitlines()]
    errors = [rec for rec in lines if rec["error"]]
    assert len(lines) == 12 and len(errors) == 3 and "unreadable image" in errors[0]["error"]
    res = json.loads((run_dir / "pope.json").read_text())
    assert res["n"] == 9 and res["n_errors"] == 3
    r = invoke("run", "--model", "mock", "--tasks", "pope", "--data", str(tmp_path), "--output", str(out),
               "--no-progress", "--allow-errors")
    assert r.exit_code == 0


def test_predictions_with_unknown_or_duplicate_ids(pope_data, tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"doc_id": "random/0", "prediction": "yes"}\n{"doc_id": "nowhere/1", "prediction": "no"}\n')
    r = invoke("score", "--task", "pope", "--predictions", str(bad), "--data", str(pope_data))
    assert r.exit_code == 2 and "unknown doc_id 'nowhere/1'" in r.output and "p.jsonl:2" in r.output
    bad.write_text('{"doc_id": "random/0", "prediction": "yes"}\n{"doc_id": "random/0", "prediction": "no"}\n')
    r = invoke("score", "--task", "pope", "--predictions", str(bad), "--data", str(pope_data))
    assert r.exit_code == 2 and "duplicate doc_id 'random/0'" in r.output
    bad.write_text('{"id": 3}\n')
    r = invoke("score", "--task", "pope", "--predictions", str(bad), "--data", str(pope_data))
    assert r.exit_code == 2 and "doc_id and prediction" in r.output


def test_task_folder_aliases(tmp_path):
    from mmeval.data.sources import task_data_dir

    (tmp_path / "MME").mkdir()
    assert task_data_dir("mme", tmp_path, ("MME",)) == tmp_path / "MME"
    (tmp_path / "mme").mkdir()
    assert task_data_dir("mme", tmp_path, ("MME",)) == tmp_path / "mme"  # our own name first
    assert task_data_dir("pope", tmp_path) == tmp_path  # no sub-folder: the folder is the task's own
