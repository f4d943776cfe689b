"""End-to-end evaluation throughput of our adapters through the real runner (image decoding and
preprocessing, vision encoding, prefill, decoding, scoring, sample logging), and the same
adapter driven as the reference repositories evaluate (one sample at a time, full sequence)."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmeval.adapter import Adapter
from mmeval.runner import RunConfig, Runner, TaskPlan
from mmeval.task import Task
from mmeval.types import Doc, Request


def configure(adapter: Adapter, prefix_cache: bool, cuda_graphs: bool, ignore_eos: bool) -> None:
    """Switch the runtime's speed features (the comparison paths are the same model, slower)."""
    rt = getattr(adapter, "runtime", None)
    if rt is None:
        return
    rt.prefix_cache, rt.cuda_graphs = prefix_cache, cuda_graphs
    rt._states.clear()
    if not hasattr(rt, "_real_eos"):
        rt._real_eos = rt.eos_token_id
    rt.eos_token_id = None if ignore_eos else rt._real_eos


def timed_run(adapter: Adapter, task: Task, protocol: str, docs: Sequence[Doc], requests: Sequence[Request],
              batch_size: int | str, device: str, label: str) -> dict[str, Any]:
    """Run docs through the runner into a scratch folder; return timings and predictions
    (`batch_size`: the size the run answered at, after `auto` and any halving)."""
    with tempfile.TemporaryDirectory(prefix="mmeval-bench-") as tmp:
        cfg = RunConfig(model=adapter.name, tasks=[task.name], batch_size=batch_size, device=device,
                        output=Path(tmp), run_name=label, n_boot=0, progress=False)
        runner = Runner(cfg, log=lambda m: None)
        plan = TaskPlan(task, protocol, list(docs), list(requests))
        summary = runner.run_plans([plan], type(adapter), adapter)[task.name]
        lines = (Path(tmp) / label / f"{task.name}.samples.jsonl").read_text().splitlines()
    preds = {}
    for line in lines:
        rec = json.loads(line)
        probs = rec.get("candidate_probs")
        preds[rec["doc_id"]] = (rec["prediction"], max(probs, key=probs.get) if probs else None)
    t = summary["timings"]
    return {"label": label, "n": summary["n"], "batch_size": t["batch_size"], "wall_s": t["wall_s"],
            "samples_per_s": t["samples_per_s"], "tokens_per_s": t["tokens_per_s"],
            "peak_memory_mb": t["peak_memory_mb"], "gpu_busy_pct": t["gpu_busy_pct"], "errors": summary["n_errors"],
            "predictions": preds}


def agreement(a: dict[str, tuple], b: dict[str, tuple]) -> dict[str, Any]:
    common = sorted(set(a) & set(b))
    text = sum(a[k][0] == b[k][0] for k in common)
    choice = sum(a[k][1] == b[k][1] for k in common)
    return {"compared": len(common), "same_text": text, "same_choice": choice,
            "identical": text == len(common) and choice == len(common)}


def warm_up(adapter: Adapter, task: Task, protocol: str, docs, requests, batch_size: int, device: str) -> float:
    start = time.perf_counter()
    timed_run(adapter, task, protocol, docs, requests, batch_size, device, "warmup")
    return time.perf_counter() - start
