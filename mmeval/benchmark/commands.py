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


def warmup_workloads(images: int, questions: int, batch_size: int) -> list[tuple[int, int]]:
    """(images, questions kept) of the warm-up runs that meet every batch shape of the timed run:
    the `warmup_images` workload when it is small, else one full batch (and its remainder) and then
    the timed run's last partial batch on its own (fewer questions than the one-run way at large
    batch sizes: 500 x 18 at b512 would need 244 images)."""
    w = warmup_images(images, questions, batch_size)
    if w * questions <= 2 * batch_size:
        return [(w, w * questions)]
    runs = [(-(-batch_size // questions), batch_size)]
    last = (images * questions) % batch_size
    if last:
        runs.append((-(-last // questions), last))
    return runs


def bench_model(name: str, model_args: dict[str, str], device: str, images: int, questions: int,
                batch_size: int | str, loop_images: int, long_n: int, long_tokens: int, log) -> dict[str, Any]:
    from mmeval.batching import AUTO, AUTO_FIRST, AUTO_MAX
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

    if batch_size == AUTO:  # what `mmeval run` would choose for this workload, found on separate images
        probe = pope_shaped_docs(-(-(AUTO_FIRST + AUTO_MAX) // questions), questions, seed=96)
        batch_size = pope_run(probe, "llava", AUTO, "auto batch size")["batch_size"]
        log(f"  {name}: batch size auto -> {batch_size}")
    out["batch_size"] = batch_size
    # warm-up on separate images: kernel compilation, CUDA-graph capture for the batch sizes used
    # (the same batch sizes as the timed run: full batches and the same last partial batch)
    for n_images, n_questions in warmup_workloads(images, questions, batch_size):
        pope_run(pope_shaped_docs(n_images, questions, seed=99)[:n_questions], "llava", batch_size, "warmup-pope")
    pope_run(pope_shaped_docs(2, questions, seed=99)[:2], "llava", 1, "warmup-loop", cache=False, graphs=False)
    long_run(long_answer_docs(min(long_n, batch_size), seed=98), min(long_n, batch_size), "warmup-long", tokens=4)
    long_run(long_answer_docs(1, seed=97), 1, "warmup-long-b1", tokens=4)

    docs = pope_shaped_docs(images, questions)
    subset = [d for d in docs if int(d.doc_id.split("/")[0]) < loop_images]
    fast = pope_run(
        docs, "llava", batch_size, f"pope llava batched (b{batch_size}, prefix reuse, {images}x{questions})"
    )
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
    # graph decoding's tokens against eager decoding's (the same model, no CUDA graphs), batch 1
    check_docs, check_tokens = long_answer_docs(2, seed=95), min(long_tokens, 32)
    graphed = long_run(check_docs, 1, "long answers check, CUDA graphs", tokens=check_tokens)
    eager = long_run(check_docs, 1, "long answers check, eager", graphs=False, tokens=check_tokens)
    out["checks"]["long_graphs_vs_eager"] = agreement(graphed["predictions"], eager["predictions"])
    for r in (fast, probs, fast_b1, plain, loop, b1, bn):
        r.pop("predictions")
        out["runs"].append(r)
    out["roles"] = {"pope_fast": fast["label"], "pope_loop": loop["label"], "long_b1": b1["label"],
                    "long_bn": bn["label"]}
    out["speedups"] = {
        "pope_fast_vs_per_sample_loop": round(fast["samples_per_s"] / loop["samples_per_s"], 2),
        "pope_fast_vs_batched_without_reuse": round(fast["samples_per_s"] / plain["samples_per_s"], 2),
    }
    adapter.close()
    if scratch is not None:
        scratch.cleanup()
    return out


# Issue 18's targets (one H200, bf16, full size, random weights, 500 images x 18 questions)
TARGETS = {"pope_q_per_s": 1000.0, "gpu_busy_pct": 85.0, "long_b1_tok_per_s": 400.0, "long_bn_tok_per_s": 8000.0}


def _run_of(model: dict[str, Any], role: str) -> dict[str, Any]:
    label = model["roles"][role]
    return next(r for r in model["runs"] if r["label"] == label)


def _versus(value: float | None, target: float, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit} ({'met' if value >= target else 'missed'})"


def _same(check: dict[str, Any], both: bool = True) -> str:
    n = check["compared"]
    text = f"{check['same_text']}/{n}" + (f" text, {check['same_choice']}/{n} choice" if both else "")
    return text + (" (met)" if check["identical"] else " (missed)")


def targets_table(report: dict[str, Any]) -> list[list[str]]:
    """The issue's table: one row per figure, the target beside it, one column per model; the
    per-sample loop's and mamba_ssm's figures from the same run."""
    models = report["models"]
    lm = {r["path"]: r for r in report.get("lm_baselines") or []}

    def lm_pair(key: str) -> str:
        ours, ref = lm.get("ours", {}).get(key), lm.get("mamba_ssm", {}).get(key)
        return f"{'n/a' if ours is None else f'{ours:,.1f}'} / {'n/a' if ref is None else f'{ref:,.1f}'}"

    rows = [
        ["POPE-shaped, prefix reuse (q/s)", f">= {TARGETS['pope_q_per_s']:,.0f}",
         *[_versus(_run_of(m, "pope_fast")["samples_per_s"], TARGETS["pope_q_per_s"]) + f", b{m['batch_size']}"
           for m in models]],
        ["POPE: predictions == per-sample loop", "identical",
         *[_same(m["checks"]["pope_fast_vs_per_sample_loop"]) for m in models]],
        ["POPE: GPU busy (CUDA-event span of each batch / wall)", f">= {TARGETS['gpu_busy_pct']:.0f}%",
         *[_versus(_run_of(m, "pope_fast")["gpu_busy_pct"], TARGETS["gpu_busy_pct"], "%") for m in models]],
        ["POPE: per-sample loop, same run (q/s)", "",
         *[f"{_run_of(m, 'pope_loop')['samples_per_s']:,.1f} (fast path "
           f"{m['speedups']['pope_fast_vs_per_sample_loop']:.1f}x)" for m in models]],
        ["long answers b1 (tokens/s)", f">= {TARGETS['long_b1_tok_per_s']:,.0f}",
         *[_versus(_run_of(m, "long_b1")["tokens_per_s"], TARGETS["long_b1_tok_per_s"]) for m in models]],
        ["long answers b1: tokens == eager decoding", "identical",
         *[_same(m["checks"]["long_graphs_vs_eager"], both=False) if "long_graphs_vs_eager" in m["checks"]
           else "n/a" for m in models]],
        [f"long answers b{_run_of(models[0], 'long_bn')['batch_size']} (tokens/s)" if models else "",
         f">= {TARGETS['long_bn_tok_per_s']:,.0f}",
         *[_versus(_run_of(m, "long_bn")["tokens_per_s"], TARGETS["long_bn_tok_per_s"]) for m in models]],
    ]
    if lm:
        blank = [""] * (len(models) - 1)
        rows += [["LM-only, same run: forward 32 x 800, ours / mamba_ssm (seq/s)", "",
                  lm_pair("forward_seq_per_s"), *blank],
                 ["LM-only, same run: generate b1, ours / mamba_ssm (tokens/s)", "",
                  lm_pair("generate_b1_tok_per_s"), *blank]]
    rows.append(["peak memory, POPE / long batched (GiB)", "",
                 *[f"{_run_of(m, 'pope_fast')['peak_memory_mb'] / 1024:.1f} / "
                   f"{_run_of(m, 'long_bn')['peak_memory_mb'] / 1024:.1f}" for m in models]])
    return rows


def _batch_size_option(ctx, param, value):
    from mmeval.cli import parse_batch_size

    size = parse_batch_size(value)
    if size != "auto" and size < 1:
        raise click.BadParameter(f"expected a positive integer or 'auto', got {value!r}", param_hint="--batch-size")
    return size


@click.command()
@click.option("--models", default="vl-mamba,cobra", show_default=True)
@click.option("--model-args", default="random_init=1,dtype=bfloat16", show_default=True,
              help="k=v,... given to every model (full size with random weights by default).")
@click.option("--tiny", is_flag=True, help="Tiny models and workloads on the CPU (a smoke test).")
@click.option("--device", default="cuda", show_default=True)
@click.option("--images", type=int, default=500, show_default=True, help="POPE-shaped workload: images.")
@click.option("--questions", type=int, default=18, show_default=True, help="POPE-shaped workload: questions per image.")
@click.option("--batch-size", default="auto", show_default=True, callback=_batch_size_option,
              help="POPE-shaped batch size, or auto: what `mmeval run` chooses (found on separate images).")
@click.option("--loop-images", type=int, default=10, show_default=True,
              help="Images for the slow comparison paths (per-sample loop, no prefix reuse).")
@click.option("--long-n", type=int, default=64, show_default=True, help="Long-answer workload: batched sequences.")
@click.option("--long-tokens", type=int, default=256, show_default=True)
@click.option("--lm-baselines/--no-lm-baselines", default=True, show_default=True,
              help="Also time mamba_ssm, transformers' Mamba and a Phi-2-sized transformer (LM only).")
@click.option("--lm-paths", default="ours,mamba_ssm,transformers_mamba,phi2", show_default=True,
              help="Which LM-only paths (the slow transformers ones take a minute each on a GPU).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench_results.json"), show_default=True)
def bench(models, model_args, tiny, device, images, questions, batch_size, loop_images, long_n, long_tokens,
          lm_baselines, lm_paths, out):
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
        images, questions, loop_images, long_n, long_tokens = 3, 4, 2, 4, 8
        batch_size = 4 if batch_size == "auto" else min(batch_size, 4)
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
        paths = tuple(p.strip() for p in lm_paths.split(",") if p.strip())
        kw = dict(d_model=64, n_layer=2, vocab=512, batch=4, seqlen=32, new_tokens=8, repeats=1,
                  paths=("ours",)) if tiny else {"paths": paths}
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
    names = [m["model"] for m in report["models"]]
    if names:
        click.echo(f"\nIssue 18's targets ({report['device']}; every figure from this run):")
        click.echo(tabulate(targets_table(report), headers=["", "target", *names], tablefmt="github",
                            colalign=("left", "right", *["right"] * len(names))))
    click.echo(f"wrote {out}")
