"""Cobra's vision towers, built from timm definitions: the fused DINOv2 + SigLIP backbone
(`dinosiglip-vit-so-384px`) and the single SigLIP tower of the `cobra-siglip+3b` ablation.

As in Cobra (`cobra/models/backbones/vision/dinosiglip_vit.py`, inherited from prismatic-vlms):

* each tower is `timm.create_model(name, num_classes=0, img_size=384)`;
* its features are the patch tokens of the *second-to-last* block (timm's
  `get_intermediate_layers(n={depth - 2})`: no final norm, prefix tokens (CLS + 4 registers for
  DINOv2; none for SigLIP) dropped) -- 27 x 27 = 729 patches per tower at 384 px;
* the fused backbone concatenates them along the feature dim, DINO first:
  [B, 729, 1024 + 1152 = 2176];
* each tower gets its own image transform from timm's data config (DINOv2: ImageNet mean/std;
  SigLIP: 0.5/0.5; both bicubic) at 384 px, altered by the run's `image_resize_strategy`:
  `resize-naive` (the released cobra+3b: squash to 384 x 384), `resize-crop` (timm's default,
  with SigLIP's 384/0.9 resize brought back to 384) or `letterbox` (pad to square with the mean
  colour, then the default transform).

Weights never come from the network: `pretrained=False` builds random towers; real weights are
read from local timm/HF files through timm's own loader (`pretrained_cfg_overlay=dict(file=...)`),
which also resamples DINOv2's 518-px position embeddings to 384 px as timm did for Cobra.
"""

from __future__ import annotations

import contextlib
import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from mmeval.errors import CheckpointError

# vision backbone id -> {tower key: timm model name}; key order = concatenation order
VISION_BACKBONES: dict[str, dict[str, str]] = {
    "dinosiglip-vit-so-384px": {
        "dino": "vit_large_patch14_reg4_dinov2.lvd142m",
        "siglip": "vit_so400m_patch14_siglip_384",
    },
    "siglip-vit-so400m-384px": {"siglip": "vit_so400m_patch14_siglip_384"},
}
RESIZE_STRATEGIES = ("resize-naive", "resize-crop", "letterbox")

# Tiny towers for CPU tests: same timm architectures (registers, LayerScale, SigLIP's MAP head),
# small widths; the two towers get different widths so a concatenation-order bug shows.
TINY_TOWER_OVERRIDES: dict[str, dict[str, Any]] = {
    "dino": dict(embed_dim=32, depth=3, num_heads=2, mlp_ratio=2.0),
    "siglip": dict(embed_dim=48, depth=3, num_heads=2, mlp_ratio=2.0),
}
TINY_IMAGE_SIZE = 42  # 3 x 3 patches of 14 px


def _timm():
    import timm  # imported lazily: only models that use timm towers pay for it

    return timm


class TimmTower(nn.Module):
    """One timm ViT; `forward` returns the patch tokens of block `feature_layer` (default depth-2)."""

    def __init__(self, model: nn.Module, feature_layer: int | None = None):
        super().__init__()
        self.model = model
        depth = len(model.blocks)
        self.feature_layer = depth - 2 if feature_layer is None else feature_layer
        if not 0 <= self.feature_layer < depth:
            raise ValueError(f"feature layer {self.feature_layer} out of range for a {depth}-block ViT")

    @property
    def embed_dim(self) -> int:
        return self.model.embed_dim

    @property
    def num_patches(self) -> int:
        return self.model.patch_embed.num_patches

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same as timm's get_intermediate_layers(x, n=[feature_layer]) but stops after that block.
        m = self.model
        x = m.patch_embed(x)
        x = m._pos_embed(x)
        x = m.patch_drop(x)
        x = m.norm_pre(x)
        for blk in m.blocks[: self.feature_layer + 1]:
            x = blk(x)
        return x[:, m.num_prefix_tokens:]


