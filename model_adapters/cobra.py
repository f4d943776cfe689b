"""`cobra`: Cobra (DINOv2+SigLIP -> fused GELU MLP -> Mamba-2.8B-Zephyr), arXiv 2403.14520.

Prompt, image placement, decoding and the checkpoint layout follow the released code; see
`mmeval/models/cobra.py` for the details and where each comes from; inference and finetuning use
the same template (`chat_template`). Inference runs through `VLMRuntime` (image features and the
post-image recurrent state computed once per image; `MambaVLMAdapter`).

The family is declared here in full: the adapter, its finetune spec and recipes (`CobraFinetune`),
its lmms-eval name and its demo model (`CobraDemo`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from mmeval.adapter import CommonModelArgs, LmmsEvalName
from mmeval.errors import CheckpointError, ModelArgsError
from mmeval.finetune.specs import ModelSpec, load_tokenizer_dir, to_device, write_meta
from mmeval.models.vlm_adapter import Loaded, MambaVLMAdapter
from mmeval.synth.demo_models import DemoSpec

# ---- training -------------------------------------------------------------------------------
# Cobra (arXiv 2403.14520; h-zhao1997/cobra `cobra/conf/models.py`, class Cobra_3B, and
# `cobra/models/vlms/cobra.py::freeze_backbones`):
#   align:    align_epochs 1, align_global_batch_size 256, align_per_device_batch_size 16,
#             align_learning_rate 1e-3, align_weight_decay 0.0, align_max_grad_norm 1.0,
#             "linear-warmup+cosine-decay", align_warmup_ratio 0.03; trains the projector only
#             (vision_backbone + llm_backbone frozen). NB: the released cobra+3b uses the
#             `no-align+...` arch specifier, i.e. it SKIPS this stage and finetunes from a fresh projector.
#   finetune: finetune_epochs 2 (the paper: 2 epochs), finetune_global_batch_size 128,
#             finetune_per_device_batch_size 16, finetune_learning_rate 2e-5, finetune_weight_decay 0.1,
#             finetune_max_grad_norm 1.0, "linear-warmup+cosine-decay", finetune_warmup_ratio 0.03;
#             projector + LLM trained, vision frozen. llm_max_length 2048. Data "llava-lvis4v-lrv"
#             (LLaVA-v1.5 mix665k + LVIS-Instruct4V + LRV-Instruct). prismatic/cobra compute
#             warmup steps as int(ratio * total) and apply weight decay to >=2-D tensors only.
#   align data: LLaVA 558K captions; Cobra's AlignDataset drops the human prompt and predicts
#   "{caption}<|endoftext|>" right after the image patches.
_COBRA = "h-zhao1997/cobra cobra/conf/models.py (Cobra_3B); arXiv 2403.14520"
RECIPES: dict[str, dict[str, Any]] = {
    "align": dict(
        dataset="LLaVA-Pretrain 558K (Cobra 'llava-v15' align split)", trainable=("projector",), template="plain",
        epochs=1, global_batch_size=256, per_device_batch_size=16, learning_rate=1e-3, weight_decay=0.0,
        decay_1d=False, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="floor", max_length=2048,
        group_by_modality_length=False, source=_COBRA),
    "instruct": dict(
        dataset="llava-lvis4v-lrv: llava_v1_5_mix665k + LVIS-Instruct4V + LRV-Instruct", trainable=("projector", "lm"),
        template="chat", epochs=2, global_batch_size=128, per_device_batch_size=16, learning_rate=2e-5,
        weight_decay=0.1, decay_1d=False, max_grad_norm=1.0, warmup_ratio=0.03, warmup_rounding="floor",
        max_length=2048, group_by_modality_length=True, source=_COBRA),
}


def chat_template(model, tokenizer):
    """Cobra's chat template for the model's LLM (`mmeval.models.cobra.chat_template`): inference and training."""
    from mmeval.models.cobra import chat_template as cobra_template

    return cobra_template(tokenizer, model.cfg.prompt_style)


class CobraFinetune(ModelSpec):
    """`mmeval finetune --model cobra`: Cobra run dirs in and out (`save_cobra`), towers beside them."""

    def __init__(self):
        super().__init__(name="cobra", image_first=True, recipes=RECIPES, chat_template=chat_template,
                         options=("vision", "llm", "tokenizer", "model_id", "arch_specifier", "vision_backbone_id"))

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
        return model, load_tokenizer_dir(options.get("tokenizer") or options["llm"])

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
        return model, load_tokenizer_dir(tok_src)

    def save(self, model, tokenizer, directory, options=None):
        from mmeval.models.cobra import save_cobra
        from mmeval.models.vision_timm import save_vision_weights

        options = options or {}
        d = save_cobra(model, directory)
        if not options.get("vision"):  # random/tiny towers are not in Cobra's checkpoint: keep them beside it
            save_vision_weights(model.vision, d / "vision")
        tokenizer.save_pretrained(str(d))
        write_meta(d, {"model": self.name, "vision": options.get("vision") or "vision/"})
        return d

    def rebuild(self, model):
        from mmeval.models.cobra import Cobra

        return Cobra(model.cfg)

    def groups(self, model):
        return {"vision": model.vision, "projector": model.projector, "lm": model.lm}

    def forward(self, m, batch, device):
        pv = batch["pixel_values"]
        return m(input_ids=batch["input_ids"].to(device), lengths=batch["lengths"].to(device),
                 pixel_values=to_device(pv, device), labels=batch["labels"].to(device),
                 has_image=batch["has_image"].to(device) if pv is not None else None)


# ---- the demo model ---------------------------------------------------------------------------
RELEASED = "cobra+3b"  # the released model the embedded default runs when the hub is reachable


class CobraDemo(DemoSpec):
    """`make demo`'s Cobra: the tiny DINOv2 + SigLIP towers at the demo's size, the projector, a small LM;
    the towers are saved beside the checkpoint (`vision/`)."""

    def build(self, cfg, vocab_size):
        from mmeval.models.cobra import Cobra, CobraConfig

        lm = dict(d_model=cfg.d_model, n_layer=cfg.n_layer, vocab_size=vocab_size, d_state=cfg.d_state,
                  dt_min=cfg.dt_min, dt_max=cfg.dt_max)
        over = {"arch_specifier": cfg.projector} if cfg.projector else {}
        over["image_size"] = cfg.image_size
        return Cobra(CobraConfig.tiny_config(vocab_size=vocab_size, lm=lm, **over))

    def model_args(self, checkpoint):
        return {"checkpoint": str(checkpoint), "vision": str(Path(checkpoint) / "vision")}

    def prompt_texts(self):
        from mmeval.models.cobra import build_prompt

        return [build_prompt("x", "zephyr"), build_prompt("x", "mamba")]

    def ship(self, checkpoint, out, skip=()):
        """The released layout with the weights in safetensors instead of the pickled .pt."""
        from mmeval.models.cobra import CHECKPOINT_FILE, SAFETENSORS_FILE, read_checkpoint, save_checkpoint_safetensors

        super().ship(checkpoint, out, skip=(*skip, CHECKPOINT_FILE.as_posix()))
        save_checkpoint_safetensors(read_checkpoint(Path(checkpoint)), Path(out) / SAFETENSORS_FILE)

    def released(self):
        """cobra+3b from the hub (han1997/cobra) and its two timm towers, through huggingface_hub (its
        cache is reused); nothing is asked of the network in offline mode (HF_HUB_OFFLINE)."""
        from mmeval.models.cobra import HF_HUB_REPO, MODEL_PRESETS
        from mmeval.models.mamba.checkpoint import hub_offline
        from mmeval.models.vision_timm import VISION_BACKBONES

        if hub_offline():
            return None, "offline mode (HF_HUB_OFFLINE) is set"
        try:
            import timm
            from huggingface_hub import constants, snapshot_download

            run = Path(snapshot_download(HF_HUB_REPO, allow_patterns=[f"{RELEASED}/*"])) / RELEASED
            for name in VISION_BACKBONES[MODEL_PRESETS[RELEASED]["vision_backbone_id"]].values():
                snapshot_download(timm.models.get_pretrained_cfg(name).hf_hub_id,
                                  allow_patterns=["*.json", "model.safetensors"])
        except Exception as exc:  # noqa: BLE001 - unreachable hub, missing repo, ...: the demo model instead
            first = (str(exc).strip().splitlines() or [""])[0][:120]
            return None, f"{HF_HUB_REPO} could not be fetched ({type(exc).__name__}: {first})"
        return {"checkpoint": str(run), "vision": str(constants.HF_HUB_CACHE)}, f"{HF_HUB_REPO} {RELEASED}"


# ---- the adapter ------------------------------------------------------------------------------
class CobraAdapter(MambaVLMAdapter):
    name = "cobra"
    description = "Cobra (DINOv2+SigLIP ViTs, fused MLP projector, Mamba-2.8B-Zephyr LM); arXiv 2403.14520"
    preferred_protocol = "prismatic"
    options = {
        "checkpoint": "Cobra run dir (config.json + checkpoints/latest-checkpoint.pt), a han1997/cobra snapshot, "
                      "or a model id (cobra+3b, ...) in the local HF cache",
        "vision": "dir with the timm tower weights (dino.safetensors/siglip.safetensors, or timm/HF snapshot dirs); "
                  "'random' for random towers; needed with checkpoint=",
        "tokenizer": "tokenizer.json or a dir holding it (default: llm= dir, the run dir, then the LLM's HF cache)",
        "projector": "linear | gelu-mlp | fused-gelu-mlp | ldpnet | fused-ldpnet (tiny/random_init; "
                     "must match the checkpoint otherwise)",
        "llm": "LLM id (mamba-2.8b-zephyr (default), mamba-2.8b-slimpj, mamba-2.8b, mamba-1.4b) or a local "
               "Mamba dir (tokenizer source)",
        "model": "Cobra preset for random_init/tiny: cobra+3b (default), cobra-base+3b, cobra-siglip+3b, "
                 "cobra-ldpnet+3b",
        "resize": "image_resize_strategy: resize-naive (cobra+3b) | resize-crop | letterbox",
        "dtype": "bf16 | fp16 | fp32 (default bf16 on CUDA, fp32 on CPU)",
        "device": "torch device (default: the runner's)",
        "tiny": "1: tiny random model + in-memory tiny tokenizer (tests; seeded, no files)",
        "random_init": "1: full-size model with random weights, no files (speed runs)",
        "seed": "seed for tiny/random_init weights (default 0)",
        "prefix_cache": "true|false: reuse the post-image state across questions on one image (default true)",
        "cuda_graphs": "true|false: CUDA-graph single-token decoding (default true on CUDA)",
        "kernel": "auto | ref | cuda: Mamba kernels (default auto)",
    }

    finetune = CobraFinetune()
    lmms_eval = LmmsEvalName("cobra")
    # the demo model's own settings (steps, batch, device: demo_models.DEMO_BUDGET; docs/quickstart.md)
    demo = CobraDemo(settings={})

    chat_template = staticmethod(chat_template)

    def __init__(self, *args, vision_source: str | None = None, **kwargs):
        self.vision_source = vision_source
        super().__init__(*args, **kwargs)

    @classmethod
    def load(cls, args: dict[str, str], common: CommonModelArgs) -> Loaded:
        from mmeval.models.cobra import (
            LLM_BACKBONES,
            MODEL_PRESETS,
            Cobra,
            CobraConfig,
            build_tiny_tokenizer,
            load_cobra,
        )

        dev, dtype, tiny, random_init, ckpt = common.device, common.dtype, common.tiny, common.random_init, \
            common.checkpoint
        if sum([tiny, random_init, bool(ckpt)]) != 1:
            raise ModelArgsError("model cobra: give exactly one of checkpoint=PATH, tiny=1 or random_init=1")

        llm_arg = args.get("llm")
        llm_dir = llm_arg if llm_arg and os.path.isdir(os.path.expanduser(llm_arg)) else None
        llm_id = llm_arg if llm_arg and not llm_dir else None
        if llm_id is not None and llm_id not in LLM_BACKBONES:
            raise ModelArgsError(f"model cobra: unknown llm {llm_id!r}; known: {', '.join(LLM_BACKBONES)} "
                                 "or a directory")
        over: dict[str, Any] = {}
        if args.get("projector"):
            over["arch_specifier"] = args["projector"]
        if llm_id:
            over["llm_backbone_id"] = llm_id
        if args.get("resize"):
            over["image_resize_strategy"] = args["resize"]
        preset = args.get("model") or "cobra+3b"
        if preset not in MODEL_PRESETS:
            raise ModelArgsError(f"model cobra: unknown model {preset!r}; known: {', '.join(MODEL_PRESETS)}")

        run_dir = None
        vision_source = args.get("vision")
        tok_source = args.get("tokenizer")
        if tiny:
            tok = cls.load_tokenizer(tok_source) if tok_source else build_tiny_tokenizer()
            tok_source = tok_source or "tiny (in-memory)"
            base = {k: v for k, v in MODEL_PRESETS[preset].items() if k not in over}
            cfg = CobraConfig.tiny_config(vocab_size=len(tok), **base, **over)
            torch.manual_seed(common.seed)
            model = Cobra(cfg, device=dev, dtype=dtype, kernel=common.kernel)
        elif random_init:
            cfg = CobraConfig.preset(preset, **over)
            torch.manual_seed(common.seed)
            model = Cobra(cfg, device=dev, dtype=dtype, kernel=common.kernel)
            if tok_source or llm_dir:
                tok = cls.load_tokenizer(tok_source or llm_dir)
                tok_source = tok_source or llm_dir
            else:  # no files at all: ids only need to lie inside the vocabulary
                tok = build_tiny_tokenizer()
                tok_source = "tiny (in-memory; random_init without tokenizer=)"
        else:
            vision = _resolve_vision(vision_source)
            model, run_dir = load_cobra(ckpt, device=dev, dtype=dtype, kernel=common.kernel, vision_weights=vision,
                                        overrides=over)
            vision_source = vision if isinstance(vision, str) else "random"
            tok_source = tok_source or llm_dir or (str(run_dir) if (run_dir / "tokenizer.json").is_file() else None) \
                or LLM_BACKBONES[model.cfg.llm_backbone_id]["hf_hub_path"]
            tok = cls.load_tokenizer(tok_source)
        return Loaded(model, tok, tok_source, checkpoint=str(run_dir) if run_dir is not None else None,
                      extra={"vision_source": vision_source})

    def identity_config(self) -> dict[str, Any]:
        from mmeval.models.cobra import build_prompt

        m = self.model
        return dict(lm_config=dict(vars(m.lm.config)), dtype=self.dtype_name,
                    prompt_template=build_prompt("{prompt}", m.cfg.prompt_style),
                    image_tokens=m.num_image_tokens, image_position="before the prompt (no BOS)",
                    eos_token_id=self.tokenizer.eos_token_id, vision_weights=self.vision_source,
                    tokenizer=self.tokenizer_source)


def _resolve_vision(vision: str | None):
    """vision= value -> a weights dir, or None for random towers ('random')."""
    if vision is not None and vision.strip().lower() == "random":
        warnings.warn("cobra: vision=random: the vision towers have random weights", stacklevel=4)
        return None
    if vision is not None:
        p = Path(os.path.expanduser(vision))
        if not p.is_dir():
            raise CheckpointError(f"model cobra: vision weights dir not found: {p}")
        return str(p)
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "hub")
    if any(Path(hub).glob("models--timm--vit_*dinov2*")) or any(Path(hub).glob("models--timm--vit_so400m*")):
        return hub
    raise CheckpointError("model cobra: the Cobra checkpoint holds no vision weights: pass vision=DIR with the timm "
                          "towers (timm/vit_large_patch14_reg4_dinov2.lvd142m and "
                          "timm/vit_so400m_patch14_siglip_384.webli), or vision=random")
