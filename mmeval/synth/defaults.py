"""The embedded default of `mmeval run`: with no checkpoint and no data, on a machine that cannot
reach the hub, the run uses the demo model and the generated benchmarks, and says so in one line.

`apply_embedded_default(config, log)` returns the RunConfig to run:

- a model family with a demo model (its adapter declares `demo`: `vl-mamba`, `cobra`)
  without `checkpoint=`, `tiny=` or `random_init=` (the adapters accept nothing else, and no
  VL-Mamba weights are public): the demo model of that family (trained on
  first use, ~5 min on 2 CPU cores, then cached under `.cache/mmeval-demo/`) is filled in as
  `checkpoint=` (+ `vision=` for Cobra);
- and with it, no `--data` while the hub is unreachable (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE
  set, or no connection): the generated benchmarks are filled in (written on first use), and
  VQAv2 gets `split=val` (the generated test-dev split has no answers, like the real one) unless
  a split was asked for. A given checkpoint is never run on generated data: without `--data`
  offline, the task's error says where to put the real data;
- anything given explicitly is kept; tasks the generator does not cover keep the config as it is.

`MMEVAL_DEMO_CACHE` moves the cache folder.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any, Callable, Optional

MODEL_KEYS = ("checkpoint", "tiny", "random_init")


def cache_dir() -> Path:
    return Path(os.environ.get("MMEVAL_DEMO_CACHE") or ".cache/mmeval-demo")


def _truthy(v: Optional[str]) -> bool:
    return str(v or "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 1.5) -> bool:
    """False when offline mode is set or huggingface.co:443 does not answer within `timeout` s."""
    if any(_truthy(os.environ.get(k)) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def demo_data_dir(seed: int = 0, cache: Optional[Path] = None) -> Path:
    return (cache or cache_dir()) / f"data-seed{seed}"


def ensure_demo_data(seed: int = 0, cache: Optional[Path] = None, log: Callable[[str], None] = print) -> Path:
    """The generated benchmarks for `seed` (written when missing or written with other settings)."""
    from mmeval.synth.benchmarks import DEFAULT_COUNTS, TASKS, read_manifest, write_benchmarks

    d = demo_data_dir(seed, cache)
    m = read_manifest(d)
    if m is None or m.get("seed") != seed or m.get("counts") != {t: DEFAULT_COUNTS[t] for t in TASKS}:
        log(f"writing the generated benchmarks (seed {seed}) to {d}")
        write_benchmarks(d, seed=seed)
    return d


def ensure_demo_model(model: str, seed: int = 0, cache: Optional[Path] = None,
                      log: Callable[[str], None] = print) -> dict[str, str]:
    """--model-args of the cached demo model (trained first when missing)."""
    from mmeval.synth.demo_models import cached, demo_config, model_args, train_demo_model

    cfg, cache = demo_config(model, seed), cache or cache_dir()
    ckpt = cached(cfg, cache) or train_demo_model(cfg, cache, log=log)  # a cache hit says nothing
    return model_args(model, ckpt)


def apply_embedded_default(config: Any, log: Callable[[str], None] = print, *, seed: int = 0,
                           cache: Optional[Path] = None, reachable: Optional[Callable[[], bool]] = None,
                           make_data: Optional[Callable[..., Path]] = None,
                           make_model: Optional[Callable[..., dict]] = None) -> Any:
    """The RunConfig to run (a new one; `config` is not changed). See the module docstring.

    `reachable`, `make_data` and `make_model` replace the hub probe, `ensure_demo_data` and
    `ensure_demo_model` (tests)."""
    from mmeval.synth.benchmarks import TASKS
    from mmeval.synth.demo_models import demo_families

    reachable = reachable or hub_reachable
    make_data = make_data or ensure_demo_data
    make_model = make_model or ensure_demo_model
    cache = cache or cache_dir()
    need_model = not any(config.model_args.get(k) for k in MODEL_KEYS) and config.model in demo_families()
    if not need_model:
        # a real checkpoint (or another model) is never run on toy data: without --data it reads
        # the hub, and offline the task's error says where to put the data
        return config
    need_data = config.data is None and all(t in TASKS for t in config.tasks)
    online = reachable() if need_data else None
    if online:
        need_data = False  # online: the real benchmarks from the hub, with the demo model

    # both pieces are logged on one line; building them may print progress before it
    quiet: Callable[[str], None] = lambda m: log(f"  {m}")  # noqa: E731
    model_args = dict(config.model_args)
    parts = []
    if need_model:
        model_args.update(make_model(config.model, seed=seed, cache=cache, log=quiet))
        parts.append(f"the demo {config.model} model ({model_args['checkpoint']})")
    data, task_args = config.data, {k: dict(v) for k, v in config.task_args.items()}
    if need_data:
        data = make_data(seed=seed, cache=cache, log=quiet)
        if "vqav2" in config.tasks:
            task_args.setdefault("vqav2", {}).setdefault("split", "val")
        parts.append(f"the generated benchmarks ({data})")
    why = []
    if need_model:
        why.append("no checkpoint")
    if need_data:
        why.append("no --data" + (" and the hub is unreachable" if online is False else ""))
    log(f"embedded default ({', '.join(why)}): using {' and '.join(parts)} -- demo models on generated data, "
        "not the papers' models (give --model-args checkpoint=... and --data DIR for real runs)")
    return dataclasses.replace(config, model_args=model_args, data=data, task_args=task_args)
