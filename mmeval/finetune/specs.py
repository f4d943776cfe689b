"""Per-model specs: how the finetune loop builds, splits into parameter groups, feeds, saves and
loads each model. The loop only talks to models through these.

Contract used (the model modules' training entry points): ``model(input_ids, lengths, pixel_values, ...,
labels=labels)`` returns an object with ``logits`` [B, L', V'] and ``labels`` [B, L'] aligned with
the logits (image positions and padding -100); the loss is the next-token cross-entropy over
``labels[:, 1:]``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn

from mmeval.finetune.collate import (
    Formatter,
    cobra_chat_segments,
    plain_segments,
    vl_mamba_chat_segments,
)

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

    # -- construction / IO (model-specific) --
    def build(self, tiny: bool, init: Optional[str], options: dict, device, seed: int, stage: str):
        raise NotImplementedError

    def load(self, directory, device, options: Optional[dict] = None):
        raise NotImplementedError

    def save(self, model, tokenizer, directory, options: Optional[dict] = None) -> Path:
        raise NotImplementedError

    def rebuild(self, model):
        """A fresh CPU model with the same configuration (FSDP: the full weights are loaded into it to save)."""
        raise NotImplementedError

    def groups(self, model) -> dict[str, nn.Module]:
        raise NotImplementedError

    def formatter(self, model, tokenizer, template: str, max_length: int) -> Formatter:
        raise NotImplementedError

    def image_transform(self, model):
        raise NotImplementedError

    def forward(self, model_or_wrapper, batch: dict, device):
        raise NotImplementedError

    def loss_vocab(self, model) -> Optional[int]:
        return None

    def set_trainable(self, model, trainable) -> None:
        for name, module in self.groups(model).items():
            module.requires_grad_(name in trainable)

    def pad_id(self, tokenizer) -> int:
        return _pad_id(tokenizer)


def _to(x, device):
    if x is None:
        return None
    if isinstance(x, dict):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


def _write_meta(d: Path, meta: dict) -> None:
    (d / SPEC_FILE).write_text(json.dumps(meta, indent=2))


def _read_meta(d: Path) -> dict:
    f = Path(d) / SPEC_FILE
    return json.loads(f.read_text()) if f.is_file() else {}


def _load_tok_dir(d: Path):
    from mmeval.models.mamba import load_tokenizer

    return load_tokenizer(str(d))


# ---- Cobra ----------------------------------------------------------------------------------
class CobraSpec(ModelSpec):
    def __init__(self):
        super().__init__(name="cobra", image_first=True)

    def build(self, tiny, init, options, device, seed, stage):
        from mmeval.models.cobra import Cobra, CobraConfig, build_tiny_tokenizer

        if init:
            return self.load(init, device, options)
        if tiny:
            tok = build_tiny_tokenizer()
            over = {k: options[k] for k in ("arch_specifier", "vision_backbone_id") if k in options}
            cfg = CobraConfig.tiny_config(vocab_size=len(tok), **over)
            torch.manual_seed(seed)
            return Cobra(cfg, device=device), tok
        # full size from the parts: Mamba LM dir (llm=...), tower weights (vision=...), fresh projector
        from mmeval.models.mamba import load_mamba_lm

        if not options.get("llm") or not options.get("vision"):
            raise ValueError("cobra: without --init give --set llm=MAMBA_DIR,vision=TOWER_DIR (or --tiny)")
        cfg = CobraConfig.preset(options.get("model_id", "cobra+3b"))
        torch.manual_seed(seed)
        model = Cobra(cfg, device=device, vision_weights=options["vision"])
        lm = load_mamba_lm(options["llm"], device=device, dtype=torch.float32)
        model.lm.load_state_dict(lm.state_dict())
        model.lm.tie_weights()
        return model, _load_tok_dir(Path(options.get("tokenizer") or options["llm"]))

    def load(self, directory, device, options=None):
        from mmeval.models.cobra import load_cobra, resolve_run_dir

        options = options or {}
        run = resolve_run_dir(directory)
        vision = options.get("vision") or (str(run / "vision") if (run / "vision").is_dir() else None)
        model, run = load_cobra(run, device=device, dtype=torch.float32, vision_weights=vision)
        tok_src = options.get("tokenizer") or (run if (run / "tokenizer.json").is_file() else None)
        if tok_src is None:
            from mmeval.models.cobra import build_tiny_tokenizer

            if not model.cfg.tiny:
                raise ValueError(f"cobra: no tokenizer.json in {run}; pass --set tokenizer=PATH")
            return model, build_tiny_tokenizer()
        return model, _load_tok_dir(Path(tok_src))

    def save(self, model, tokenizer, directory, options=None):
        from mmeval.models.cobra import save_cobra
        from mmeval.models.vision_timm import save_vision_weights

        options = options or {}
        d = save_cobra(model, directory)
        if not options.get("vision"):  # random/tiny towers are not in Cobra's checkpoint: keep them beside it
            save_vision_weights(model.vision, d / "vision")
        tokenizer.save_pretrained(str(d))
        _write_meta(d, {"model": self.name, "vision": options.get("vision") or "vision/"})
        return d

    def rebuild(self, model):
        from mmeval.models.cobra import Cobra

        return Cobra(model.cfg)

    def groups(self, model):
        return {"vision": model.vision, "projector": model.projector, "lm": model.lm}

    def formatter(self, model, tokenizer, template, max_length):
        eos = tokenizer.eos_token
        style = model.cfg.prompt_style
        if template == "plain":  # Cobra AlignDataset: "{caption}{eos}" after the patches, every token a target
            seg = lambda conv, has_image: plain_segments(conv, eos, image_placeholder=False)  # noqa: E731
        else:
            seg = lambda conv, has_image: cobra_chat_segments(conv, eos, style)  # noqa: E731
        return Formatter(tokenizer, seg, max_length=max_length)

    def image_transform(self, model):
        return model.image_transform

    def forward(self, m, batch, device):
        pv = batch["pixel_values"]
        return m(input_ids=batch["input_ids"].to(device), lengths=batch["lengths"].to(device),
                 pixel_values=_to(pv, device), labels=batch["labels"].to(device),
                 has_image=batch["has_image"].to(device) if pv is not None else None)


# ---- VL-Mamba -------------------------------------------------------------------------------
class VLMambaSpec(ModelSpec):
    def __init__(self):
        super().__init__(name="vl-mamba", image_first=False)

    def _axes(self, options):
        return {k: options[k] for k in ("encoder", "mmc", "scan", "llm") if k in options}

    def build(self, tiny, init, options, device, seed, stage):
        from mmeval.models.vl_mamba import VLMamba, VLMambaConfig, build_tiny_tokenizer

        if init:
            cfg = VLMambaConfig(tiny=tiny, **self._axes(options)) if (tiny or self._axes(options)) else None
            torch.manual_seed(seed)
            model = VLMamba.from_pretrained(init, device=device, dtype=torch.float32,
                                            vision_tower=options.get("vision_tower"), projector=options.get("projector"),
                                            config=cfg, allow_random_projector=(stage == "align"),
                                            allow_random_vision_tower=tiny)
            d = Path(init)
            if options.get("tokenizer") or (d / "tokenizer.json").is_file():
                return model, _load_tok_dir(Path(options.get("tokenizer") or d))
            if not model.cfg.tiny:
                raise ValueError(f"vl-mamba: no tokenizer.json in {d}; pass --set tokenizer=PATH")
            return model, build_tiny_tokenizer()
        if not tiny:
            raise ValueError("vl-mamba: without --init give --tiny (or --init a Mamba LM dir / VL-Mamba checkpoint)")
        tok = build_tiny_tokenizer()
        cfg = VLMambaConfig(tiny=True, **self._axes(options))
        torch.manual_seed(seed)
        return VLMamba(cfg, device=device), tok

    def load(self, directory, device, options=None):
        return self.build(_tiny_checkpoint(directory), str(directory), dict(options or {}), device, 0, "instruct")

    def save(self, model, tokenizer, directory, options=None):
        d = model.save_pretrained(directory)
        tokenizer.save_pretrained(str(d))
        _write_meta(d, {"model": self.name})
        return d

    def rebuild(self, model):
        from mmeval.models.vl_mamba import VLMamba

        return VLMamba(model.cfg)

    def groups(self, model):
        return {"vision": model.vision_tower, "projector": model.mm_projector, "lm": model.lm}

    def set_trainable(self, model, trainable):
        super().set_trainable(model, trainable)
        model.freeze_vision_tower = "vision" not in trainable

    def formatter(self, model, tokenizer, template, max_length):
        from mmeval.models.vl_mamba import IMAGE_TOKEN_INDEX, bos_token_id

        eos = tokenizer.eos_token
        if template == "plain":  # LLaVA --version plain: [BOS] <image> "{caption}\n", caption tokens targets
            seg = lambda conv, has_image: plain_segments(conv, "\n", image_placeholder=True)  # noqa: E731
        else:
            seg = lambda conv, has_image: vl_mamba_chat_segments(conv, eos, has_image)  # noqa: E731
        return Formatter(tokenizer, seg, max_length=max_length, image_token_id=IMAGE_TOKEN_INDEX,
                         bos_id=bos_token_id(tokenizer))

    def image_transform(self, model):
        return model.preprocess

    def forward(self, m, batch, device):
        from mmeval.models.vl_mamba import IMAGE_TOKEN_INDEX

        return m(input_ids=batch["input_ids"].to(device), lengths=batch["lengths"].to(device),
                 pixel_values=_to(batch["pixel_values"], device), image_token_id=IMAGE_TOKEN_INDEX,
                 labels=batch["labels"].to(device))

    def loss_vocab(self, model):
        return int(model.lm.config.vocab_size)  # VLMamba.forward's loss runs over the unpadded vocabulary


def _tiny_checkpoint(d) -> bool:
    f = Path(d) / "config.json"
    try:
        return bool(json.loads(f.read_text()).get("vl_mamba", {}).get("tiny"))
    except Exception:
        return False


SPECS: dict[str, ModelSpec] = {"cobra": CobraSpec(), "vl-mamba": VLMambaSpec()}


def get_spec(name: str) -> ModelSpec:
    try:
        return SPECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(SPECS)}") from None
