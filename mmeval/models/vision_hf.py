"""Vision towers for VL-Mamba, LLaVA-style, on transformers' CLIPVisionModel / SiglipVisionModel.

* ``clip``: CLIP-ViT-L/14-336 (openai/clip-vit-large-patch14-336), 24x24 = 576 patch tokens.
* ``siglip``: SigLIP-SO400M/14-384 (google/siglip-so400m-patch14-384), 27x27 = 729 patch tokens.

Features are LLaVA's (llava/model/multimodal_encoder/clip_encoder.py): the hidden states of the
second-to-last encoder layer (``select_layer=-2``), ``select_feature="patch"`` (CLIP's class token
dropped; SigLIP has none). Only the layers that feed the selected one are run; the result equals
``model(pixel_values, output_hidden_states=True).hidden_states[-2]`` (tested).

Towers are built from the config dicts below (no download); ``tiny`` variants serve the tests.
Weights come from a local folder holding ``config.json`` + ``*.safetensors`` (or
``pytorch_model.bin``) as published (a full CLIPModel/SiglipModel checkpoint or a vision-only one);
a hub id is resolved from the local Hugging Face cache, or downloaded when online.

Preprocessing (PIL + torch) follows LLaVA-1.5 (llava/mm_utils.py ``expand2square`` +
the towers' image processors as published): with ``image_aspect_ratio="pad"`` the image is
first padded to a square with the processor's mean colour (``int(m*255)`` per channel), then

* clip: bicubic resize of the shortest edge to 336, centre crop 336x336, CLIP mean/std;
* siglip: bicubic resize to 384x384, mean = std = 0.5.

This matches transformers' PIL-backed CLIPImageProcessor / SiglipImageProcessor (the processors
LLaVA used) to float precision (tested).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmeval.errors import CheckpointError

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# openai/clip-vit-large-patch14-336 config.json, vision_config
CLIP_VIT_L_14_336: dict[str, Any] = {
    "model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
    "num_hidden_layers": 24, "num_attention_heads": 16, "num_channels": 3, "image_size": 336,
    "patch_size": 14, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0,
    "projection_dim": 768, "initializer_range": 0.02, "initializer_factor": 1.0,
}
# google/siglip-so400m-patch14-384 config.json, vision_config
SIGLIP_SO400M_14_384: dict[str, Any] = {
    "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
    "num_hidden_layers": 27, "num_attention_heads": 16, "num_channels": 3, "image_size": 384,
    "patch_size": 14, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "attention_dropout": 0.0,
}
TINY_CLIP: dict[str, Any] = dict(CLIP_VIT_L_14_336, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                 num_attention_heads=4, image_size=28, patch_size=7, projection_dim=16)
TINY_SIGLIP: dict[str, Any] = dict(SIGLIP_SO400M_14_384, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                   num_attention_heads=4, image_size=35, patch_size=7)

ENCODERS = ("clip", "siglip")
HUB_IDS = {"clip": "openai/clip-vit-large-patch14-336", "siglip": "google/siglip-so400m-patch14-384"}


def vision_config_dict(encoder: str, tiny: bool = False) -> dict[str, Any]:
    if encoder == "clip":
        return copy.deepcopy(TINY_CLIP if tiny else CLIP_VIT_L_14_336)
    if encoder == "siglip":
        return copy.deepcopy(TINY_SIGLIP if tiny else SIGLIP_SO400M_14_384)
    raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")


# ----------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class ImagePreprocess:
    """PIL image -> [3, S, S] float tensor, as LLaVA-1.5 feeds the tower."""

    kind: str  # "clip" (shortest edge + centre crop) | "siglip" (square resize)
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pad_to_square: bool = True  # LLaVA-1.5 image_aspect_ratio="pad"

    @classmethod
    def for_encoder(cls, encoder: str, image_size: int, image_aspect_ratio: str = "pad") -> ImagePreprocess:
        pad = image_aspect_ratio == "pad"
        if image_aspect_ratio not in ("pad", "none", "crop"):
            raise ValueError(f"image_aspect_ratio must be 'pad' or 'none', got {image_aspect_ratio!r}")
        if encoder == "clip":
            return cls("clip", image_size, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, pad)
        if encoder == "siglip":
            return cls("siglip", image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), pad)
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")

    @property
    def background(self) -> tuple[int, int, int]:
        return tuple(int(m * 255) for m in self.mean)  # type: ignore[return-value]

    def expand2square(self, img):
        from PIL import Image

        w, h = img.size
        if w == h:
            return img
        side = max(w, h)
        out = Image.new(img.mode, (side, side), self.background)
        out.paste(img, ((side - w) // 2, (side - h) // 2))
        return out

    def __call__(self, img) -> Tensor:
        from PIL import Image

        img = img.convert("RGB")
        if self.pad_to_square:
            img = self.expand2square(img)
        S = self.image_size
        if self.kind == "clip":
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = S, int(S * long / short)
            size = (new_short, new_long) if w <= h else (new_long, new_short)
            if img.size != size:
                img = img.resize(size, resample=Image.BICUBIC)
            w, h = img.size
            top, left = (h - S) // 2, (w - S) // 2
            if (w, h) != (S, S):
                arr = np.asarray(img)[max(top, 0): max(top, 0) + S, max(left, 0): max(left, 0) + S]
            else:
                arr = np.asarray(img)
        else:
            if img.size != (S, S):
                img = img.resize((S, S), resample=Image.BICUBIC)
            arr = np.asarray(img)
        x = torch.from_numpy(np.array(arr, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return (x - mean) / std


# ----------------------------------------------------------------------------- the tower
def _hf_config(cfg: dict[str, Any]):
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    kw = {k: v for k, v in cfg.items() if k != "model_type"}
    if cfg["model_type"] == "clip_vision_model":
        return CLIPVisionConfig(**kw)
    if cfg["model_type"] == "siglip_vision_model":
        kw.setdefault("vision_use_head", False)  # LLaVA-style features never reach the pooling head
        return SiglipVisionConfig(**kw)
    raise ValueError(f"unsupported vision tower model_type {cfg['model_type']!r}")


class VisionTower(nn.Module):
    """[N, 3, S, S] -> [N, P, hidden] patch features of layer ``select_layer`` (LLaVA-style)."""

    def __init__(self, config: dict[str, Any], select_layer: int = -2, select_feature: str = "patch",
                 device=None, dtype=None):
        super().__init__()
        from transformers import CLIPVisionModel, SiglipVisionModel

        self.config_dict = dict(config)
        self.kind = "clip" if config["model_type"] == "clip_vision_model" else "siglip"
        if select_feature not in ("patch", "cls_patch"):
            raise ValueError(f"select_feature must be 'patch' or 'cls_patch', got {select_feature!r}")
        if self.kind == "siglip" and select_feature != "patch":
            raise ValueError("SigLIP has no class token: select_feature must be 'patch'")
        self.select_layer, self.select_feature = select_layer, select_feature
        hf_cfg = _hf_config(config)
        hf_cfg._attn_implementation = "sdpa"
        cls = CLIPVisionModel if self.kind == "clip" else SiglipVisionModel
        # built and initialised on `device` (on a GPU in well under a second; SigLIP-SO400M's 400M
        # weights cost the CPU ~30 s to initialise and then a copy), then cast to `dtype` there
        with torch.device(device) if device is not None else contextlib.nullcontext():
            self.model = cls(hf_cfg)
        if dtype is not None:
            self.model.to(dtype=dtype)
        self.source: str | None = None  # where pretrained weights came from, if any
        n = config["num_hidden_layers"]
        self._n_run = n + 1 + select_layer if select_layer < 0 else select_layer  # layers to run
        if not 0 <= self._n_run <= n:
            raise ValueError(f"select_layer {select_layer} out of range for {n} layers")

    @property
    def hidden_size(self) -> int:
        return int(self.config_dict["hidden_size"])

    @property
    def image_size(self) -> int:
        return int(self.config_dict["image_size"])

    @property
    def num_patches(self) -> int:
        return (self.image_size // int(self.config_dict["patch_size"])) ** 2

    def _inner(self):
        return getattr(self.model, "vision_model", self.model)  # transformers 4.x nests the tower

    def forward(self, pixel_values: Tensor) -> Tensor:
        m = self._inner()
        dtype = next(self.model.parameters()).dtype
        h = m.embeddings(pixel_values.to(dtype))
        if self.kind == "clip":
            h = m.pre_layrnorm(h)
        for layer in m.encoder.layers[: self._n_run]:
            try:
                out = layer(h, attention_mask=None)
            except TypeError:  # transformers 4.x CLIP layers also take causal_attention_mask
                out = layer(h, attention_mask=None, causal_attention_mask=None)
            h = out[0] if isinstance(out, tuple) else out
        if self.kind == "clip" and self.select_feature == "patch":
            h = h[:, 1:]
        return h

    # ---- weights in the published layout ------------------------------------------------
    def published_state_dict(self) -> dict[str, Tensor]:
        """State dict in the published naming ``vision_model.<...>`` (whatever transformers nests)."""
        out = {}
        for k, v in self.model.state_dict().items():
            k = k[len("vision_model."):] if k.startswith("vision_model.") else k
            out["vision_model." + k] = v
        return out

    def load_published_state_dict(self, sd: dict[str, Tensor], source: str, strict_unused: bool = False):
        """Load ``vision_model.*`` weights (a full CLIP/SigLIP checkpoint's text tower, logit scale
        and SigLIP pooling head are not part of this tower and are skipped)."""
        own = self.model.state_dict()
        nested = any(k.startswith("vision_model.") for k in own)
        mapped, unused = {}, []
        for k, v in sd.items():
            if not k.startswith("vision_model."):
                unused.append(k)
                continue
            inner = k[len("vision_model."):]
            mk = k if nested else inner
            if mk in own:
                mapped[mk] = v
            elif inner.startswith("head.") or inner.startswith("post_layernorm."):
                continue  # parts LLaVA-style features never use (also absent when vision_use_head=False)
            else:
                unused.append(k)
        missing = [k for k in own if k not in mapped and not k.endswith("position_ids")]
        if missing or (strict_unused and unused):
            parts = []
            if missing:
                parts.append(f"missing {_short(missing)}")
            if strict_unused and unused:
                parts.append(f"unexpected {_short(unused)}")
            raise CheckpointError(f"vision tower weights in {source} do not match a {self.kind} tower: "
                                  + "; ".join(parts))
        for k, v in mapped.items():
            if tuple(own[k].shape) != tuple(v.shape):
                raise CheckpointError(f"vision tower weights in {source}: {k} has shape {tuple(v.shape)}, "
                                      f"the tower expects {tuple(own[k].shape)}")
        self.model.load_state_dict(mapped, strict=False)
        self.source = source


def _short(keys: list[str], n: int = 6) -> str:
    keys = sorted(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# ----------------------------------------------------------------------------- loading
def read_state_dict(folder: Path) -> dict[str, Tensor]:
    """All tensors of a checkpoint folder: *.safetensors (sharded or not), else pytorch_model*.bin."""
    from safetensors.torch import load_file

    st = sorted(folder.glob("*.safetensors"))
    sd: dict[str, Tensor] = {}
    if st:
        for f in st:
            sd.update(load_file(str(f)))
        return sd
    bins = sorted(folder.glob("pytorch_model*.bin"))
    for f in bins:
        sd.update(torch.load(str(f), map_location="cpu", weights_only=True))
    return sd


def resolve_folder(path_or_id: str, what: str, patterns: tuple[str, ...] = ("*.json", "*.safetensors")) -> Path:
    """A local checkpoint folder for a path or hub id: the path itself, the local HF cache, or a
    download when online; otherwise a one-line CheckpointError saying where to put the files."""
    p = Path(os.path.expanduser(path_or_id))
    if p.is_dir():
        return p
    if p.exists() or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") != 1:
        raise CheckpointError(f"{what}: no checkpoint folder at {path_or_id}")
    from mmeval.models.mamba.checkpoint import default_local_dir

    local = default_local_dir(path_or_id)
    if (local / "config.json").is_file():
        return local
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover
        snapshot_download = None
    if snapshot_download is not None:
        for local_only in (True, False):
            if not local_only and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
                break
            try:
                return Path(snapshot_download(path_or_id, allow_patterns=list(patterns), local_files_only=local_only))
            except Exception:
                continue
    raise CheckpointError(
        f"{what}: {path_or_id} is not a local folder, not in {local} and cannot be fetched from the Hugging Face "
        f"hub (offline?); put its config.json + *.safetensors in {local} or pass their folder instead")


def load_vision_tower(path_or_id: str, select_layer: int = -2, select_feature: str = "patch",
                      device=None, dtype=None, expect: str | None = None) -> VisionTower:
    """A tower built from a published folder's config.json and loaded with its weights."""
    folder = resolve_folder(path_or_id, "vision tower")
    cfg_file = folder / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(f"vision tower: {folder} has no config.json")
    raw = json.loads(cfg_file.read_text())
    mt = raw.get("model_type")
    if mt in ("clip", "siglip"):
        vc = dict(raw.get("vision_config") or {})
        mt = f"{mt}_vision_model"
    else:
        vc = dict(raw)
    if mt not in ("clip_vision_model", "siglip_vision_model"):
        raise CheckpointError(f"vision tower: {cfg_file} is not a CLIP or SigLIP config (model_type={mt!r})")
    base = CLIP_VIT_L_14_336 if mt == "clip_vision_model" else SIGLIP_SO400M_14_384
    cfg = {k: vc.get(k, v) for k, v in base.items()}
    cfg["model_type"] = mt
    kind = "clip" if mt == "clip_vision_model" else "siglip"
    if expect is not None and expect != kind:
        raise CheckpointError(f"vision tower: {folder} holds a {kind} tower, the model needs {expect}")
    sd = read_state_dict(folder)
    if not sd:
        raise CheckpointError(f"vision tower: {folder} has no *.safetensors or pytorch_model.bin")
    if not any(k.startswith("vision_model.") for k in sd):  # a bare vision-model state dict
        sd = {"vision_model." + k: v for k, v in sd.items()}
    tower = VisionTower(cfg, select_layer, select_feature, device=device, dtype=dtype)
    tower.load_published_state_dict(sd, str(folder))
    tower.source = path_or_id
    return tower
