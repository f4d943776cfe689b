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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cobra")
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", default="profile.txt")
    a = ap.parse_args()
    dev = torch.device("cuda")
    lines = []
    from mmeval.benchmark.lm_baselines import mamba_ssm_path, ours_path

    ids = torch.randint(0, 50280, (32, 800), device=dev)
    for name, path in (("ours", ours_path), ("mamba_ssm", mamba_ssm_path)):
        build, fwd, _ = path(2560, 64, 50280, dev, torch.bfloat16)
        m = build()
        with torch.inference_mode():
            fwd(m, ids); torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                fwd(m, ids); torch.cuda.synchronize()
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
    warm = pope_shaped_docs(4, 18, seed=5)
    timed_run(adapter, pope, "llava", warm, cap_new_tokens([pope.request(d, "llava") for d in warm], 2), a.batch, "cuda", "w")
    docs = pope_shaped_docs(a.images, 18)
    reqs = cap_new_tokens([pope.request(d, "llava") for d in docs], 2)
    configure(adapter, prefix_cache=True, cuda_graphs=True, ignore_eos=True)
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        r = timed_run(adapter, pope, "llava", docs, reqs, a.batch, "cuda", "p")
    wall = time.perf_counter() - t0
    lines += [f"==== {a.model} POPE fast path, {len(docs)} questions, wall {wall:.2f}s (profiled), {r['samples_per_s']} q/s",
              prof.key_averages().table(sort_by="cpu_time_total", row_limit=25, max_name_column_width=60),
              table(prof, 25)]
    Path(a.out).write_text("\n".join(lines))
    print("\n".join(lines)[-9000:])


if __name__ == "__main__":
    main()
