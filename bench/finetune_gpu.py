"""Finetune on a GPU: (1) a small VL-Mamba (tiny towers and LM) trained on generated
colour questions, loss curve and samples/s; (2) optimizer steps of the full-size paper default
(SigLIP-SO400M + VSS-L2 + BSM + Mamba-2.8B, random weights, instruct recipe: projector + LM
trained, bf16 autocast over fp32 master weights, AdamW) with the step time and peak memory.

    python bench/finetune_gpu.py --out finetune_gpu.json            # on the GPU
    python bench/finetune_gpu.py --device cpu --small-steps 3 --no-full   # smoke test
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220), "yellow": (230, 220, 30)}


def make_data(d: Path, n: int) -> list[dict]:
    from PIL import Image

    rows = []
    names = list(COLOURS)
    for i in range(n):
        c = names[i % len(names)]
        img = Image.new("RGB", (64, 64), (128, 128, 128))
        img.paste(Image.new("RGB", (32, 32), COLOURS[c]), (16, 16))
        img.save(d / f"{i}.png")
        rows.append({"id": str(i), "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the square?"}, {"from": "gpt", "value": c}]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small-steps", type=int, default=80)
    ap.add_argument("--full-steps", type=int, default=3)
    ap.add_argument("--full-batch", type=int, default=4)
    ap.add_argument("--no-full", action="store_true")
    ap.add_argument("--out", default="finetune_gpu.json")
    a = ap.parse_args()
    from mmeval.finetune.loop import finetune
    from mmeval.finetune.recipes import get_recipe

    report = {"device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = make_data(tmp, 64)
        recipe = get_recipe("vl-mamba", "instruct", {"per_device_batch_size": 16, "global_batch_size": 16,
                                                     "learning_rate": 1e-3, "num_workers": 2})
        t0 = time.perf_counter()
        res = finetune("vl-mamba", recipe, rows, image_dir=tmp, output_dir=tmp / "small", tiny=True,
                       device=a.device, max_steps=a.small_steps, progress=False)
        wall = time.perf_counter() - t0
        report["small"] = {"steps": res.step, "samples_per_s": round(16 * res.step / wall, 1), "wall_s": round(wall, 1),
                           "loss_first": res.losses[0], "loss_last": res.losses[-1],
                           "losses_every_10": [round(x, 4) for x in res.losses[::10]]}
        print("small:", report["small"], flush=True)
        if not a.no_full:
            from mmeval.models.vl_mamba import VLMamba, VLMambaConfig, build_tiny_tokenizer

            torch.cuda.reset_peak_memory_stats()
            model = VLMamba(VLMambaConfig(), device=a.device, dtype=torch.float32)
            n_params = sum(p.numel() for p in model.parameters())
            recipe = get_recipe("vl-mamba", "instruct", {"per_device_batch_size": a.full_batch,
                                                         "global_batch_size": a.full_batch, "num_workers": 2})
            t0 = time.perf_counter()
            res = finetune("vl-mamba", recipe, rows[: a.full_batch * a.full_steps], image_dir=tmp,
                           output_dir=tmp / "full", device=a.device, max_steps=a.full_steps, progress=False,
                           model=model, tokenizer=build_tiny_tokenizer())
            wall = time.perf_counter() - t0
            report["full"] = {"params": n_params, "steps": res.step, "batch": a.full_batch, "wall_s_incl_save": round(wall, 1),
                              "losses": res.losses, "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1)}
            print("full:", report["full"], flush=True)
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
