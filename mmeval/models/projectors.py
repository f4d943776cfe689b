"""Vision-to-LLM projectors of Cobra (h-zhao1997/cobra, `cobra/util/nn_utils.py`).

Each projector keeps its layers in an `nn.Sequential` named `projector`, so the state-dict keys
are exactly those of Cobra's released checkpoints (`projector.0.weight`, `projector.2.bias`, ...):

* ``linear``          Linear(vision, llm)  (keys projector.weight / projector.bias)
* ``gelu-mlp``        Linear(vision, llm), GELU, Linear(llm, llm)
* ``fused-gelu-mlp``  Linear(fused, 4*fused), GELU, Linear(4*fused, llm), GELU, Linear(llm, llm)
                      (the released cobra+3b: fused = 1024 + 1152 = 2176 -> 8704 -> 2560 -> 2560)
* ``ldpnet``          gelu-mlp, then average-pool the patch grid to `ldp_grid` x `ldp_grid`, then a
                      residual depthwise 3x3 conv (LDPv2 from MobileVLM V2)
* ``fused-ldpnet``    Linear(fused, 4*fused), GELU, Linear(4*fused, llm), pool, residual depthwise conv

Arch specifiers may carry Cobra's stage prefix (``no-align+fused-gelu-mlp``).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

PROJECTOR_TYPES = ("linear", "gelu-mlp", "fused-gelu-mlp", "ldpnet", "fused-ldpnet")


def projector_type(arch_specifier: str) -> str:
    """`no-align+fused-gelu-mlp` -> `fused-gelu-mlp` (Cobra matches on the suffix, longest first)."""
    spec = arch_specifier.strip()
    if spec == "linear" or spec.endswith("+linear"):
        return "linear"
    for kind in ("fused-gelu-mlp", "gelu-mlp", "fused-ldpnet", "ldpnet"):
        if spec == kind or spec.endswith("+" + kind):
            return kind
    raise ValueError(f"unknown projector {arch_specifier!r}; known: {', '.join(PROJECTOR_TYPES)} "
                     "(optionally prefixed, e.g. no-align+fused-gelu-mlp)")


def _grid_side(num_tokens: int) -> int:
    side = int(math.isqrt(num_tokens))
    if side * side != num_tokens:
        raise ValueError(f"LDP projector needs a square patch grid, got {num_tokens} tokens")
    return side


class TokenDownLayer(nn.Module):
    """[B, N, C] tokens on a square grid -> adaptive average pool to `shape` -> [B, h*w, C]."""

    def __init__(self, shape: tuple[int, int]) -> None:
        super().__init__()
        self.dwn = nn.Sequential(nn.AdaptiveAvgPool2d(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        side = _grid_side(n)
        grid = x.transpose(1, 2).reshape(b, c, side, side)
        return self.dwn(grid).flatten(2).transpose(1, 2)


class PosInjectLayer(nn.Module):
    """Residual depthwise 3x3 convolution over the token grid (positional-encoding generator)."""

    def __init__(self, in_dim: int, out_dim: int, stride: int = 1) -> None:
        super().__init__()
        self.peg = nn.Sequential(nn.Conv2d(in_dim, out_dim, 3, stride, 1, bias=True, groups=out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        side = _grid_side(n)
        grid = x.transpose(1, 2).reshape(b, c, side, side)
        return (self.peg(grid) + grid).flatten(2).transpose(1, 2)


class _Projector(nn.Module):
    kind = ""

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.projector(patches)

    def num_output_tokens(self, num_patches: int) -> int:
        return num_patches


class LinearProjector(_Projector):
    kind = "linear"

    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.projector = nn.Linear(vision_dim, llm_dim, bias=True)  # keys projector.weight/bias, as Cobra's


class MLPProjector(_Projector):
    kind = "gelu-mlp"

    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.projector = nn.Sequential(
            nn.Linear(vision_dim, llm_dim, bias=True), nn.GELU(), nn.Linear(llm_dim, llm_dim, bias=True))


class FusedMLPProjector(_Projector):
    kind = "fused-gelu-mlp"

    def __init__(self, fused_vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        hidden = 4 * fused_vision_dim
        self.projector = nn.Sequential(
            nn.Linear(fused_vision_dim, hidden, bias=True), nn.GELU(),
            nn.Linear(hidden, llm_dim, bias=True), nn.GELU(),
            nn.Linear(llm_dim, llm_dim, bias=True))


class LDPProjector(_Projector):
    kind = "ldpnet"

    def __init__(self, vision_dim: int, llm_dim: int, ldp_grid: int = 14) -> None:
        super().__init__()
        self.ldp_grid = ldp_grid
        self.projector = nn.Sequential(
            nn.Linear(vision_dim, llm_dim, bias=True), nn.GELU(), nn.Linear(llm_dim, llm_dim, bias=True),
            TokenDownLayer((ldp_grid, ldp_grid)), PosInjectLayer(llm_dim, llm_dim, stride=1))

    def num_output_tokens(self, num_patches: int) -> int:
        return self.ldp_grid * self.ldp_grid


class FusedLDPProjector(_Projector):
    kind = "fused-ldpnet"

    def __init__(self, fused_vision_dim: int, llm_dim: int, ldp_grid: int = 14) -> None:
        super().__init__()
        self.ldp_grid = ldp_grid
        hidden = 4 * fused_vision_dim
        self.projector = nn.Sequential(
            nn.Linear(fused_vision_dim, hidden, bias=True), nn.GELU(), nn.Linear(hidden, llm_dim, bias=True),
            TokenDownLayer((ldp_grid, ldp_grid)), PosInjectLayer(llm_dim, llm_dim, stride=1))

    def num_output_tokens(self, num_patches: int) -> int:
        return self.ldp_grid * self.ldp_grid


_CLASSES = {c.kind: c for c in (LinearProjector, MLPProjector, FusedMLPProjector, LDPProjector, FusedLDPProjector)}


def build_projector(arch_specifier: str, vision_dim: int, llm_dim: int, ldp_grid: int = 14,
                    seed: int | None = None, device=None, dtype=None) -> _Projector:
    """The projector named by `arch_specifier`. `seed`: Cobra seeds the projector's init with the
    vision embed dim (`torch.manual_seed(vision_backbone.embed_dim)`); done here without touching
    the caller's global RNG."""
    kind = projector_type(arch_specifier)
    cls = _CLASSES[kind]
    kwargs = {"ldp_grid": ldp_grid} if kind.endswith("ldpnet") else {}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        proj = cls(vision_dim, llm_dim, **kwargs)
    if device is not None or dtype is not None:
        proj = proj.to(device=device, dtype=dtype)
    return proj