def create_timm_vit(name: str, image_size: int, tiny: bool = False, weights_file: str | None = None,
                    overrides: Mapping[str, Any] | None = None, key: str = "") -> nn.Module:
    """timm ViT `name` at `image_size`, headless. `weights_file`: a local .safetensors/.bin/.pth
    read by timm's loader (with its checkpoint filter, e.g. position-embedding resampling)."""
    timm = _timm()
    kw: dict[str, Any] = dict(num_classes=0, img_size=image_size)
    if tiny:
        kw.update(TINY_TOWER_OVERRIDES.get(key, TINY_TOWER_OVERRIDES["dino"]))
    kw.update(overrides or {})
    if weights_file is None:
        return timm.create_model(name, pretrained=False, **kw)
    if not Path(weights_file).is_file():
        raise CheckpointError(f"vision tower {name}: weights file not found: {weights_file}")
    try:
        return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights_file)), **kw)
    except RuntimeError as exc:  # key / shape mismatch from load_state_dict
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"vision tower {name}: {weights_file} does not match the model: {first}") from exc


def find_tower_weights(directory: str | os.PathLike, key: str, timm_name: str) -> str:
    """The weights file of tower `key` (timm model `timm_name`) under `directory`.

    Accepted layouts (first match wins): `<dir>/<key>.safetensors`, `<dir>/<timm name>.safetensors`,
    `<dir>/<key>/`, `<dir>/<timm name>/`, `<dir>/<architecture>/` or `<dir>/<timm name>.<tag>/` holding a
    `model.safetensors` / `pytorch_model.bin` (an HF `timm/...` snapshot), or an HF cache
    `<dir>/models--timm--<repo>/snapshots/*/`; `<dir>` itself may be such a snapshot when only one
    tower is asked for.
    """
    timm = _timm()
    d = Path(directory)
    names = [timm_name]
    try:
        hub_id = timm.models.get_pretrained_cfg(timm_name).hf_hub_id  # e.g. timm/vit_so400m_patch14_siglip_384.webli
        if hub_id:
            names.append(hub_id.split("/")[-1])
    except Exception:  # pragma: no cover - unknown to this timm version
        pass
    arch = timm_name.split(".")[0]
    names.append(arch)
    files = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
    candidates: list[Path] = []
    for stem in [key, *names]:
        for ext in (".safetensors", ".bin", ".pth"):
            candidates.append(d / f"{stem}{ext}")
    for sub in [key, *names]:
        for f in files:
            candidates.append(d / sub / f)
    for n in names:
        for snap in sorted(glob.glob(str(d / f"models--timm--{n}" / "snapshots" / "*"))):
            for f in files:
                candidates.append(Path(snap) / f)
    for c in candidates:
        if c.is_file():
            return str(c)
    raise CheckpointError(f"vision weights for {key} ({timm_name}) not found under {d}: expected e.g. "
                          f"{d / (key + '.safetensors')} or {d / names[-1] / 'model.safetensors'}")


# ---- image transforms ------------------------------------------------------------------------
@dataclass
class LetterboxPad:
    """Pad a PIL image to a square with a symmetric border of `fill` (Cobra's letterbox)."""

    fill: tuple[int, int, int]

    def __call__(self, image):
        import torchvision.transforms.functional as TVF

        w, h = image.size
        side = max(w, h)
        dx, dy = int((side - w) / 2), int((side - h) / 2)
        return TVF.pad(image, [dx, dy, dx, dy], fill=self.fill, padding_mode="constant")


def tower_data_config(model: nn.Module, image_size: int) -> dict[str, Any]:
    timm = _timm()
    cfg = dict(timm.data.resolve_model_data_config(model))
    cfg["input_size"] = (3, image_size, image_size)
    return cfg


def build_tower_transform(model: nn.Module, image_size: int, strategy: str):
    """Cobra's transform for one tower: timm's eval transform at `image_size`, changed by `strategy`."""
    from torchvision.transforms import Compose, Resize

    timm = _timm()
    if strategy not in RESIZE_STRATEGIES:
        raise ValueError(f"unknown image_resize_strategy {strategy!r}; known: {', '.join(RESIZE_STRATEGIES)}")
    cfg = tower_data_config(model, image_size)
    default = timm.data.create_transform(**cfg, is_training=False)
    if not isinstance(default, Compose) or not isinstance(default.transforms[0], Resize):
        raise ValueError(f"unexpected timm eval transform: {default}")
    resize, rest = default.transforms[0], list(default.transforms[1:])
    # SigLIP's data config has crop_pct 0.9: timm resizes to 384/0.9 then crops; Cobra resizes to 384.
    default = Compose([Resize(image_size, interpolation=resize.interpolation), *rest])
    if strategy == "resize-crop":
        return default
    if strategy == "resize-naive":
        return Compose([Resize((image_size, image_size), interpolation=resize.interpolation), *rest])
    fill = tuple(int(x * 255) for x in cfg["mean"])
    return Compose([LetterboxPad(fill), *default.transforms])


