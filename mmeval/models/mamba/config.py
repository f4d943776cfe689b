"""MambaConfig: the hyper-parameters of a Mamba-1 language model, read from either the
state-spaces (mamba_ssm) ``config.json`` or a transformers ``MambaConfig`` ``config.json``."""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any

# ssm_cfg keys of mamba_ssm's Mamba(...) that map one-to-one to our fields
_SSM_KEYS = ("d_state", "d_conv", "expand", "dt_rank", "dt_min", "dt_max", "dt_init",
             "dt_scale", "dt_init_floor", "conv_bias", "bias")
# ssm_cfg keys that do not change the maths (ignored)
_SSM_IGNORED = ("use_fast_path", "layer_idx", "device", "dtype")


@dataclass
class MambaConfig:
    d_model: int = 2560
    n_layer: int = 64
    vocab_size: int = 50277
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    dt_rank: int | str = "auto"
    conv_bias: bool = True
    bias: bool = False
    rms_norm: bool = True
    norm_epsilon: float = 1e-5
    residual_in_fp32: bool = True
    fused_add_norm: bool = True  # informational: the maths is the same either way
    pad_vocab_size_multiple: int = 8
    tie_embeddings: bool = True
    d_intermediate: int = 0  # Mamba-1 LMs have no MLP
    # initialisation (mamba_ssm defaults)
    dt_min: float = 0.001
    dt_max: float = 0.1
    dt_init: str = "random"
    dt_scale: float = 1.0
    dt_init_floor: float = 1e-4
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.d_intermediate:
            raise ValueError("d_intermediate != 0 (a gated MLP per block) is not supported by this Mamba-1 engine")
        if self.dt_rank != "auto":
            self.dt_rank = int(self.dt_rank)

    # ------------------------------------------------------------------ derived sizes
    @property
    def d_inner(self) -> int:
        return int(self.expand * self.d_model)

    @property
    def dt_rank_value(self) -> int:
        return math.ceil(self.d_model / 16) if self.dt_rank == "auto" else int(self.dt_rank)

    @property
    def padded_vocab_size(self) -> int:
        m = max(1, int(self.pad_vocab_size_multiple))
        return ((self.vocab_size + m - 1) // m) * m

    # ------------------------------------------------------------------ (de)serialisation
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MambaConfig:
        """Build from a state-spaces config dict or a transformers Mamba config dict."""
        if "d_model" in d:
            return cls._from_state_spaces(d)
        if "hidden_size" in d or d.get("model_type") == "mamba":
            return cls._from_hf(d)
        raise ValueError("unrecognised Mamba config: expected 'd_model' (state-spaces) or 'hidden_size' (transformers)")

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> MambaConfig:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def _from_state_spaces(cls, d: dict[str, Any]) -> MambaConfig:
        ssm_cfg = dict(d.get("ssm_cfg") or {})
        layer = ssm_cfg.pop("layer", "Mamba1")
        if layer != "Mamba1":
            raise ValueError(f"only Mamba-1 checkpoints are supported, config has ssm_cfg.layer={layer!r}")
        if d.get("attn_layer_idx"):
            raise ValueError("hybrid checkpoints with attention layers (attn_layer_idx) are not supported")
        kw: dict[str, Any] = {}
        for k in _SSM_KEYS:
            if k in ssm_cfg:
                kw[k] = ssm_cfg.pop(k)
        for k in _SSM_IGNORED:
            ssm_cfg.pop(k, None)
        if ssm_cfg:
            raise ValueError(f"unsupported ssm_cfg keys in config: {sorted(ssm_cfg)}")
        for k in ("d_model", "n_layer", "vocab_size", "rms_norm", "residual_in_fp32", "fused_add_norm",
                  "pad_vocab_size_multiple", "tie_embeddings", "d_intermediate", "norm_epsilon"):
            if k in d:
                kw[k] = d[k]
        return cls(**kw)

    @classmethod
    def _from_hf(cls, d: dict[str, Any]) -> MambaConfig:
        hidden = int(d.get("hidden_size", 768))
        expand = d.get("expand", 2)
        if "intermediate_size" in d and int(d["intermediate_size"]) != int(expand * hidden):
            raise ValueError("intermediate_size != expand * hidden_size is not supported")
        mapping = {
            "num_hidden_layers": "n_layer", "state_size": "d_state", "conv_kernel": "d_conv",
            "time_step_rank": "dt_rank", "use_bias": "bias", "use_conv_bias": "conv_bias",
            "vocab_size": "vocab_size", "layer_norm_epsilon": "norm_epsilon",
            "residual_in_fp32": "residual_in_fp32", "tie_word_embeddings": "tie_embeddings",
            "time_step_min": "dt_min", "time_step_max": "dt_max", "time_step_scale": "dt_scale",
            "time_step_floor": "dt_init_floor", "time_step_init_scheme": "dt_init",
        }
        kw: dict[str, Any] = {"d_model": hidden, "expand": expand, "rms_norm": True}
        for src, dst in mapping.items():
            if src in d and d[src] is not None:
                kw[dst] = d[src]
        act = d.get("hidden_act", "silu")
        if act not in ("silu", "swish"):
            raise ValueError(f"hidden_act={act!r} is not supported (Mamba uses silu)")
        return cls(**kw)

    def to_state_spaces_dict(self) -> dict[str, Any]:
        """A config.json dict that mamba_ssm's own MambaConfig accepts."""
        ssm_cfg: dict[str, Any] = {"d_state": self.d_state, "d_conv": self.d_conv, "expand": self.expand}
        defaults = {f.name: f.default for f in dataclasses.fields(MambaConfig)}
        for k in ("dt_rank", "conv_bias", "bias", "dt_min", "dt_max", "dt_init", "dt_scale", "dt_init_floor"):
            if getattr(self, k) != defaults[k]:
                ssm_cfg[k] = getattr(self, k)
        out = {
            "d_model": self.d_model, "d_intermediate": 0, "n_layer": self.n_layer,
            "vocab_size": self.vocab_size, "ssm_cfg": ssm_cfg, "rms_norm": self.rms_norm,
            "residual_in_fp32": self.residual_in_fp32, "fused_add_norm": self.fused_add_norm,
            "pad_vocab_size_multiple": self.pad_vocab_size_multiple, "tie_embeddings": self.tie_embeddings,
        }
        if self.norm_epsilon != defaults["norm_epsilon"]:
            out["norm_epsilon"] = self.norm_epsilon  # not a mamba_ssm field: only written when non-default
        return out
