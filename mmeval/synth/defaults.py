"""The embedded default of `mmeval run`: with no checkpoint, a model family with a demo model runs
its released checkpoint where one exists and can be fetched, else the demo model that ships with
the package -- on the generated benchmarks when no `--data` is given -- and says which in one line.

`apply_embedded_default(config, log)` returns the RunConfig to run:

- a model family with a demo model (its adapter declares `demo`: `vl-mamba`, `cobra`) without
  `checkpoint=`, `tiny=` or `random_init=` (the adapters accept nothing else):
  - the family's released checkpoint when its `DemoSpec.released()` fetches one (Cobra: cobra+3b
    through huggingface_hub, unless offline mode is set); the run is then a real one, on `--data`
    or the hub's copies of the benchmarks;
  - else (no public VL-Mamba weights; Cobra offline or unreachable) the shipped demo model
    (`mmeval.synth.shipped`: nothing is trained, nothing is downloaded), and without `--data` the
    generated benchmarks (written on first use under `.cache/mmeval-demo/`), with VQAv2 on
    `split=val` (the generated test-dev split has no answers, like the real one) unless a split
    was asked for. Tasks the generator does not cover keep the data as given;
- anything given explicitly is kept; a given checkpoint is never run on generated data (without
  `--data` offline, the task's error says where to put the real data).

`MMEVAL_DEMO_CACHE` moves the cache folder of the generated benchmarks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODEL_KEYS = ("checkpoint", "tiny", "random_init")


def cache_dir() -> Path:
    return Path(os.environ.get("MMEVAL_DEMO_CACHE") or ".cache/mmeval-demo")


def demo_data_dir(seed: int = 0, cache: Path | None = None) -> Path:
    return (cache or cache_dir()) / f"data-seed{seed}"


def ensure_demo_data(seed: int = 0, cache: Path | None = None, log: Callable[[str], None] = print) -> Path:
    """The generated benchmarks for `seed` (written when missing or written with other settings)."""
    from mmeval.synth.benchmarks import DEFAULT_COUNTS, TASKS, read_manifest, write_benchmarks

    d = demo_data_dir(seed, cache)
    m = read_manifest(d)
    if m is None or m.get("seed") != seed or m.get("counts") != {t: DEFAULT_COUNTS[t] for t in TASKS}:
        log(f"writing the generated benchmarks (seed {seed}) to {d}")
        write_benchmarks(d, seed=seed)
    return d


def apply_embedded_default(config: Any, log: Callable[[str], None] = print, *, seed: int = 0,
                           cache: Path | None = None,
                           released: Callable[[str], tuple[dict | None, str]] | None = None,
                           make_data: Callable[..., Path] | None = None,
                           demo_args: Callable[[str], dict] | None = None) -> Any:
    """The RunConfig to run (a new one; `config` is not changed). See the module docstring.

    `released(model)`, `make_data` and `demo_args(model)` replace the family's `DemoSpec.released`,
    `ensure_demo_data` and `shipped.model_args` (tests)."""
    from mmeval.synth import shipped
    from mmeval.synth.benchmarks import TASKS
    from mmeval.synth.demo_models import demo_families

    if any(config.model_args.get(k) for k in MODEL_KEYS) or config.model not in demo_families():
        # a real checkpoint (or another model) is never run on toy data: without --data it reads
        # the hub, and offline the task's error says where to put the data
        return config
    model = config.model
    release_args, why = (released or (lambda m: demo_families()[m].released()))(model)
    model_args = dict(config.model_args)
    if release_args:
        model_args.update(release_args)
        log(f"no checkpoint given: using the released {model} checkpoint ({why}: {release_args['checkpoint']}); "
            + ("on the data in --data" if config.data is not None else "on the benchmarks' hub copies"))
        return dataclasses.replace(config, model_args=model_args)

    model_args.update((demo_args or shipped.model_args)(model))
    data, task_args = config.data, {k: dict(v) for k, v in config.task_args.items()}
    generated = data is None and all(t in TASKS for t in config.tasks)
    written: list[str] = []
    if generated:
        data = (make_data or ensure_demo_data)(seed=seed, cache=cache or cache_dir(), log=written.append)
        if "vqav2" in config.tasks:
            task_args.setdefault("vqav2", {}).setdefault("split", "val")
    on = (f"on the generated benchmarks ({data}{', written now' if written else ''})" if generated
          else "on the data in --data" if data is not None else "on the benchmarks' hub copies")
    log(f"no checkpoint given ({why}): using the demo {model} model shipped with mmeval ({model_args['checkpoint']}) "
        f"{on} -- a demo model, not the paper's; give --model-args checkpoint=... and --data DIR for real runs")
    return dataclasses.replace(config, model_args=model_args, data=data, task_args=task_args)
