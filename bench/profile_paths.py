"""Where the time goes (GPU): torch.profiler over (1) our LM forward vs mamba_ssm's on the same
shape, (2) the POPE-shaped fast path of a VLM adapter (annotated regions: mmeval.preprocess,
mmeval.vision, mmeval.prefix, mmeval.suffix_prefill, mmeval.decode).

    python bench/profile_paths.py --model cobra --images 12 --out prof.txt
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def table(prof, n=18):
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=n, max_name_column_width=60)


def regions(prof) -> str:
    """Our annotated regions: CPU wall inside each and the GPU time of the work launched in it."""
    rows = [e for e in prof.key_averages() if e.key.startswith("mmeval.")]
    out = ["region                        calls   CPU total ms   GPU total ms"]
    for e in sorted(rows, key=lambda e: -e.cpu_time_total):
        gpu = getattr(e, "device_time_total", getattr(e, "cuda_time_total", 0))
        out.append(f"{e.key:28s} {e.count:6d} {e.cpu_time_total / 1e3:14.1f} {gpu / 1e3:14.1f}")
    return "\n".join(out)


def _cuda_ms(fn, reps: int = 10) -> tuple[float, float]:
    """(GPU ms per call from CUDA events, host ms per call to launch it) after a warm-up."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    t0 = time.perf_counter()
    start.record()
    for _ in range(reps):
        fn()
    host = (time.perf_counter() - t0) / reps * 1e3
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps, host


