"""Sweep demo-model settings in one call: every variant trains in its own process (all at once, on
the GPU when there is one), is evaluated on the ten generated benchmarks with `mmeval run`, and the
sweep prints one table: each task's headline beside its chance level, per variant.

    python bench/demo_sweep.py --variants vlm-base,cobra-base --device cuda --out sweep.json
    python bench/demo_sweep.py --list

This is how the shipped demo models' settings were chosen (docs/performance.md, docs/quickstart.md). A variant is a
family plus `DemoConfig` overrides (`VARIANTS`); `--set name:key=value` adds one on the fly.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TASKS = ("vqav2", "gqa", "scienceqa_img", "textvqa", "pope", "mme", "mmbench", "vizwiz", "vsr")
LONG = dict(align_steps=600, steps=3000, batch_size=64)
VARIANTS: dict[str, tuple[str, dict]] = {
    "vlm-base": ("vl-mamba", dict(align_steps=600, steps=1300, batch_size=64, learning_rate=5e-3)),
    "vlm-3k": ("vl-mamba", dict(LONG, learning_rate=5e-3)),
    "vlm-3k-w128": ("vl-mamba", dict(LONG, learning_rate=3e-3, d_model=128)),
    "vlm-3k-l4": ("vl-mamba", dict(LONG, learning_rate=3e-3, n_layer=4)),
    "vlm-3k-s16": ("vl-mamba", dict(LONG, learning_rate=5e-3, d_state=16)),
    "vlm-3k-x60": ("vl-mamba", dict(LONG, learning_rate=5e-3, train_scale=60.0)),
    "cobra-base": ("cobra", dict(align_steps=600, steps=1300, batch_size=64)),
    "cobra-3k": ("cobra", dict(LONG)),
    "cobra-3k-w128": ("cobra", dict(LONG, learning_rate=2e-3, d_model=128)),
    "cobra-3k-l4": ("cobra", dict(LONG, learning_rate=2e-3, n_layer=4)),
    "cobra-3k-s16": ("cobra", dict(LONG, d_state=16)),
    "cobra-3k-x60": ("cobra", dict(LONG, train_scale=60.0)),
}


def config_of(name: str, extra: dict[str, dict]):
    from mmeval.synth.demo_models import DemoConfig

    family, over = VARIANTS[name]
    return DemoConfig(model=family, seed=0, **{**over, **extra.get(name, {})})


def run_one(name: str, cfg_json: str, root: Path, device: str) -> dict:
    """Train one variant (its own cache folder; the shared training data linked in) and evaluate it."""
    from mmeval.synth.demo_models import DEMO_VERSION, DemoConfig, model_args, train_demo_model

    cfg = DemoConfig(**json.loads(cfg_json))
    own = root / name
    own.mkdir(parents=True, exist_ok=True)
    data_name = f"train-v{DEMO_VERSION}-seed{cfg.seed}-x{cfg.train_scale:g}"
    if not (own / data_name).exists():
        (own / data_name).symlink_to(root / data_name)
    started = time.perf_counter()
    ckpt = train_demo_model(cfg, own, log=lambda m: print(f"[{name}] {m}", flush=True), progress=False, device=device)
    train_s = time.perf_counter() - started
    args = ",".join(f"{k}={v}" for k, v in model_args(cfg.model, ckpt).items())
    out = own / "runs"
    cmd = [sys.executable, "-m", "mmeval", "run", "--model", cfg.model, "--model-args", args, "--tasks",
           ",".join(TASKS), "--data", str(root / "data-seed0"), "--task-args", "vqav2.split=val", "--output",
           str(out), "--run-name", name, "--bootstrap", "200", "--no-progress", "--allow-errors", "--device", device]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    scores = {}
    for task in TASKS:
        r = json.loads((out / name / f"{task}.json").read_text())
        judged = "accuracy" if task == "pope" else r["headline"]
        scores[task] = {"headline": r["headline"], "value": r["metrics"].get(r["headline"]),
                        "judged": r["metrics"].get(judged), "low": (r.get("ci95") or {}).get(judged, [None])[0]}
    meta = json.loads((own / cfg.model / "demo.json").read_text())
    return {"name": name, "config": asdict(cfg), "train_s": round(train_s, 1), "loss_last10": meta["loss_last10"],
            "checkpoint": str(ckpt), "scores": scores}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--set", action="append", default=[], help="name:key=value (a DemoConfig field)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--root", default="/tmp/demo-sweep")
    ap.add_argument("--out", default="sweep.json")
    ap.add_argument("--deadline", type=float, default=540.0, help="seconds; unfinished variants are reported as such")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--config", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    root = Path(a.root)
    if a.list:
        for n, (fam, over) in VARIANTS.items():
            print(f"{n:16s} {fam:9s} {over}")
        return
    if a.one:
        print(json.dumps(run_one(a.one, a.config, root, a.device)), flush=True)
        return

    started = time.perf_counter()
    extra: dict[str, dict] = {}
    for item in a.set:
        name, kv = item.split(":", 1)
        k, v = kv.split("=", 1)
        extra.setdefault(name, {})[k] = json.loads(v) if v[:1].isdigit() or v[:1] in "-[{" else v
        VARIANTS.setdefault(name, VARIANTS[name.rsplit("+", 1)[0]] if "+" in name else ("vl-mamba", {}))
    names = [n for n in a.variants.split(",") if n]
    cfgs = {n: config_of(n, extra) for n in names}

    from mmeval.synth.defaults import ensure_demo_data
    from mmeval.synth.demo_models import training_data

    root.mkdir(parents=True, exist_ok=True)
    ensure_demo_data(0, root)
    # the training data once per scale, the largest caption set first (children only read it)
    for cfg in sorted(cfgs.values(), key=lambda c: -max(c.align_steps * c.batch_size, c.caption_mix)):
        training_data(cfg, root)
    print(f"data ready in {time.perf_counter() - started:.0f} s", flush=True)

    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {
        n: subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--one",
                n,
                "--config",
                json.dumps(asdict(c)),
                "--root",
                str(root),
                "--device",
                a.device,
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, c in cfgs.items()
    }
    results = {}
    for n, p in procs.items():
        left = max(1.0, a.deadline - (time.perf_counter() - started))
        try:
            out, _ = p.communicate(timeout=left)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            results[n] = json.loads(lines[-1]) if p.returncode == 0 and lines else {"name": n, "error": p.returncode}
        except subprocess.TimeoutExpired:
            p.kill()
            results[n] = {"name": n, "error": "deadline"}
    Path(a.out).write_text(json.dumps(results, indent=1))

    from tabulate import tabulate

    chance = {
        t: i.get("chance") for t, i in json.loads((root / "data-seed0" / "synth.json").read_text())["tasks"].items()
    }
    rows = []
    for t in TASKS:
        row = [t, "" if chance.get(t) is None else f"{chance[t]:.0f}"]
        for n in names:
            s = results[n].get("scores", {}).get(t)
            if not s or s["judged"] is None:
                row.append(str(results[n].get("error", "-")))
                continue
            above = s["low"] is not None and chance.get(t) is not None and s["low"] > chance[t]
            row.append(f"{s['judged']:.0f}{'*' if above else ''}")
        rows.append(row)
    rows.append(["train s", ""] + [str(results[n].get("train_s", "-")) for n in names])
    rows.append(["loss", ""] + [str(results[n].get("loss_last10", "-")) for n in names])
    print(tabulate(rows, headers=["task", "chance"] + names))
    print(f"(* = lower end of the 95% bootstrap interval above chance; POPE judged on accuracy) "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
