"""Training recipes of the two papers as presets (every field overridable with ``key=value``).

Sources (read for this file; numbers checked against them):

VL-Mamba (arXiv 2403.13600, Sec. 4 "Implementation details"): the paper trains like LLaVA-1.5 in two
stages -- (1) vision-language alignment on LLaVA's 558K LAION/CC/SBU caption set, vision encoder and
Mamba LLM frozen, only the multimodal connector (MMC) trained, 1 epoch, lr 1e-3, global batch 256;
(2) instruction tuning on LLaVA-v1.5 mix665k, vision encoder frozen, MMC + LLM trained, 1 epoch,
lr 2e-5, global batch 128; both AdamW, cosine schedule, warmup ratio 0.03. The values not given
by the paper are LLaVA-1.5's scripts, which VL-Mamba's training follows:
  haotian-liu/LLaVA scripts/v1_5/pretrain.sh: num_train_epochs 1, global batch 256 (16 per device x
      4 accumulation x 4 GPUs in that version of the script; 32 x 8 in the original), learning_rate 1e-3,
      weight_decay 0., warmup_ratio 0.03, lr_scheduler_type cosine, model_max_length 2048,
      --version plain (caption-only "plain" template), --tune_mm_mlp_adapter True (projector only);
  scripts/v1_5/finetune.sh: num_train_epochs 1, 16 per device x 8 GPUs = 128, learning_rate 2e-5,
      weight_decay 0., warmup_ratio 0.03, cosine, model_max_length 2048, --version v1 (Vicuna-v1
      chat template), --group_by_modality_length True.
  HF Trainer defaults used by LLaVA: AdamW betas (0.9, 0.999), eps 1e-8, max_grad_norm 1.0, warmup
  steps = ceil(ratio * total steps).

Cobra (arXiv 2403.14520; h-zhao1997/cobra `cobra/conf/models.py`, class Cobra_3B, and
`cobra/models/vlms/cobra.py::freeze_backbones`):
  align:    align_epochs 1, align_global_batch_size 256, align_per_device_batch_size 16,
            align_learning_rate 1e-3, align_weight_decay 0.0, align_max_grad_norm 1.0,
            "linear-warmup+cosine-decay", align_warmup_ratio 0.03; trains the projector only
            (vision_backbone + llm_backbone frozen). NB: the released cobra+3b uses the
            `no-align+...` arch specifier, i.e. it SKIPS this stage and finetunes from a fresh projector.
  finetune: finetune_epochs 2 (the paper: 2 epochs), finetune_global_batch_size 128,
            finetune_per_device_batch_size 16, finetune_learning_rate 2e-5, finetune_weight_decay 0.1,
            finetune_max_grad_norm 1.0, "linear-warmup+cosine-decay", finetune_warmup_ratio 0.03;
            projector + LLM trained, vision frozen. llm_max_length 2048. Data "llava-lvis4v-lrv"
            (LLaVA-v1.5 mix665k + LVIS-Instruct4V + LRV-Instruct). prismatic/cobra compute
            warmup steps as int(ratio * total) and apply weight decay to >=2-D tensors only.
  align data: LLaVA 558K captions; Cobra's AlignDataset drops the human prompt and predicts
  "{caption}<|endoftext|>" right after the image patches.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

MODELS = ("vl-mamba", "cobra")
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
    max_steps: Optional[int] = None      # overrides epochs when set
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
    source: str = ""

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


_LLAVA = "LLaVA-1.5 scripts/v1_5/{pretrain,finetune}.sh; VL-Mamba arXiv 2403.13600 Sec. 4"
_COBRA = "h-zhao1997/cobra cobra/conf/models.py (Cobra_3B); arXiv 2403.14520"

PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("vl-mamba", "align"): dict(
        dataset="LLaVA-Pretrain blip_laion_cc_sbu_558k.json (558K)", trainable=("projector",), template="plain",
        epochs=1, global_batch_size=256, per_device_batch_size=32, learning_rate=1e-3, weight_decay=0.0,
        decay_1d=True, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="ceil", max_length=2048,
        group_by_modality_length=False, source=_LLAVA),
    ("vl-mamba", "instruct"): dict(
        dataset="llava_v1_5_mix665k.json (665K)", trainable=("projector", "lm"), template="chat",
        epochs=1, global_batch_size=128, per_device_batch_size=16, learning_rate=2e-5, weight_decay=0.0,
        decay_1d=True, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="ceil", max_length=2048,
        group_by_modality_length=True, source=_LLAVA),
    ("cobra", "align"): dict(
        dataset="LLaVA-Pretrain 558K (Cobra 'llava-v15' align split)", trainable=("projector",), template="plain",
        epochs=1, global_batch_size=256, per_device_batch_size=16, learning_rate=1e-3, weight_decay=0.0,
        decay_1d=False, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="floor", max_length=2048,
        group_by_modality_length=False, source=_COBRA),
    ("cobra", "instruct"): dict(
        dataset="llava-lvis4v-lrv: llava_v1_5_mix665k + LVIS-Instruct4V + LRV-Instruct", trainable=("projector", "lm"),
        template="chat", epochs=2, global_batch_size=128, per_device_batch_size=16, learning_rate=2e-5,
        weight_decay=0.1, decay_1d=False, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="floor",
        max_length=2048, group_by_modality_length=True, source=_COBRA),
}


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
    if v.lower() in ("none", "null") and ("Optional" in str(ftype) or current is None):
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


def get_recipe(model: str, stage: str, overrides: Optional[Mapping[str, Any]] = None) -> Recipe:
    """The paper preset for (model, stage) with `overrides` (values may be strings, as from --set)."""
    model = model.lower()
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    stage = canonical_stage(stage)
    kw: dict[str, Any] = dict(model=model, stage=stage, **PRESETS[(model, stage)])
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    defaults = Recipe(model=model, stage=stage)
    for k, v in (overrides or {}).items():
        if k not in fields or k in ("model", "stage"):
            raise ValueError(f"unknown recipe field {k!r}; known: {', '.join(n for n in fields if n not in ('model', 'stage'))}")
        kw[k] = _coerce(k, v, kw.get(k, getattr(defaults, k)), fields[k].type)
    return Recipe(**kw)


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