@dataclass
class CobraImageTransform:
    """PIL image -> {tower key: [3, H, W]} (fused towers) or a [3, H, W] tensor (one tower)."""

    transforms: dict[str, Any] = field(default_factory=dict)

    def __call__(self, image) -> Any:
        image = image.convert("RGB") if getattr(image, "mode", "RGB") != "RGB" else image
        out = {k: t(image) for k, t in self.transforms.items()}
        return out if len(out) > 1 else next(iter(out.values()))


# ---- the backbone ----------------------------------------------------------------------------
class VisionBackbone(nn.Module):
    """One or more timm towers whose second-to-last-block patches are concatenated (feature dim)."""

    def __init__(self, vision_backbone_id: str = "dinosiglip-vit-so-384px", image_size: int = 384,
                 image_resize_strategy: str = "resize-naive", tiny: bool = False,
                 weights: str | os.PathLike | Mapping[str, str] | None = None,
                 overrides: Mapping[str, Mapping[str, Any]] | None = None, device=None):
        super().__init__()
        if vision_backbone_id not in VISION_BACKBONES:
            raise ValueError(f"unknown vision backbone {vision_backbone_id!r}; known: {', '.join(VISION_BACKBONES)}")
        if image_resize_strategy not in RESIZE_STRATEGIES:
            raise ValueError(f"unknown image_resize_strategy {image_resize_strategy!r}; "
                             f"known: {', '.join(RESIZE_STRATEGIES)}")
        self.identifier, self.image_size = vision_backbone_id, image_size
        self.image_resize_strategy = image_resize_strategy
        towers = VISION_BACKBONES[vision_backbone_id]
        self.towers = nn.ModuleDict()
        for key, name in towers.items():
            if weights is None:
                wfile = None
            elif isinstance(weights, Mapping):
                wfile = weights.get(key)
            else:
                wfile = find_tower_weights(weights, key, name)
            # towers are created (and initialised) directly on `device`; transforms stay on the CPU
            with torch.device(device) if device is not None else contextlib.nullcontext():
                model = create_timm_vit(name, image_size, tiny=tiny, weights_file=wfile,
                                        overrides=(overrides or {}).get(key), key=key)
            model.eval()
            self.towers[key] = TimmTower(model)
        n = {t.num_patches for t in self.towers.values()}
        if len(n) != 1:
            raise ValueError(f"towers disagree on the number of patches: {n}")
        self.image_transform = CobraImageTransform(
            {k: build_tower_transform(t.model, image_size, image_resize_strategy) for k, t in self.towers.items()})

    @property
    def embed_dim(self) -> int:
        return sum(t.embed_dim for t in self.towers.values())

    @property
    def num_patches(self) -> int:
        return next(iter(self.towers.values())).num_patches

    def forward(self, pixel_values: torch.Tensor | Mapping[str, torch.Tensor]) -> torch.Tensor:
        keys = list(self.towers)
        if not isinstance(pixel_values, Mapping):
            if len(keys) != 1:
                raise ValueError(f"{self.identifier} needs a dict of pixel values with keys {keys}")
            pixel_values = {keys[0]: pixel_values}
        feats = []
        for k in keys:
            tower = self.towers[k]
            p = tower.model.patch_embed.proj.weight
            feats.append(tower(pixel_values[k].to(p.device, p.dtype)))
        return feats[0] if len(feats) == 1 else torch.cat(feats, dim=2)


def save_vision_weights(backbone: VisionBackbone, directory: str | os.PathLike) -> Path:
    """Write each tower's timm state dict as `<dir>/<key>.safetensors` (a layout `vision=DIR` reads)."""
    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for key, tower in backbone.towers.items():
        sd = {k: v.detach().to("cpu").contiguous() for k, v in tower.model.state_dict().items()}
        save_file(sd, str(d / f"{key}.safetensors"))
    return d
