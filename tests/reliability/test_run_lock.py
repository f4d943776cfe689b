"""One run at a time per run folder: a second `mmeval run` into a folder in use stops at once with
one line naming the holder's pid (issue 21: two runs at once wrote 110-141 sample lines for 60
documents). The lock dies with its holder, kill -9 included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmeval.cli import main
from mmeval.errors import RunError
from mmeval.runlock import RunLock
from tasks.pope import Pope
from tests.conftest import pope_rows

ROOT = Path(__file__).resolve().parents[2]


def test_a_held_folder_stops_a_second_run_with_one_line_naming_the_pid(pope_data, tmp_path):
    out = tmp_path / "out"
    args = ["run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data), "--output", str(out),
            "--run-name", "r", "--no-progress", "--bootstrap", "0"]
    with RunLock(out / "r"):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, r.output
        lines = [x for x in r.output.strip().splitlines() if not x.startswith("Generating")]  # datasets' bar
        assert len(lines) == 1 and lines[0].startswith(f"error: {out / 'r'}: in use by another mmeval run "
                                                       f"(pid {os.getpid()} on ")
        assert not (out / "r" / "pope.samples.jsonl").exists() and not (out / "r" / "run.json").exists()
        with pytest.raises(RunError, match=f"pid {os.getpid()}"):  # the same process, another open: refused too
            RunLock(out / "r").acquire()
    r = CliRunner().invoke(main, args)  # released: the folder is free
    assert r.exit_code == 0, r.output
    assert (out / "r" / ".lock").read_text() == ""


def wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def holder_pid(lock: Path) -> int | None:
    try:
        return json.loads(lock.read_text() or "{}").get("pid")
    except (OSError, ValueError):
        return None


@pytest.mark.slow  # three `mmeval run` processes
def test_two_processes_one_folder_then_a_kill_9_frees_it(tmp_path):
    data = tmp_path / "data"
    Pope.write_layout(data / "pope", pope_rows(n_images=20, per_image=3))  # 60 documents
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    # 2 s a batch: the first still holds the folder when the second (seconds of imports on a loaded machine) arrives
    cmd = [sys.executable, "-m", "mmeval", "run", "--model", "mock", "--model-args", "delay=2", "--tasks", "pope",
           "--data", str(data), "--output", str(tmp_path / "out"), "--run-name", "r", "--batch-size", "3",
           "--no-progress", "--bootstrap", "0"]
    run_dir = tmp_path / "out" / "r"
    lock, samples = run_dir / ".lock", run_dir / "pope.samples.jsonl"

    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: holder_pid(lock) == first.pid, "the first run to hold the folder")
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run ended before the second was refused: slow the first down"
        n_lines = len(samples.read_text().splitlines()) if samples.exists() else 0
    finally:
        first.send_signal(signal.SIGKILL)  # killed mid-run, holding the lock
        first.wait()
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {run_dir}: in use by another mmeval run (pid {first.pid} on "), lines
    assert not any("Traceback" in x for x in lines)
    assert n_lines < 60

    # the killed holder left its pid in the file but no lock: the next run resumes and finishes
    assert holder_pid(lock) == first.pid
    fast = [c if c != "delay=2" else "delay=0" for c in cmd]  # the mock's identity leaves out its delay
    done = subprocess.run(fast, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = [json.loads(x)["doc_id"] for x in samples.read_text().splitlines()]
    assert len(ids) == 60 and len(set(ids)) == 60  # every document answered once: the second run wrote nothing
    assert lock.read_text() == ""
