"""`make demo-train`: retrain the shipped demo models from scratch and say whether they came out the same.

    python -m mmeval.synth.demo_train                # retrain both, compare with the shipped weights
    python -m mmeval.synth.demo_train --replace      # ... and make the result the shipped weights

Both families train with `demo_models.demo_config` (DEMO_BUDGET + each family's settings), side by
side as `train_demo_models` does, one thread each on the CPU (a fixed thread count: the result does
not depend on the machine's core count), in a work folder that is emptied first (training data
included). The trained checkpoints are exported in their shipped form (`shipped.export`) and
compared file by file (sha256) with `mmeval/synth/demo_weights/`; exit code 0 when every file is
bit for bit the same (or after --replace), 1 when something differs.

Bit for bit is what to expect on the machine kind the manifest records (CPU capability, torch
release, one thread): CPU training is deterministic there. On another kind (another SIMD level,
another torch) the kernels sum in another order, the ~1,900 steps amplify the last-bit
differences, and the weights drift apart; no tolerance on the weights is meaningful then. There
the retrained and the shipped models are both evaluated on the demo's generated benchmarks, and
the result counts as the same when every headline score of the retrained model lies within the
shipped model's 95 % bootstrap interval (a difference the demo's test sets cannot tell from
sampling noise); exit code 0 then too, with the reason said. Measured AVX512 -> AVX2: POPE and MME
come out outside (docs/quickstart.md), so on another kind this reports a difference, task by task.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

DEFAULT_WORK = Path(".cache/mmeval-demo-train")
WORK_MARK = ".mmeval-demo-train"  # what lets a run empty the folder
COMMAND = "make demo-train REPLACE=1"


def machine() -> dict[str, str]:
    """What the CPU result depends on: the SIMD level torch's kernels use, the torch release, the CPU."""
    import torch

    cpu = ""
    try:
        cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                    if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
            "cpu": cpu or platform.processor() or platform.machine(), "python": platform.python_version()}


def code_version() -> dict[str, Any]:
    from mmeval.synth.demo_models import DEMO_VERSION

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"demo_version": DEMO_VERSION, "git_commit": git("rev-parse", "HEAD") or None,
            "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def same_machine_kind(recorded: dict[str, str], here: dict[str, str]) -> bool:
    return all(recorded.get(k) == here.get(k) for k in ("cpu_capability", "torch"))


