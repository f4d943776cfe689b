"""Builders of fixture result files (the runner's contract) for the report tests."""

from __future__ import annotations

import json
from pathlib import Path


def write_task(results: Path, run: str, task: str, *, protocol: str = "llava", headline: str = "accuracy",
               metrics: dict | None = None, ci95: dict | None = None, model: str = "vl-mamba",
               args: dict | None = None, sha: str = "ab12cd34ef567890" + "0" * 48,
               samples: list[dict] | None = None, timings: dict | None = None,
               created: str = "2026-11-25T21:00:00Z", device: str = "cpu") -> Path:
    """Write <results>/<run>/<task>.json (+ .samples.jsonl when samples are given)."""
    d = results / run
    d.mkdir(parents=True, exist_ok=True)
    data = {
        "task": task, "protocol": protocol, "n": len(samples or []), "n_errors": 0,
        "metrics": metrics or {}, "ci95": ci95 or {}, "headline": headline,
        "model": {"name": model, "args": args or {}, "checkpoint": "/ckpt", "checkpoint_sha256": sha, "config": {}},
        "generation": {"max_new_tokens": 128, "greedy": True, "stop": [], "candidates": None},
        "timings": timings or {"wall_s": 1.0, "samples_per_s": 10.0, "tokens_per_s": 30.0, "peak_memory_mb": 1000.0},
        "versions": {"mmeval": "0.1.0"}, "device": device, "created": created, "run": run,
    }
    p = d / f"{task}.json"
    p.write_text(json.dumps(data))
    if samples is not None:
        with open(d / f"{task}.samples.jsonl", "w") as f:
            f.writelines(json.dumps(s) + "\n" for s in samples)
    return p


def binary_samples(correct: list[int], prefix: str = "d", errors: set[int] = frozenset()) -> list[dict]:
    """Samples with scores.correct = 0/1, doc_ids prefix0..prefixN; indices in `errors` errored."""
    out = []
    for i, c in enumerate(correct):
        err = "timeout" if i in errors else None
        out.append({"doc_id": f"{prefix}{i}", "prompt": "q", "prediction": "yes" if c else "no",
                    "target": "yes", "scores": {} if err else {"correct": float(c)},
                    "candidate_probs": None, "n_tokens": 1, "error": err})
    return out


def accuracy(correct: list[int]) -> float:
    return 100.0 * sum(correct) / len(correct)
