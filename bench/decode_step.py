"""The decoding step on the GPU at the 2.8B size (bf16, random weights): its captured-graph time per
batch size with the fused Triton step (mmeval/models/mamba/triton_step.py) and without it
(MMEVAL_FUSED_STEP=0), and whether the two decode the same greedy tokens.

    python bench/decode_step.py --batches 1,4,16,64 --out decode_step.json
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def step_ms(model, state, batch: int, reps: int = 100) -> float:
    """GPU ms per replay of the captured step (captured afresh: the fused switch is read at capture)."""
    from mmeval.benchmark.timing import cuda_ms
    from mmeval.models.mamba.generation import get_cuda_graph_step, release_cuda_graphs

    release_cuda_graphs(model)
    graph = get_cuda_graph_step(model, batch)
    graph.load_state(state)
    tok = torch.zeros(batch, dtype=torch.long, device=state.device)
    return cuda_ms(lambda: graph(tok), reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1,4,16,64")
    ap.add_argument("--blocks", default="64x16",
                    help="channel blocks of the fused step's two kernels to time, e.g. 64x32,128x64")
    ap.add_argument("--tokens", type=int, default=64, help="greedy tokens compared, fused vs unfused")
    ap.add_argument("--out", default="decode_step.json")
    a = ap.parse_args()
    from mmeval.benchmark.lm_baselines import ours_path
    from mmeval.models.mamba import greedy_generate, triton_step
    from mmeval.models.mamba.generation import release_cuda_graphs

    triton_step.FUSED_STEP_MAX_BATCH = 1 << 20  # measure the fused step at every batch size asked for
    dev = torch.device("cuda")
    build, _, _ = ours_path(2560, 64, 50280, dev, torch.bfloat16)
    model = build()
    rows = []
    with torch.inference_mode():
        g = torch.Generator(device="cpu").manual_seed(0)
        prompt = torch.randint(0, 50280, (4, 730), generator=g).to(dev)
        pre = model(input_ids=prompt, return_state=True, logits="last")
        for b in (int(x) for x in a.batches.split(",")):
            state = pre.state.index_select(torch.arange(b, device=dev) % 4)
            os.environ["MMEVAL_FUSED_STEP"] = "0"
            row = {"batch": b, "unfused_ms": round(step_ms(model, state, b), 4), "fused_ms": {}}
            os.environ["MMEVAL_FUSED_STEP"] = "1"
            for blocks in a.blocks.split(","):
                triton_step._CONV_BLOCK, triton_step._STATE_BLOCK = (int(x) for x in blocks.split("x"))
                row["fused_ms"][blocks] = round(step_ms(model, state, b), 4)
            best = min(row["fused_ms"], key=row["fused_ms"].get)
            row["best_blocks"] = best
            row["tokens_per_s_fused"] = round(b * 1e3 / row["fused_ms"][best], 1)
            row["tokens_per_s_unfused"] = round(b * 1e3 / row["unfused_ms"], 1)
            print(row, flush=True)
            rows.append(row)
        triton_step._CONV_BLOCK, triton_step._STATE_BLOCK = (int(x) for x in rows[0]["best_blocks"].split("x"))
        tokens, logits = {}, {}
        for fused in ("1", "0"):
            os.environ["MMEVAL_FUSED_STEP"] = fused
            release_cuda_graphs(model)
            tokens[fused] = greedy_generate(model, pre.logits, pre.state, a.tokens, use_cuda_graph=True)
            eager = greedy_generate(model, pre.logits, pre.state, a.tokens)
            tokens[fused + "_eager"] = eager
            logits[fused], _ = model.step(prompt[:, -1], state=pre.state)
        rel = ((logits["1"].float() - logits["0"].float()).abs().max() / logits["0"].float().abs().max()).item()
        check = {
            "tokens": a.tokens,
            "fused_graph_vs_fused_eager": tokens["1"] == tokens["1_eager"],
            "fused_vs_unfused_same_rows": sum(x == y for x, y in zip(tokens["1"], tokens["0"], strict=True)),
            "first_difference": [next((i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q), None)
                                 for x, y in zip(tokens["1"], tokens["0"], strict=True)],
            "step_logits_rel_diff": rel,
        }
        print(check, flush=True)
    os.environ.pop("MMEVAL_FUSED_STEP", None)
    Path(a.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "steps": rows, "check": check},
                                      indent=1))


if __name__ == "__main__":
    main()
