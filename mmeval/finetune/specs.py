"""Per-model specs: how the finetune loop builds, splits into parameter groups, feeds, saves and
loads each model, and the paper's recipes for it. The loop only talks to models through these.

Each family declares its spec in its adapter module (`finetune = ...Finetune()` on the adapter
class, next to the chat template the spec's formatter uses); `get_spec` finds it through the model
registry, so a model family trains without this package naming it.

Contract used (the model modules' training entry points): ``model(input_ids, lengths, pixel_values, ...,
labels=labels)`` returns an object with ``logits`` [B, L', V'] and ``labels`` [B, L'] aligned with
the logits (image positions and padding -100); the loss is the next-token cross-entropy over
``labels[:, 1:]``.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.nn as nn

from mmeval.finetune.collate import Formatter

SPEC_FILE = "finetune_model.json"


def _pad_id(tok) -> int:
    for v in (getattr(tok, "pad_token_id", None), getattr(tok, "eos_token_id", None)):
        if v is not None:
            return int(v)
    return 0


@dataclass
class ModelSpec:
    name: str
    image_first: bool  # the image precedes text position 0 (Cobra), else it replaces a placeholder token
    # stage ("align" | "instruct") -> the paper's Recipe fields (`mmeval.finetune.recipes.get_recipe`)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: tuple[str, ...] = ()  # the model options `--set` passes to build/load/save (the rest: recipe fields)
    # (model, tokenizer) -> the model's mmeval.models.chat.ChatTemplate: the one its adapter prompts with
    chat_template: Callable[[Any, Any], Any] | None = None

    # -- construction / IO (model-specific) --
    def build(self, tiny: bool, init: str | None, options: dict, device, seed: int, stage: str):
        raise NotImplementedError

    def load(self, directory, device, options: dict | None = None):
        raise NotImplementedError

    def save(self, model, tokenizer, directory, options: dict | None = None) -> Path:
        raise NotImplementedError

    def rebuild(self, model):
        """A fresh CPU model with the same configuration (FSDP: the full weights are loaded into it to save)."""
        raise NotImplementedError

    def groups(self, model) -> dict[str, nn.Module]:
        raise NotImplementedError

    def formatter(self, model, tokenizer, template: str, max_length: int) -> Formatter:
        """`template` "chat": the model's chat template; "plain": its alignment-stage captions."""
        if self.chat_template is None:
            raise NotImplementedError(f"model {self.name}: its finetune spec names no chat template")
        return Formatter(self.chat_template(model, tokenizer), plain=(template == "plain"), max_length=max_length)

    def image_transform(self, model):
        return model.image_transform

    def forward(self, model_or_wrapper, batch: dict, device):
        raise NotImplementedError

    def loss_vocab(self, model) -> int | None:
        return None

    def set_trainable(self, model, trainable) -> None:
        for name, module in self.groups(model).items():
            module.requires_grad_(name in trainable)

    def pad_id(self, tokenizer) -> int:
        return _pad_id(tokenizer)


def to_device(x, device):
    """A tensor, or a dict of tensors (fused towers), on `device`; None stays None."""
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


def write_meta(d: Path, meta: dict) -> None:
    (Path(d) / SPEC_FILE).write_text(json.dumps(meta, indent=2))


def load_tokenizer_dir(d) -> Any:
    from mmeval.models.mamba import load_tokenizer

    return load_tokenizer(str(Path(d)))


def finetune_models() -> dict[str, ModelSpec]:
    """The registered model families that declare a finetune spec, by name."""
    from mmeval.registry import model_classes

    return {name: cls.finetune for name, cls in model_classes().items() if getattr(cls, "finetune", None)}


def get_spec(name: str) -> ModelSpec:
    specs = finetune_models()
    try:
        return specs[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(specs)}") from None