def lm_pieces(dev) -> list[str]:
    """The LM pieces of the fast path at the 2.8B size (bf16): the per-image prefix prefill, the
    question-suffix prefill from cached states (with and without the state), a decoding step."""
    from mmeval.benchmark.lm_baselines import ours_path
    from mmeval.models.mamba.generation import get_cuda_graph_step

    build, _, _ = ours_path(2560, 64, 50280, dev, torch.bfloat16)
    m = build()
    out = ["==== LM pieces, 2.8B bf16 (GPU ms per call from CUDA events; host ms = time to launch it)"]
    with torch.inference_mode():
        g = torch.Generator(device="cpu").manual_seed(0)
        prefix = torch.randint(0, 50280, (4, 730), generator=g).to(dev)
        st4 = m(input_ids=prefix, return_state=True, logits="none").state
        state = st4.index_select(torch.arange(64, device=dev) % 4)
        for b, length in ((64, 24), (64, 8), (16, 24)):
            ids = torch.randint(0, 50280, (b, length), generator=g).to(dev)
            lens = torch.full((b,), length)
            sb = state.index_select(torch.arange(b, device=dev))
            # default arguments bind this iteration's tensors (the lambdas run before the next one anyway)
            gpu, host = _cuda_ms(lambda ids=ids, lens=lens, sb=sb: m(input_ids=ids, lengths=lens, state=sb,
                                                                     return_state=True, logits="last"))
            gpu0, host0 = _cuda_ms(lambda ids=ids, lens=lens: m(input_ids=ids, lengths=lens, return_state=True,
                                                                logits="last"))
            out.append(f"suffix prefill {b}x{length}: from a state {gpu:.2f} ms GPU / {host:.2f} ms host; "
                       f"from zero {gpu0:.2f} / {host0:.2f}")
        gpu, host = _cuda_ms(lambda: m(input_ids=prefix, return_state=True, logits="none"), 3)
        out.append(f"prefix prefill 4x730: {gpu:.2f} ms GPU / {host:.2f} ms host")
        for b in (1, 64):
            tok = torch.zeros(b, dtype=torch.long, device=dev)
            sb = state.index_select(torch.arange(b, device=dev))
            gpu, host = _cuda_ms(lambda tok=tok, sb=sb: m.step(tok, state=sb, inplace=True), 20)
            graph = get_cuda_graph_step(m, b)
            graph.load_state(sb)
            ggpu, ghost = _cuda_ms(lambda graph=graph, tok=tok: graph(tok), 50)
            out.append(f"decode step b{b}: eager {gpu:.3f} ms GPU / {host:.3f} ms host; graph {ggpu:.3f} / {ghost:.3f}")
        tok = torch.zeros(1, dtype=torch.long, device=dev)
        sb = state.index_select(torch.arange(1, device=dev))
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                m.step(tok, state=sb, inplace=True)
            torch.cuda.synchronize()
        out += ["decode step b1 eager, kernels (5 steps):", table(prof, 14)]
    m = None  # free the model before the next section
    torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cobra")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", default="profile.txt")
    ap.add_argument("--skip-lm", action="store_true", help="skip the LM forward comparison (section 1)")
    ap.add_argument("--long-tokens", type=int, default=64)
    ap.add_argument("--long-batches", default="64,1", help="batch sizes of the profiled long-answer runs")
    ap.add_argument("--eager", action="store_true",
                    help="POPE path without CUDA graphs, GPU time per operator and input shape (graphed kernels "
                         "carry no operator or shape)")
    a = ap.parse_args()
    dev = torch.device("cuda")
    lines = []
    from mmeval.benchmark.lm_baselines import mamba_ssm_path, ours_path

    ids = torch.randint(0, 50280, (32, 800), device=dev)
    try:
        lines += lm_pieces(dev)
    except Exception:  # report and go on to the other sections
        import traceback
        lines.append(traceback.format_exc())
    print("\n".join(lines), flush=True)
    for name, path in (() if a.skip_lm else (("ours", ours_path), ("mamba_ssm", mamba_ssm_path))):
        build, fwd, _ = path(2560, 64, 50280, dev, torch.bfloat16)
        m = build()
        with torch.inference_mode():
            fwd(m, ids)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                fwd(m, ids)
                torch.cuda.synchronize()
        lines += [f"==== LM forward 32x800 bf16: {name}", table(prof)]
        del m
        torch.cuda.empty_cache()

    from mmeval.benchmark.endtoend import configure, timed_run
    from mmeval.benchmark.workloads import cap_new_tokens, pope_shaped_docs
    from mmeval.registry import get_model_class
    from tasks.pope import Pope

    adapter = get_model_class(a.model).from_args({"random_init": "1", "dtype": "bfloat16"}, device="cuda")
    pope = Pope()
    configure(adapter, prefix_cache=True, cuda_graphs=True, ignore_eos=True)
    warm = pope_shaped_docs(a.images, 18, seed=5)  # the same batch shapes: graphs captured before profiling
    timed_run(
        adapter, pope, "llava", warm, cap_new_tokens([pope.request(d, "llava") for d in warm], 2), a.batch, "cuda", "w"
    )
    docs = pope_shaped_docs(a.images, 18)
    reqs = cap_new_tokens([pope.request(d, "llava") for d in docs], 2)
    configure(adapter, prefix_cache=True, cuda_graphs=not a.eager, ignore_eos=True)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=a.eager) as prof:
        r = timed_run(adapter, pope, "llava", docs, reqs, a.batch, "cuda", "p")
    wall = time.perf_counter() - t0
    lines += [
        f"==== {a.model} POPE fast path{' (eager)' if a.eager else ''}, {len(docs)} questions, wall {wall:.2f}s "
        f"(profiled), {r['samples_per_s']} q/s",
        regions(prof),
        prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60),
        table(prof, 25),
    ]
    if a.eager:
        lines.append(prof.key_averages(group_by_input_shape=True).table(
            sort_by="cuda_time_total", row_limit=45, max_name_column_width=40, max_shapes_column_width=90))
    from mmeval.benchmark.workloads import LongAnswerTask, long_answer_docs

    long_task = LongAnswerTask(new_tokens=a.long_tokens)
    for n in (int(x) for x in a.long_batches.split(",")):
        docs = long_answer_docs(n, seed=3)
        reqs = [long_task.request(d, "llava") for d in docs]
        timed_run(
            adapter,
            long_task,
            "llava",
            long_answer_docs(n, seed=4),
            [long_task.request(d, "llava") for d in long_answer_docs(n, seed=4)],
            n,
            "cuda",
            "w",
        )
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            r = timed_run(adapter, long_task, "llava", docs, reqs, n, "cuda", "l")
        wall = time.perf_counter() - t0
        lines += [f"==== {a.model} long answers b{n}, {a.long_tokens} new tokens, wall {wall:.2f}s (profiled), "
                  f"{r['tokens_per_s']} tokens/s", regions(prof)]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines)[-9000:])


if __name__ == "__main__":
    main()
