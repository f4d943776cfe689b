"""Training recipes: the `Recipe` fields, each paper's presets looked up by (model, stage), and
`--set key=value` overrides (every field overridable).

The presets are part of each family's finetune spec (`ModelSpec.recipes`, declared in its adapter
module with the sources its numbers were checked against): VL-Mamba trains with LLaVA-1.5's scripts
(`model_adapters/vl_mamba.py`; the VL-Mamba paper states none of these numbers), Cobra like its
released code (`model_adapters/cobra.py`). A preset may say field by field where each value comes
from (`Recipe.sources`); `--set` overrides are recorded there as such, so `--print-recipe` tells a
paper's (or its reference's) number from a user's.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

STAGES = ("align", "instruct")
STAGE_ALIASES = {"finetune": "instruct", "pretrain": "align", "instruct": "instruct", "align": "align"}
PARAM_GROUPS = ("vision", "projector", "lm")


@dataclass
class Recipe:
    model: str
    stage: str
    dataset: str = ""                    # what the paper trained on (informational)
    trainable: tuple[str, ...] = ("projector",)  # subset of PARAM_GROUPS; the rest is frozen
    template: str = "chat"               # "plain" (align: caption only) | "chat" (model's chat template)
    epochs: int = 1
    max_steps: int | None = None      # overrides epochs when set
    global_batch_size: int = 128
    per_device_batch_size: int = 16      # accumulation = global / (per_device * world)
    learning_rate: float = 2e-5
    weight_decay: float = 0.0
    decay_1d: bool = False               # apply weight decay to 1-D tensors (biases, norms) too
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    lr_scheduler: str = "cosine"         # linear warmup then cosine decay to 0 | "constant"
    warmup_ratio: float = 0.03
    warmup_rounding: str = "ceil"        # "ceil" (HF Trainer / LLaVA) | "floor" (prismatic / Cobra)
    max_length: int = 2048               # text tokens per sample (truncation)
    group_by_modality_length: bool = True
    seed: int = 42
    num_workers: int = 4
    save_every: int = 0                  # save a checkpoint every N optimizer steps (0: only at the end)
    log_every: int = 1
    mixed_precision: str = "bf16"        # "bf16" autocast on CUDA (always fp32 on CPU) | "fp32"
    tensorboard: bool = False
    source: str = ""                     # where the preset comes from, in one line
    sources: dict[str, str] = field(default_factory=dict)  # field -> where its value comes from

    def __post_init__(self):
        bad = [g for g in self.trainable if g not in PARAM_GROUPS]
        if bad:
            raise ValueError(f"unknown parameter group(s) {bad}; known: {', '.join(PARAM_GROUPS)}")
        if self.template not in ("plain", "chat"):
            raise ValueError(f"template must be 'plain' or 'chat', got {self.template!r}")
        if self.lr_scheduler not in ("cosine", "constant"):
            raise ValueError(f"lr_scheduler must be 'cosine' or 'constant', got {self.lr_scheduler!r}")
        if self.warmup_rounding not in ("ceil", "floor"):
            raise ValueError(f"warmup_rounding must be 'ceil' or 'floor', got {self.warmup_rounding!r}")
        unknown = sorted(set(self.sources) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"sources name unknown recipe field(s) {unknown}")

    def accumulation(self, world_size: int = 1) -> int:
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(f"global_batch_size {self.global_batch_size} is not a multiple of "
                             f"per_device_batch_size {self.per_device_batch_size} x {world_size} processes")
        return self.global_batch_size // per_step

    def warmup_steps(self, total_steps: int) -> int:
        x = self.warmup_ratio * total_steps
        return int(math.ceil(x)) if self.warmup_rounding == "ceil" else int(x)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["trainable"] = list(self.trainable)
        return d


def canonical_stage(stage: str) -> str:
    s = STAGE_ALIASES.get(stage.lower())
    if s is None:
        raise ValueError(f"unknown stage {stage!r}; known: align, instruct (alias: finetune)")
    return s


def _coerce(name: str, value: Any, current: Any, ftype: Any) -> Any:
    if not isinstance(value, str):
        return value
    v = value.strip()
    if name == "trainable":
        return tuple(x for x in v.replace("+", " ").replace("|", " ").split() if x)
    if v.lower() in ("none", "null") and ("None" in str(ftype) or current is None):
        return None
    if isinstance(current, bool) or ftype in (bool, "bool"):
        if v.lower() in ("1", "true", "yes", "on"):
            return True
        if v.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name}: expected a boolean, got {value!r}")
    if isinstance(current, int) or "int" in str(ftype):
        try:
            return int(v)
        except ValueError:
            f = float(v)  # "1e3"
            if f != int(f):
                raise ValueError(f"{name}: expected an integer, got {value!r}") from None
            return int(f)
    if isinstance(current, float) or "float" in str(ftype):
        return float(v)
    return v


def get_recipe(model: str, stage: str, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """The paper preset for (model, stage) with `overrides` (values may be strings, as from --set)."""
    from mmeval.finetune.specs import get_spec

    model = model.lower()
    presets = get_spec(model).recipes
    stage = canonical_stage(stage)
    if stage not in presets:
        raise ValueError(f"model {model} has no {stage} recipe; it has: {', '.join(presets)}")
    kw: dict[str, Any] = dict(model=model, stage=stage, **presets[stage])
    sources = dict(kw.pop("sources", None) or {})
    fixed = ("model", "stage", "source", "sources")  # not settable: they describe the preset
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    defaults = Recipe(model=model, stage=stage)
    for k, v in (overrides or {}).items():
        if k not in fields or k in fixed:
            raise ValueError(f"unknown recipe field {k!r}; known: {', '.join(n for n in fields if n not in fixed)}")
        kw[k] = _coerce(k, v, kw.get(k, getattr(defaults, k)), fields[k].type)
        sources[k] = f"--set {k}={v}"
    return Recipe(**kw, sources=sources)


def parse_set(items) -> dict[str, str]:
    """`--set a=1,b=2 --set c=3` -> {"a": "1", "b": "2", "c": "3"}. A comma inside a value must not be
    followed by `key=` (so `trainable=projector,lm` is not supported: use `trainable=projector+lm`)."""
    out: dict[str, str] = {}
    for item in items or ():
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise ValueError(f"--set expects key=value, got {part!r}")
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out
