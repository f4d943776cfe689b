"""`MambaVLMAdapter`: what the adapters of the Mamba VLMs (VL-Mamba, Cobra) share.

A family subclass says how to build its model from `--model-args` (`load`), which chat template
prompts it (`chat_template`, the one its finetune spec trains with) and what its identity adds
(`identity_config`). This class does the rest: the common --model-args (`CommonModelArgs`), the
EOS check, the tokenizer loading, the prompt split cache, answering through `VLMRuntime`
(image features and the post-image recurrent state once per image), the identity's common part
and releasing memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mmeval.adapter import Adapter, CommonModelArgs, sha256_of_path
from mmeval.errors import CheckpointError
from mmeval.models.chat import ChatTemplate
from mmeval.models.vlm_runtime import PromptSplit, VLMRuntime
from mmeval.types import Prediction, Request

PROMPT_CACHE_SIZE = 4096  # distinct prompts whose token ids are kept


@dataclass
class Loaded:
    """What a family's `load` built: the model, its tokenizer, and where each came from."""

    model: Any
    tokenizer: Any
    tokenizer_source: str | None
    checkpoint: str | None = None  # the evaluated checkpoint (its sha256 goes into the identity)
    extra: dict[str, Any] = field(default_factory=dict)  # family-specific constructor arguments


class MambaVLMAdapter(Adapter):
    """Base of the Mamba VLM adapters; subclasses set `name`, `options`, ... and the three hooks."""

    def __init__(self, model, tokenizer, args: dict[str, str], device: torch.device, dtype: torch.dtype,
                 checkpoint: str | None = None, tokenizer_source: str | None = None,
                 prefix_cache: bool = True, cuda_graphs: bool = False):
        self.model, self.tokenizer, self.args = model, tokenizer, dict(args)
        self.device, self.dtype, self.checkpoint = device, dtype, checkpoint
        self.tokenizer_source = tokenizer_source
        self._sha: str | None = None
        self.template = self.chat_template(model, tokenizer)
        self._prompts: OrderedDict[tuple[str, bool], PromptSplit] = OrderedDict()
        self.runtime = VLMRuntime(model, tokenizer, model.image_transform, self.split_prompt,
                                  eos_token_id=tokenizer.eos_token_id, device=device, dtype=dtype,
                                  prefix_cache=prefix_cache, cuda_graphs=cuda_graphs)

    # ---- the family's part -----------------------------------------------------------------
    @classmethod
    def load(cls, args: dict[str, str], common: CommonModelArgs) -> Loaded:
        """Build the model and tokenizer from --model-args (already checked against `options`)."""
        raise NotImplementedError

    @staticmethod
    def chat_template(model, tokenizer) -> ChatTemplate:
        raise NotImplementedError

    def identity_config(self) -> dict[str, Any]:
        """What the identity's `config` records beyond the model config (in the order written)."""
        raise NotImplementedError

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_args(cls, args: dict[str, str], device: str = "cpu") -> MambaVLMAdapter:
        cls.check_args(args)
        common = CommonModelArgs.parse(args, device)
        built = cls.load(args, common)
        if built.tokenizer.eos_token_id is None:
            raise CheckpointError(f"model {cls.name}: tokenizer {built.tokenizer_source} has no EOS token "
                                  "(<|endoftext|>)")
        built.model.eval().requires_grad_(False)
        return cls(built.model, built.tokenizer, args, common.device, common.dtype, checkpoint=built.checkpoint,
                   tokenizer_source=built.tokenizer_source, prefix_cache=common.prefix_cache,
                   cuda_graphs=common.cuda_graphs, **built.extra)

    @classmethod
    def load_tokenizer(cls, source: str):
        """The tokenizer at `source` (a tokenizer.json, a dir holding one, or a hub id); a failure
        names the model and the tokenizer= option."""
        from mmeval.models.mamba import load_tokenizer

        try:
            return load_tokenizer(source)
        except CheckpointError as exc:
            raise CheckpointError(f"model {cls.name}: tokenizer: {exc} (or pass tokenizer=PATH)") from None

    # ---- answering -------------------------------------------------------------------------
    def split_prompt(self, prompt: str, has_image: bool) -> PromptSplit:
        """The prompt's ids before and after the image (`ChatTemplate.prompt_split`), cached."""
        key = (prompt, has_image)
        split = self._prompts.get(key)
        if split is None:
            split = self._prompts[key] = self.template.prompt_split(prompt, has_image)
            if len(self._prompts) > PROMPT_CACHE_SIZE:
                self._prompts.popitem(last=False)
        return split

    def prepare(self, requests) -> None:
        self.runtime.prepare(requests)  # decode + preprocess the next batch's images off the main thread

    def generate(self, requests: Sequence[Request]) -> list[Prediction]:
        return self.runtime.generate(requests)

    def free_memory(self) -> None:
        self.runtime.free_memory()

    def identity(self) -> dict[str, Any]:
        if self._sha is None and self.checkpoint is not None and Path(self.checkpoint).exists():
            self._sha = sha256_of_path(self.checkpoint)
        cfg = self.model.cfg.to_json()
        cfg.update(self.identity_config())
        cfg["prefix_cache"] = self.runtime.prefix_cache
        return {"name": self.name, "args": dict(self.args), "checkpoint": self.checkpoint,
                "checkpoint_sha256": self._sha, "config": cfg}

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).replace("torch.", "")

    def close(self) -> None:
        if self.runtime is not None:
            self.runtime.close()
        self.runtime = None  # type: ignore[assignment]
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
