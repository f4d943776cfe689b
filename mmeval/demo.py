"""`make demo`: the whole product on this machine, with nothing to download or train, in minutes.

1. `mmeval synth`: mini versions of the ten benchmarks in their real layouts, with generated
   pictures whose answers are known (`.cache/mmeval-demo/data-seed0/`);
2. the two demo models that ship with the package -- a small VL-Mamba and a small Cobra, trained
   with the finetune module on a generated LLaVA-format training set (other pictures) by
   `make demo-train` (`mmeval.synth.demo_train`), in `mmeval/synth/demo_weights/`;
3. `mmeval run` of each model on the ten generated benchmarks, under its paper's protocol;
4. `mmeval report paper` for both papers, and one compact table with the chance level of every
   task beside the scores.

These are demo models on generated data, not the papers' models; their numbers say that the
pipeline works end to end, nothing about VL-Mamba or Cobra.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

TASKS = ("vqav2", "gqa", "scienceqa_img", "textvqa", "pope", "mme", "mmbench", "mmvet", "vizwiz", "vsr")
# what the generated training set can teach (the question types it drills)
TAUGHT = {"vqav2": "colour / shape / count questions", "gqa": "colour / shape / left-right questions",
          "scienceqa_img": "lettered choices of colour or shape", "textvqa": "the word (given as the OCR token)",
          "pope": "is there a <shape> / <colour> <shape>", "mme": "yes/no: existence, count, position, colour, OCR",
          "mmbench": "lettered choices, all rotations right", "mmvet": "graded by an LLM judge only",
          "vizwiz": "colour of a shape, or 'unanswerable'", "vsr": "left of / right of: true or false"}
BANNER = ("DEMO MODELS ON GENERATED DATA -- not VL-Mamba's or Cobra's released models, not the real benchmarks.\n"
          "The scores below show the pipeline working end to end; they say nothing about the papers.")


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _mmeval(*args: str, check: bool = True) -> int:
    cmd = [sys.executable, "-m", "mmeval", *args]
    _say("$ mmeval " + " ".join(args))
    rc = subprocess.run(cmd, check=False).returncode
    if check and rc not in (0, 3):
        raise SystemExit(f"demo: `mmeval {args[0]}` failed with exit code {rc}")
    return rc


# the metric the chance level refers to, where it is not the headline (POPE's F1 rewards always
# answering "yes" with 66.7, so guessing is judged on accuracy, 50)
CHANCE_ON = {"pope": "accuracy"}


def _metric(path: Path, task: str) -> tuple[str, float | None, str, float | None, float | None]:
    """(headline, its value, protocol, the value the chance level is compared with, the lower end
    of that value's 95 % bootstrap interval or None)."""
    try:
        r = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return "", None, "", None, None
    head, metrics = r.get("headline", ""), r.get("metrics", {})
    judged = CHANCE_ON.get(task, head)
    low = (r.get("ci95") or {}).get(judged)
    return head, metrics.get(head), r.get("protocol", ""), metrics.get(judged), None if low is None else low[0]


def evaluate(model: str, model_args: dict[str, str], data: Path, out: Path) -> Path:
    """`mmeval run` of a demo model on the ten generated benchmarks, as the demo runs it; its run folder."""
    args = ",".join(f"{k}={v}" for k, v in model_args.items())
    _mmeval("run", "--model", model, "--model-args", args, "--tasks", ",".join(TASKS), "--data", str(data),
            "--task-args", "vqav2.split=val", "--output", str(out), "--run-name", f"demo-{model}",
            "--bootstrap", "200", "--no-progress", "--allow-errors")
    return out / f"demo-{model}"


def compact_table(runs: dict[str, Path], manifest: dict) -> str:
    from tabulate import tabulate

    rows = []
    for task in TASKS:
        chance = manifest["tasks"].get(task, {}).get("chance")
        row = [task]
        above = []
        for run_dir in runs.values():
            head, value, proto, judged, low = _metric(run_dir / f"{task}.json", task)
            text = "" if value is None else f"{value:.1f}"
            if task in CHANCE_ON and judged is not None and CHANCE_ON[task] != head:
                text += f" ({CHANCE_ON[task][:3]} {judged:.1f})"
            row.append(text)
            row.append(f"{head} [{proto}]" if head else "")
            if judged is not None and chance is not None:
                # above chance = the whole 95 % interval above it (a run without bootstrap: 5 points)
                above.append(low > chance if low is not None else judged > chance + 5.0)
        row += ["n/a" if chance is None else f"{chance:.1f}",
                "yes" if above and all(above) else ("partly" if any(above) else "no"), TAUGHT[task]]
        rows.append(row)
    headers = ["task"]
    for model in runs:
        headers += [f"demo {model}", "metric [protocol]"]
    headers += ["chance", "above chance", "what the training set drills"]
    return tabulate(rows, headers=headers)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from mmeval.results import fingerprint
    from mmeval.synth import shipped
    from mmeval.synth.defaults import cache_dir, ensure_demo_data

    started = time.perf_counter()
    cache = cache_dir()
    seed = int(os.environ.get("MMEVAL_DEMO_SEED", "0"))
    _say(BANNER + "\n")

    _say(f"[1/4] generated benchmarks (seed {seed})")
    data = ensure_demo_data(seed, cache, log=_say)
    manifest = json.loads((data / "synth.json").read_text())
    _say(f"      {data}: " + ", ".join(f"{t} {i['rows']}" for t, i in manifest["tasks"].items()) + "\n")

    _say("[2/4] demo models (shipped with mmeval; `make demo-train` retrains them)")
    weights = shipped.read_manifest()
    models = {m: shipped.model_args(m) for m in ("vl-mamba", "cobra")}
    for model, info in weights["models"].items():
        s = info["settings"]
        _say(f"      {model}: {shipped.family_dir(model)} ({s['align_steps']} + {s['steps']} steps of batch "
             f"{s['batch_size']} on {s['device']}, demo version {weights['code']['demo_version']})")
    _say("")

    _say("[3/4] evaluation: mmeval run on the ten generated benchmarks")
    runs = {}
    for model, margs in models.items():
        out = cache / "runs" / f"{model}-{fingerprint(weights['models'][model]['files'])}"  # new weights: a new run
        runs[model] = evaluate(model, margs, data, out)
        _say("")

    _say("[4/4] reports")
    reports = cache / "reports"
    for model, paper in (("vl-mamba", "vl-mamba"), ("cobra", "cobra")):
        _mmeval("report", "paper", "--paper", paper, "--results", str(runs[model].parent), "--out", str(reports),
                check=False)
        _say("")
    _say("All tasks, demo models vs. chance (guessing uniformly among the answers each question allows; "
         "'above chance' = the lower end of the score's 95 % bootstrap interval above it; POPE judged on accuracy):\n")
    _say(compact_table(runs, manifest))
    _say("")
    _say(BANNER)
    _say(f"\nfiles: data {data} | models {shipped.WEIGHTS_DIR}/<model> | runs {cache}/runs | tables {reports}")
    _say(f"demo wall time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
