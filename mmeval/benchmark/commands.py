"""`mmeval bench`: end-to-end evaluation speed of our models against the alternatives, in one run."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import click


def _rate(x: float | None) -> str:
    return "" if x is None else f"{x:,.1f}"


def warmup_images(images: int, questions: int, batch_size: int) -> int:
    """The fewest images whose questions fill at least one batch and leave the same last partial
    batch as the timed workload (so every CUDA graph is captured before the timing starts)."""
    for w in range(1, batch_size + 1):
        if questions * w >= batch_size and questions * (w - images) % batch_size == 0:
            return w
    return max(1, -(-batch_size // questions))


def bench_model(name: str, model_args: dict[str, str], device: str, images: int, questions: int, batch_size: int,
                loop_images: int, long_n: int, long_tokens: int, log) -> dict[str, Any]:
    from mmeval.benchmark.endtoend import agreement, configure, timed_run
    from mmeval.benchmark.workloads import LongAnswerTask, cap_new_tokens, long_answer_docs, pope_shaped_docs
    from mmeval.registry import get_model_class
    from tasks.pope import Pope

    t0 = time.perf_counter()
    cls = get_model_class(name)
    scratch = None
    if model_args.get("random_init") and "tokenizer" not in model_args and "tokenizer" in cls.options:
        # Random weights come without the LLM's GPT-NeoX tokenizer; a word-level one keeps the
        # prompts about as long as GPT-NeoX makes them (VL-Mamba's byte-level fallback would make
        # its question suffixes ~4x longer than real).
        from mmeval.models.cobra import build_tiny_tokenizer

        scratch = tempfile.TemporaryDirectory(prefix="mmeval-bench-tok-")
        build_tiny_tokenizer().save_pretrained(scratch.name)
        model_args = dict(model_args, tokenizer=scratch.name)
    adapter = cls.from_args(model_args, device=device)
    out: dict[str, Any] = {"model": name, "model_args": model_args, "load_s": round(time.perf_counter() - t0, 1),
                           "runs": [], "checks": {}}
    pope = Pope()

    def pope_run(docs, protocol, bs, label, cache=True, graphs=True):
        reqs = [pope.request(d, protocol) for d in docs]
        reqs = cap_new_tokens(reqs, 2)
        configure(adapter, prefix_cache=cache, cuda_graphs=graphs, ignore_eos=True)
        r = timed_run(adapter, pope, protocol, docs, reqs, bs, device, label)
        log(f"  {name} {label}: {_rate(r['samples_per_s'])} samples/s")
        return r

    long_task = LongAnswerTask(new_tokens=long_tokens)

    def long_run(docs, bs, label, graphs=True, tokens=None):
        task = long_task if tokens is None else LongAnswerTask(new_tokens=tokens)
        configure(adapter, prefix_cache=True, cuda_graphs=graphs, ignore_eos=True)
        r = timed_run(adapter, task, "llava", docs, [task.request(d, "llava") for d in docs], bs, device, label)
        log(f"  {name} {label}: {_rate(r['tokens_per_s'])} tokens/s")
        return r

    # warm-up on separate images: kernel compilation, CUDA-graph capture for the batch sizes used
    # (the same batch sizes as the timed run: full batches and the same last partial batch)
    warm = pope_shaped_docs(warmup_images(images, questions, batch_size), questions, seed=99)
    pope_run(warm, "llava", batch_size, "warmup-pope")
    pope_run(warm[:2], "llava", 1, "warmup-loop", cache=False, graphs=False)
    long_run(long_answer_docs(min(long_n, batch_size), seed=98), min(long_n, batch_size), "warmup-long", tokens=4)
    long_run(long_answer_docs(1, seed=97), 1, "warmup-long-b1", tokens=4)

    docs = pope_shaped_docs(images, questions)
    subset = [d for d in docs if int(d.doc_id.split("/")[0]) < loop_images]
    fast = pope_run(docs, "llava", batch_size, f"pope llava batched (b{batch_size}, prefix reuse, {images}x{questions})")
    probs = pope_run(docs, "prismatic", batch_size, f"pope prismatic batched (b{batch_size}, probabilities only)")
    fast_b1 = pope_run(subset, "llava", 1, f"pope llava batch 1 (prefix reuse, {loop_images} images)")
    plain = pope_run(subset, "llava", batch_size, f"pope llava batched without prefix reuse ({loop_images} images)",
                     cache=False)
    loop = pope_run(subset, "llava", 1, f"pope llava per-sample loop (no reuse, no graphs, {loop_images} images)",
                    cache=False, graphs=False)
    sub_fast = {k: v for k, v in fast["predictions"].items() if k in loop["predictions"]}
    out["checks"]["pope_fast_vs_per_sample_loop"] = agreement(sub_fast, loop["predictions"])
    out["checks"]["pope_batch1_vs_per_sample_loop"] = agreement(fast_b1["predictions"], loop["predictions"])
    b1 = long_run(long_answer_docs(4), 1, f"long answers batch 1 ({long_tokens} new tokens)")
    bn = long_run(long_answer_docs(long_n), long_n, f"long answers batch {long_n} ({long_tokens} new tokens)")
    for r in (fast, probs, fast_b1, plain, loop, b1, bn):
        r.pop("predictions")
        out["runs"].append(r)
    out["speedups"] = {
        "pope_fast_vs_per_sample_loop": round(fast["samples_per_s"] / loop["samples_per_s"], 2),
        "pope_fast_vs_batched_without_reuse": round(fast["samples_per_s"] / plain["samples_per_s"], 2),
    }
    adapter.close()
    if scratch is not None:
        scratch.cleanup()
    return out


@click.command()
@click.option("--models", default="vl-mamba,cobra", show_default=True)
@click.option("--model-args", default="random_init=1,dtype=bfloat16", show_default=True,
              help="k=v,... given to every model (full size with random weights by default).")
@click.option("--tiny", is_flag=True, help="Tiny models and workloads on the CPU (a smoke test).")
@click.option("--device", default="cuda", show_default=True)
@click.option("--images", type=int, default=500, show_default=True, help="POPE-shaped workload: images.")
@click.option("--questions", type=int, default=18, show_default=True, help="POPE-shaped workload: questions per image.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--loop-images", type=int, default=10, show_default=True,
              help="Images for the slow comparison paths (per-sample loop, no prefix reuse).")
@click.option("--long-n", type=int, default=64, show_default=True, help="Long-answer workload: batched sequences.")
@click.option("--long-tokens", type=int, default=256, show_default=True)
@click.option("--lm-baselines/--no-lm-baselines", default=True, show_default=True,
              help="Also time mamba_ssm, transformers' Mamba and a Phi-2-sized transformer (LM only).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench_results.json"), show_default=True)
def bench(models, model_args, tiny, device, images, questions, batch_size, loop_images, long_n, long_tokens,
          lm_baselines, out):
    """Measure evaluation speed: our models end to end on a POPE-shaped and a long-answer workload,
    the same models driven as the reference repositories do, and LM-only alternatives.

    \b
    Example (GPU):  mmeval bench --out docs/bench.json
    Example (CPU):  mmeval bench --tiny --device cpu --out /tmp/bench.json
    """
    import torch
    from tabulate import tabulate

    from mmeval.cli import parse_kv
    from mmeval.environment import device_name, library_versions

    args = parse_kv(model_args, "--model-args")
    if tiny:
        args = {"tiny": "1"}
        images, questions, loop_images, long_n, long_tokens, batch_size = 3, 4, 2, 4, 8, min(batch_size, 4)
    report: dict[str, Any] = {"device": device_name(device), "versions": library_versions(),
                              "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "models": []}
    log = lambda m: click.echo(m, err=True)  # noqa: E731
    for name in [m.strip() for m in models.split(",") if m.strip()]:
        log(f"bench {name} ...")
        report["models"].append(bench_model(name, dict(args), device, images, questions, batch_size, loop_images,
                                            long_n, long_tokens, log))
    if lm_baselines:
        from mmeval.benchmark.lm_baselines import run_all

        dev = torch.device(device)
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        kw = dict(d_model=64, n_layer=2, vocab=512, batch=4, seqlen=32, new_tokens=8, repeats=1,
                  paths=("ours",)) if tiny else {}
        log("LM-only comparison paths ...")
        report["lm_baselines"] = run_all(dev, dtype, **kw)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))

    rows = []
    for m in report["models"]:
        for r in m["runs"]:
            rows.append([m["model"], r["label"], r["n"], _rate(r["samples_per_s"]), _rate(r["tokens_per_s"]),
                         f"{r['peak_memory_mb'] / 1024:.1f}"])
    click.echo(tabulate(rows, headers=["model", "run", "n", "samples/s", "tokens/s", "peak GiB"]))
    for m in report["models"]:
        click.echo(f"{m['model']}: speedups {m['speedups']}; checks {m['checks']}")
    if lm_baselines:
        click.echo(tabulate([[r["path"], r.get("forward_seq_per_s", ""), r.get("generate_b1_tok_per_s", ""),
                              "" if r.get("peak_gib") is None else f"{r['peak_gib']:.1f}", r.get("error", "")]
                             for r in report["lm_baselines"]],
                            headers=["LM path", "forward seq/s", "generate b1 tok/s", "peak GiB", "error"]))
    click.echo(f"wrote {out}")
