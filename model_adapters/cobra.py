"""`cobra`: Cobra (DINOv2+SigLIP -> fused GELU MLP -> Mamba-2.8B-Zephyr), arXiv 2403.14520.

Prompt, image placement, decoding and the checkpoint layout follow the released code; see
`mmeval/models/cobra.py` for the details and where each comes from. Inference runs through
`VLMRuntime` (image features and the post-image recurrent state computed once per image).
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch

from mmeval.adapter import Adapter, CommonModelArgs, sha256_of_path
from mmeval.errors import CheckpointError, ModelArgsError
from mmeval.types import Prediction, Request



class CobraAdapter(Adapter):
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
        "model": "Cobra preset for random_init/tiny: cobra+3b (default), cobra-base+3b, cobra-siglip+3b, cobra-ldpnet+3b",
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

    def __init__(self, model, tokenizer, args: dict[str, str], device: torch.device, dtype: torch.dtype,
                 run_dir: Path | None = None, vision_source: str | None = None, tokenizer_source: str | None = None,
                 prefix_cache: bool = True, cuda_graphs: bool = False):
        from mmeval.models.cobra import encode_prompt
        from mmeval.models.vlm_runtime import PromptSplit, VLMRuntime

        self.model, self.tokenizer, self.args = model, tokenizer, dict(args)
        self.device, self.dtype, self.run_dir = device, dtype, run_dir
        self.vision_source, self.tokenizer_source = vision_source, tokenizer_source
        self._sha: str | None = None
        style = model.cfg.prompt_style
        cache: OrderedDict[str, list[int]] = OrderedDict()

        def split_prompt(prompt: str, has_image: bool) -> PromptSplit:
            ids = cache.get(prompt)
            if ids is None:
                ids = encode_prompt(tokenizer, prompt, style)
                cache[prompt] = ids
                if len(cache) > 4096:
                    cache.popitem(last=False)
            # Cobra: no BOS, the image patches come first, then the whole templated prompt
            return PromptSplit(before_image=[], after_image=list(ids))

        self.split_prompt = split_prompt
        self.runtime = VLMRuntime(model, tokenizer, model.image_transform, split_prompt,
                                  eos_token_id=tokenizer.eos_token_id, device=device, dtype=dtype,
                                  prefix_cache=prefix_cache, cuda_graphs=cuda_graphs)

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_args(cls, args: dict[str, str], device: str = "cpu") -> "CobraAdapter":
        from mmeval.models.cobra import LLM_BACKBONES, MODEL_PRESETS, Cobra, CobraConfig, build_tiny_tokenizer, \
            load_cobra

        cls.check_args(args)
        common = CommonModelArgs.parse(args, device)
        dev, dtype, tiny, random_init = common.device, common.dtype, common.tiny, common.random_init
        prefix_cache, cuda_graphs, kernel, seed = common.prefix_cache, common.cuda_graphs, common.kernel, common.seed
        ckpt = common.checkpoint
        if sum([tiny, random_init, bool(ckpt)]) != 1:
            raise ModelArgsError("model cobra: give exactly one of checkpoint=PATH, tiny=1 or random_init=1")

        llm_arg = args.get("llm")
        llm_dir = llm_arg if llm_arg and os.path.isdir(os.path.expanduser(llm_arg)) else None
        llm_id = llm_arg if llm_arg and not llm_dir else None
        if llm_id is not None and llm_id not in LLM_BACKBONES:
            raise ModelArgsError(f"model cobra: unknown llm {llm_id!r}; known: {', '.join(LLM_BACKBONES)} or a directory")
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
            tok = _load_tok(tok_source) if tok_source else build_tiny_tokenizer()
            tok_source = tok_source or "tiny (in-memory)"
            base = {k: v for k, v in MODEL_PRESETS[preset].items() if k not in over}
            cfg = CobraConfig.tiny_config(vocab_size=len(tok), **base, **over)
            torch.manual_seed(seed)
            model = Cobra(cfg, device=dev, dtype=dtype, kernel=kernel)
        elif random_init:
            cfg = CobraConfig.preset(preset, **over)
            torch.manual_seed(seed)
            model = Cobra(cfg, device=dev, dtype=dtype, kernel=kernel)
            if tok_source or llm_dir:
                tok = _load_tok(tok_source or llm_dir)
                tok_source = tok_source or llm_dir
            else:  # no files at all: ids only need to lie inside the vocabulary
                tok = build_tiny_tokenizer()
                tok_source = "tiny (in-memory; random_init without tokenizer=)"
        else:
            vision = _resolve_vision(vision_source)
            model, run_dir = load_cobra(ckpt, device=dev, dtype=dtype, kernel=kernel, vision_weights=vision,
                                        overrides=over)
            vision_source = vision if isinstance(vision, str) else "random"
            tok_source = tok_source or llm_dir or (str(run_dir) if (run_dir / "tokenizer.json").is_file() else None) \
                or LLM_BACKBONES[model.cfg.llm_backbone_id]["hf_hub_path"]
            tok = _load_tok(tok_source)
        if tok.eos_token_id is None:
            raise CheckpointError(f"model cobra: tokenizer {tok_source} has no EOS token (<|endoftext|>)")
        model.eval().requires_grad_(False)
        return cls(model, tok, args, dev, dtype, run_dir=run_dir, vision_source=vision_source,
                   tokenizer_source=tok_source, prefix_cache=prefix_cache, cuda_graphs=cuda_graphs)

    # ---- answering -------------------------------------------------------------------------
    def prepare(self, requests) -> None:
        self.runtime.prepare(requests)  # decode + preprocess the next batch's images off the main thread

    def generate(self, requests: Sequence[Request]) -> list[Prediction]:
        return self.runtime.generate(requests)

    def identity(self) -> dict[str, Any]:
        from mmeval.models.cobra import build_prompt

        if self._sha is None and self.run_dir is not None:
            self._sha = sha256_of_path(self.run_dir)
        cfg = self.model.cfg.to_json()
        cfg.update(lm_config=dict(vars(self.model.lm.config)), dtype=str(self.dtype).replace("torch.", ""),
                   prompt_template=build_prompt("{prompt}", self.model.cfg.prompt_style),
                   image_tokens=self.model.num_image_tokens, image_position="before the prompt (no BOS)",
                   eos_token_id=self.tokenizer.eos_token_id, vision_weights=self.vision_source,
                   tokenizer=self.tokenizer_source, prefix_cache=self.runtime.prefix_cache)
        return {"name": self.name, "args": dict(self.args),
                "checkpoint": str(self.run_dir) if self.run_dir is not None else None,
                "checkpoint_sha256": self._sha, "config": cfg}

    def close(self) -> None:
        self.runtime = None  # type: ignore[assignment]
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _load_tok(source: str):
    from mmeval.models.mamba import load_tokenizer
    from mmeval.models.mamba.checkpoint import CheckpointError as EngineCheckpointError

    try:
        return load_tokenizer(source)
    except EngineCheckpointError as exc:
        raise CheckpointError(f"model cobra: tokenizer: {exc} (or pass tokenizer=PATH)") from None


def _resolve_vision(vision: str | None):
    """vision= value -> a weights dir, or None for random towers ('random')."""
    if vision is not None and vision.strip().lower() == "random":
        warnings.warn("cobra: vision=random: the vision towers have random weights", stacklevel=3)
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