def retrain(work: Path, log: Callable[[str], None] = print, argv: list[str] | None = None) -> dict[str, Any]:
    """Train both demo models from scratch in `work` (emptied first) and export them to `work/shipped/`
    with their manifest; returns the manifest."""
    from mmeval.synth import demo_models, shipped
    from mmeval.synth.demo_models import KEY_FILE, demo_config, demo_families, train_demo_models

    if work.exists():
        if any(work.iterdir()) and not (work / WORK_MARK).is_file():
            raise SystemExit(f"demo-train: {work} is not empty and not a demo-train work folder; give another --work")
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / WORK_MARK).write_text("a make demo-train work folder: emptied by the next run\n")
    budget = demo_models.DEMO_BUDGET
    cfgs = [demo_config(m, budget=budget) for m in demo_families()]
    threads = 1 if budget.device == "cpu" else None
    started = time.perf_counter()
    ckpts = train_demo_models(cfgs, work, log=log, cores=max(2, len(cfgs)), threads=threads)
    wall = time.perf_counter() - started
    out = work / "shipped"
    models = {}
    for cfg in cfgs:
        meta = json.loads((work / cfg.model / KEY_FILE).read_text())
        files = shipped.export(ckpts[cfg.model], cfg.model, out / cfg.model)
        models[cfg.model] = {"key": cfg.key(), "settings": {k: v for k, v in asdict(cfg).items() if k != "threads"},
                             "threads": meta.get("threads"), "train_wall_s": meta.get("train_wall_s"),
                             "loss_first10": meta.get("loss_first10"), "loss_last10": meta.get("loss_last10"),
                             "files": files}
    manifest = {"command": COMMAND, "python": " ".join(["python -m mmeval.synth.demo_train", *(argv or [])]),
                "budget": asdict(budget), "code": code_version(), "machine": machine(),
                "wall_s": round(wall, 1), "models": models}
    (out / shipped.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def compare_scores(retrained: Path, target: Path, work: Path, log: Callable[[str], None] = print) -> bool:
    """Both sets of demo models evaluated on the generated benchmarks (seed 0, as `make demo`); True when
    every headline score of a retrained model lies within the shipped model's 95 % bootstrap interval."""
    from mmeval.demo import TASKS, evaluate
    from mmeval.synth import shipped
    from mmeval.synth.defaults import ensure_demo_data

    data = ensure_demo_data(0, work / "eval", log=log)
    ok = True
    for family in shipped.read_manifest(target)["models"]:
        new, old = (evaluate(family, shipped.model_args(family, root), data, work / "eval" / name)
                    for name, root in (("retrained", retrained), ("shipped", target)))
        for task in TASKS:
            a, b = (json.loads((run / f"{task}.json").read_text()) for run in (new, old))
            head = b["headline"]
            value, interval = a["metrics"].get(head), (b.get("ci95") or {}).get(head)
            if value is None and b["metrics"].get(head) is None:
                continue  # not scored for either (MM-Vet without a judge)
            within = value is not None and interval is not None and interval[0] <= value <= interval[1]
            log(f"{family} {task} {head}: retrained {value} vs shipped {b['metrics'].get(head)} "
                f"[{interval[0] if interval else '?'}, {interval[1] if interval else '?'}]: "
                + ("within" if within else "OUTSIDE"))
            ok &= within
    return ok


def replace_shipped(out: Path, target: Path) -> None:
    """Make the retrained folder `out` the shipped weights (the old folder is renamed away first)."""
    old = target.with_name(target.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        target.rename(old)
    shutil.copytree(out, target)
    if old.exists():
        shutil.rmtree(old)


def report(manifest: dict[str, Any], out: Path, target: Path, log: Callable[[str], None] = print) -> bool:
    """Compare the retrained models with the shipped ones, line by line; True when all are bit for bit equal."""
    from mmeval.errors import CheckpointError
    from mmeval.synth import shipped

    try:
        old = shipped.read_manifest(target)
    except CheckpointError as exc:
        log(f"nothing to compare with: {exc}")
        return False
    ok = True
    for family, info in manifest["models"].items():
        was = old.get("models", {}).get(family)
        if was is None:
            log(f"{family}: not in the shipped weights")
            ok = False
            continue
        if was.get("key") != info["key"]:
            log(f"{family}: trained with other settings than the shipped weights (key {info['key']} vs "
                f"{was.get('key')}): a retrain with these settings is expected to differ")
        result = shipped.compare(out / family, target / family, family)
        for line in result.lines():
            log(line)
        ok &= result.identical
    if not ok:
        rec, here = old.get("machine", {}), manifest["machine"]
        if not same_machine_kind(rec, here):
            log(f"the shipped weights were trained on another machine kind ({rec.get('cpu_capability')}, torch "
                f"{rec.get('torch')}; here {here['cpu_capability']}, torch {here['torch']}): the kernels sum in "
                "another order and the training amplifies it, so the weights are not expected to match; compare "
                "the demo's scores instead (make demo)")
        elif manifest["budget"].get("device", "cpu") != "cpu":
            log("trained on a GPU: its kernels are not bit for bit deterministic; compare the demo's scores instead")
    return ok


def main(argv: list[str] | None = None) -> int:
    from mmeval.errors import CheckpointError
    from mmeval.synth import shipped

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder (emptied first)")
    ap.add_argument("--replace", action="store_true", help="make the retrained models the shipped weights")
    ap.add_argument("--target", type=Path, default=shipped.WEIGHTS_DIR, help=argparse.SUPPRESS)  # tests
    args = ap.parse_args(argv)
    say = lambda m: print(m, flush=True)  # noqa: E731
    manifest = retrain(args.work, log=say, argv=sys.argv[1:] if argv is None else argv)
    out = args.work / "shipped"
    say(f"trained both in {manifest['wall_s']:.0f} s; exported to {out}")
    same = report(manifest, out, args.target, log=say)
    if args.replace:
        replace_shipped(out, args.target)
        say(f"replaced the shipped weights in {args.target} (commit them with {shipped.MANIFEST})")
        return 0
    if same:
        say("result: the same as the shipped weights, bit for bit")
        return 0
    try:
        recorded = shipped.read_manifest(args.target).get("machine", {})
    except CheckpointError:
        recorded = None  # nothing shipped to compare with (report() said so)
    if recorded is None or same_machine_kind(recorded, manifest["machine"]) \
            or manifest["budget"].get("device", "cpu") != "cpu":
        say("result: NOT the same as the shipped weights")
        return 1
    say("evaluating the retrained and the shipped models on the generated benchmarks")
    scores = compare_scores(out, args.target, args.work, log=say)
    say("result: " + ("another machine kind, so not bit for bit; every score within the shipped model's 95 % "
                      "interval" if scores else "NOT the same as the shipped weights: scores outside the "
                      "shipped model's 95 % intervals"))
    return 0 if scores else 1


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
