"""Finetune on a GPU: (1) a small VL-Mamba -- a small SigLIP-shaped tower (ViT-S/16 size, 224 px,
random, frozen), the VSS-L2 connector and a Mamba LM of mamba-130m's size (d_model 768, 24 layers,
vocabulary 50,277) -- trained from random weights on generated image-question data
(`mmeval.synth.training`: every benchmark's question types with their exact prompts), loss curve
and tokens/s (the finetune loop's own per-step figure, train_log.jsonl); (2) optimizer steps of
the full-size paper default (SigLIP-SO400M + VSS-L2 + BSM + Mamba-2.8B, random weights, instruct
recipe: projector + LM trained, bf16 autocast over fp32 master weights, AdamW) with the step time
and peak memory.

    python bench/finetune_gpu.py --out finetune_gpu.json            # on the GPU
    python bench/finetune_gpu.py --device cpu --small-steps 2 --small-batch 2 --small-layers 1 --scale 0.05 \\
        --no-full                                                    # smoke test on the CPU
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

# state-spaces/mamba-130m's config.json shapes
LM_130M = {"d_model": 768, "n_layer": 24, "vocab_size": 50277, "ssm_cfg": {}, "rms_norm": True,
           "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}
# a ViT-S/16-sized SigLIP tower (the paper's is SO400M/14 at 384 px)
SMALL_SIGLIP = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 12, "num_attention_heads": 6,
                "image_size": 224, "patch_size": 16}


def small_model(vocab: int, n_layer: int = LM_130M["n_layer"]):
    from mmeval.models.vision_hf import vision_config_dict
    from mmeval.models.vl_mamba import VLMamba, VLMambaConfig

    vision = dict(vision_config_dict("siglip"), **SMALL_SIGLIP)
    return VLMamba(
        VLMambaConfig(
            encoder="siglip",
            mmc="vss-l2",
            scan="bsm",
            vision_tower="none",
            vision_config=vision,
            lm_config=dict(LM_130M, n_layer=n_layer, vocab_size=max(vocab, LM_130M["vocab_size"])),
        )
    )


def small_run(out: Path, device: str, steps: int, scale: float, batch: int, n_layer: int = LM_130M["n_layer"]) -> dict:
    from mmeval.finetune.loop import finetune
    from mmeval.finetune.recipes import get_recipe
    from mmeval.synth.demo_models import train_tokenizer
    from mmeval.synth.training import build_training_set, corpus

    info = build_training_set(out / "data", seed=0, scale=scale)
    rows = json.loads(Path(info["file"]).read_text())
    tokenizer = train_tokenizer(corpus(rows))
    torch.manual_seed(0)
    model = small_model(len(tokenizer), n_layer)
    n_params = sum(p.numel() for p in model.parameters())
    n_lm = sum(p.numel() for p in model.lm.parameters())
    recipe = get_recipe("vl-mamba", "instruct", {"per_device_batch_size": batch, "global_batch_size": batch,
                                                 "learning_rate": 1e-3, "num_workers": 4, "log_every": 1,
                                                 "save_every": 0})
    t0 = time.perf_counter()
    res = finetune("vl-mamba", recipe, rows, image_dir=info["images"], output_dir=out / "small", device=device,
                   max_steps=steps, progress=False, model=model, tokenizer=tokenizer)
    wall = time.perf_counter() - t0
    log = [json.loads(x) for x in (out / "small" / "train_log.jsonl").read_text().splitlines()]
    tps = [r["tokens_per_s"] for r in log[len(log) // 10:]]  # after the first 10% (warm-up, cudnn/triton autotune)
    return {
        "params": n_params,
        "lm_params": n_lm,
        "conversations": len(rows),
        "per_task": info["per_task"],
        "steps": res.step,
        "batch": batch,
        "wall_s_incl_save": round(wall, 1),
        "tokens_per_s_median": round(sorted(tps)[len(tps) // 2], 0) if tps else None,
        "samples_per_s": round(batch * res.step / wall, 1),
        "loss_first": round(res.losses[0], 4),
        "loss_last10": round(sum(res.losses[-10:]) / len(res.losses[-10:]), 4),
        "losses_every_25": [round(x, 4) for x in res.losses[::25]],
    }


def make_data(d: Path, n: int) -> list[dict]:
    """Plain colour questions for the full-size memory check (their content does not matter there)."""
    from PIL import Image

    colours = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 60, 220), "yellow": (230, 220, 30)}
    rows = []
    names = list(colours)
    for i in range(n):
        c = names[i % len(names)]
        img = Image.new("RGB", (64, 64), (128, 128, 128))
        img.paste(Image.new("RGB", (32, 32), colours[c]), (16, 16))
        img.save(d / f"{i}.png")
        rows.append({"id": str(i), "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the square?"}, {"from": "gpt", "value": c}]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--small-steps", type=int, default=300)
    ap.add_argument("--small-batch", type=int, default=32)
    ap.add_argument("--small-layers", type=int, default=24, help="LM layers of the small run (24 = mamba-130m)")
    ap.add_argument(
        "--scale", type=float, default=5.0, help="generated training questions = the benchmarks' counts x this"
    )
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
        report["small"] = small_run(tmp, a.device, a.small_steps, a.scale, a.small_batch, a.small_layers)
        print("small:", report["small"], flush=True)
        rows = make_data(tmp, a.full_batch * a.full_steps)
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
            report["full"] = {
                "params": n_params,
                "steps": res.step,
                "batch": a.full_batch,
                "wall_s_incl_save": round(wall, 1),
                "losses": res.losses,
                "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1),
            }
            print("full:", report["full"], flush=True)
    Path(a.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
