"""Data-parallel evaluation: a 2-process gloo run gives the same samples and metrics as one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmeval.distributed import shard_by_group
from mmeval.types import Request

ROOT = Path(__file__).resolve().parents[2]


def test_shards_are_whole_groups_and_cover_everything():
    reqs = [Request(doc_id=str(i), prompt="q", group_key=f"img{i % 5}") for i in range(23)]
    shards = [shard_by_group(reqs, 3, r) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(23))
    for s in shards:
        others = {reqs[i].group_key for t in shards if t is not s for i in t}
        assert not {reqs[i].group_key for i in s} & others
    assert max(map(len, shards)) - min(map(len, shards)) <= 5  # balanced to within a group


@pytest.mark.slow  # torchrun with two processes
def test_two_process_gloo_run_equals_single_process(pope_data, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    base = [sys.executable, "-m", "mmeval", "run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data),
            "--no-progress", "--batch-size", "2", "--run-name", "r"]
    one = subprocess.run(base + ["--output", str(tmp_path / "one")], env=env, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(base + ["--output", str(tmp_path / "two"), "--num-processes", "2"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one/r/pope.json").read_text())
    b = json.loads((tmp_path / "two/r/pope.json").read_text())
    assert b["timings"]["processes"] == 2 and b["n"] == a["n"] == 18
    assert a["metrics"] == b["metrics"] and a["ci95"] == b["ci95"]

    def rows(p):
        recs = [json.loads(line) for line in p.read_text().splitlines()]
        return sorted((r["doc_id"], r["prediction"]) for r in recs)

    assert rows(tmp_path / "one/r/pope.samples.jsonl") == rows(tmp_path / "two/r/pope.samples.jsonl")
    assert not list((tmp_path / "two/r").glob("*.rank*.jsonl"))  # merged
