"""`vl-mamba`: VL-Mamba (vision tower -> VSS/MLP MultiModal Connector -> Mamba LM), arXiv 2403.13600.

Every ablation axis of the paper is a --model-arg (encoder, mmc, scan, llm); the paper default is
SigLIP-SO + VSS-L2 + BSM + Mamba-2.8B-SlimPajama. No VL-Mamba weights are public: `checkpoint=`
takes the LLaVA-style layout defined in `mmeval/models/vl_mamba.py` (or a bare state-spaces Mamba
folder plus `projector=mm_projector.bin`), `tiny=1` builds a seeded test-size model with an
in-memory tokenizer, and `random_init=1` the full-size model with random weights and no files
(throughput runs), e.g.

    mmeval run --model vl-mamba --model-args random_init=1,dtype=bfloat16 ...

Prompt template, image placement and the BOS/EOS choice: `PROMPT_TEMPLATE_DOC` in
`mmeval/models/vl_mamba.py`. Inference runs through `VLMRuntime`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import torch

from mmeval.adapter import Adapter, CommonModelArgs, sha256_of_path
from mmeval.errors import CheckpointError, ModelArgsError
from mmeval.types import Prediction, Request



class VLMambaAdapter(Adapter):
    name = "vl-mamba"
    description = "VL-Mamba (CLIP/SigLIP ViT, MLP/VSS-MLP/VSS-L2 connector with BSM/CSM scan, Mamba LM); arXiv 2403.13600"
    preferred_protocol = "llava"
    options = {
        "encoder": "vision tower: clip (CLIP-ViT-L/14-336) | siglip (SigLIP-SO400M/14-384, default)",
        "mmc": "MultiModal Connector: mlp | vss-mlp | vss-l2 (default)",
        "scan": "2D scan of the VSS connectors: bsm (bidirectional, default) | csm (cross-scan, 4 routes)",
        "llm": "mamba-790m | mamba-1.4b | mamba-2.8b (Pile) | mamba-2.8b-slimpj (default) | mamba-2.8b-zephyr",
        "checkpoint": "VL-Mamba checkpoint dir (config.json with mm_* fields + model.safetensors), or a bare "
                      "state-spaces Mamba dir/hub id with projector=",
        "projector": "connector file for a bare Mamba checkpoint (LLaVA stage-1 mm_projector.bin)",
        "vision_tower": "folder (config.json + safetensors) or hub id of the pretrained CLIP/SigLIP tower, when the "
                        "checkpoint does not include it (default: config.json's mm_vision_tower)",
        "tokenizer": "tokenizer.json or a dir holding it (default: the checkpoint dir, then the LLM's hub id)",
        "dtype": "float32 | bfloat16 | float16 (default bfloat16 on CUDA, float32 on CPU)",
        "device": "torch device (default: the runner's)",
        "tiny": "1: tiny random model + in-memory tiny tokenizer (tests; seeded, no files)",
        "random_init": "1: full-size model with random weights and no files (speed runs); the tokenizer is "
                       "tokenizer= if given, else an in-memory byte-level one",
        "seed": "seed for tiny/random_init weights (default 0)",
        "prefix_cache": "true|false: reuse the post-image state across questions on one image (default true)",
        "cuda_graphs": "true|false: CUDA-graph single-token decoding (default true on CUDA)",
        "kernel": "auto | ref | cuda: Mamba/VSS scan kernels (default auto)",
    }

    def __init__(self, model, tokenizer, args: dict[str, str], device: torch.device, dtype: torch.dtype,
                 checkpoint: str | None = None, tokenizer_source: str | None = None,
                 prefix_cache: bool = True, cuda_graphs: bool = False):
        from mmeval.models.vl_mamba import split_prompt_ids
        from mmeval.models.vlm_runtime import PromptSplit, VLMRuntime

        self.model, self.tokenizer, self.args = model, tokenizer, dict(args)
        self.device, self.dtype, self.checkpoint = device, dtype, checkpoint
        self.tokenizer_source = tokenizer_source
        self._sha: str | None = None
        cache: OrderedDict[tuple[str, bool], PromptSplit] = OrderedDict()

        def split_prompt(prompt: str, has_image: bool) -> PromptSplit:
            key = (prompt, has_image)
            split = cache.get(key)
            if split is None:
                before, after = split_prompt_ids(tokenizer, prompt, has_image)
                split = PromptSplit(before_image=before, after_image=after)
                cache[key] = split
                if len(cache) > 4096:
                    cache.popitem(last=False)
            return split

        self.split_prompt = split_prompt
        self.runtime = VLMRuntime(model, tokenizer, model.preprocess, split_prompt,
                                  eos_token_id=tokenizer.eos_token_id, device=device, dtype=dtype,
                                  prefix_cache=prefix_cache, cuda_graphs=cuda_graphs,
                                  candidate_prefix=" ")  # "ASSISTANT:" is followed by " Yes"

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_args(cls, args: dict[str, str], device: str = "cpu") -> "VLMambaAdapter":
        from mmeval.models.vl_mamba import VLMamba, VLMambaConfig, build_tiny_tokenizer

        cls.check_args(args)
        common = CommonModelArgs.parse(args, device)
        dev, dtype, tiny, random_init = common.device, common.dtype, common.tiny, common.random_init
        prefix_cache, cuda_graphs, kernel, seed = common.prefix_cache, common.cuda_graphs, common.kernel, common.seed
        ckpt = common.checkpoint
        if tiny and random_init:
            raise ModelArgsError("model vl-mamba: give tiny=1 or random_init=1, not both")
        if random_init and ckpt:
            raise ModelArgsError("model vl-mamba: random_init=1 builds a model without files; drop checkpoint=")
        if not (tiny or random_init or ckpt):
            raise ModelArgsError("model vl-mamba: give checkpoint=PATH, tiny=1 or random_init=1")
        axes = {k: args[k] for k in ("encoder", "mmc", "scan", "llm") if args.get(k)}
        try:
            cfg = VLMambaConfig(tiny=tiny, **axes)
        except ValueError as e:
            raise ModelArgsError(f"model vl-mamba: {e}") from None

        tok_source = args.get("tokenizer")
        if ckpt:
            ckpt_path = _resolve_checkpoint(ckpt)
            model = VLMamba.from_pretrained(ckpt_path, device=dev, dtype=dtype, kernel=kernel,
                                            vision_tower=args.get("vision_tower"), projector=args.get("projector"),
                                            config=cfg)
            ckpt = str(ckpt_path)
            for k, v in axes.items():  # axes given with a checkpoint must agree with it
                have = getattr(model.cfg, k)
                if k != "llm" and have != getattr(cfg, k):
                    raise ModelArgsError(f"model vl-mamba: {k}={v} but checkpoint {ckpt} has {k}={have}")
            if tiny and not tok_source:
                tok, tok_source = build_tiny_tokenizer(), "tiny (in-memory)"
            else:
                tok_source = tok_source or (ckpt if (ckpt_path / "tokenizer.json").is_file() else None) \
                    or model.cfg.llm_hub_id or "EleutherAI/gpt-neox-20b"
                tok = _load_tok(tok_source)
        else:
            torch.manual_seed(seed)
            model = VLMamba(cfg, device=dev, dtype=dtype, kernel=kernel)
            if tiny:  # break the symmetric initial values (norms at 1, D at 1, ...) so outputs vary
                with torch.no_grad():
                    for prm in model.parameters():
                        prm.add_(torch.randn_like(prm) * 0.2)
            if tok_source:
                tok = _load_tok(tok_source)
            else:  # no files at all: ids only need to lie inside the vocabulary
                tok = build_tiny_tokenizer()
                tok_source = "tiny (in-memory)" + ("" if tiny else "; random_init without tokenizer=")
        if tok.eos_token_id is None:
            raise CheckpointError(f"model vl-mamba: tokenizer {tok_source} has no EOS token (<|endoftext|>)")
        model.eval().requires_grad_(False)
        return cls(model, tok, args, dev, dtype, checkpoint=ckpt, tokenizer_source=tok_source,
                   prefix_cache=prefix_cache, cuda_graphs=cuda_graphs)

    # ---- answering -------------------------------------------------------------------------
    def prepare(self, requests) -> None:
        self.runtime.prepare(requests)  # decode + preprocess the next batch's images off the main thread

    def generate(self, requests: Sequence[Request]) -> list[Prediction]:
        return self.runtime.generate(requests)

    def identity(self) -> dict[str, Any]:
        from mmeval.models.vl_mamba import PROMPT_TEMPLATE

        if self._sha is None and self.checkpoint is not None and Path(self.checkpoint).exists():
            self._sha = sha256_of_path(self.checkpoint)
        m = self.model
        cfg = m.cfg.to_json()
        cfg.update(dtype=str(self.dtype).replace("torch.", ""), prompt_template=PROMPT_TEMPLATE,
                   bos="<|endoftext|> prepended", image_tokens=m.num_image_tokens,
                   image_position="after 'USER: ' of the first turn (LLaVA-1.5)",
                   eos_token_id=self.tokenizer.eos_token_id, tokenizer=self.tokenizer_source,
                   vision_weights=m.vision_tower.source or ("checkpoint" if self.checkpoint else "random"),
                   prefix_cache=self.runtime.prefix_cache)
        return {"name": self.name, "args": dict(self.args), "checkpoint": self.checkpoint,
                "checkpoint_sha256": self._sha, "config": cfg}

    def close(self) -> None:
        self.runtime = None  # type: ignore[assignment]
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _resolve_checkpoint(ckpt: str) -> Path:
    p = Path(os.path.expanduser(ckpt))
    if p.is_dir():
        return p
    from mmeval.models.vl_mamba import _call_engine
    from mmeval.models.mamba.checkpoint import resolve_checkpoint_dir

    return _call_engine(lambda: resolve_checkpoint_dir(ckpt))  # a hub id (bare Mamba LM)


def _load_tok(source: str):
    from mmeval.models.mamba import load_tokenizer
    from mmeval.models.mamba.checkpoint import CheckpointError as EngineCheckpointError

    try:
        return load_tokenizer(source)
    except EngineCheckpointError as exc:
        raise CheckpointError(f"model vl-mamba: tokenizer: {exc} (or pass tokenizer=PATH)") from None
