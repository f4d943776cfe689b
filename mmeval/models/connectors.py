"""VL-Mamba's MultiModal Connector (MMC) variants (arXiv 2403.13600, Sec. 3.2, Fig. 2).

With V_img [B, P, d_v] the vision tower's patch features and d the Mamba LM width:

* ``mlp`` (Fig. 2a, LLaVA-1.5's ``mlp2x_gelu``)::

      V_out = Linear_2(GELU(Linear_1(V_img)))            Linear_1: d_v -> d, Linear_2: d -> d

* ``vss-mlp`` (Fig. 2b; the paper's first MMC equation)::

      V_scan = VSS(V_img)                                 VSS on d_v channels
      V_out  = MLP(Norm(V_scan + V_img))                  MLP = Linear(d_v, d), GELU, Linear(d, d)

* ``vss-l2`` (Fig. 2c; the paper's second MMC equation)::

      V'_img = Linear_1(V_img)                            d_v -> d
      V_scan = VSS(GELU(V'_img))                          VSS on d channels
      V_out  = Linear_2(Norm(V_scan + V'_img))            d -> d

VSS is :class:`mmeval.models.vss.VSS` (2D scan, one selective-SSM layer, merge) with the
scan mechanism ``bsm`` or ``csm``. Paper-silent choices: ``Norm`` is LayerNorm (eps 1e-5, the norm
of VMamba's blocks; the paper only says "a norm layer"); the MLP of VSS-MLP is exactly LLaVA-1.5's
mlp2x_gelu; the VSS has no norm of its own before the scan (the equations show none).

Parameter names: ``mlp`` is an ``nn.Sequential`` so its state dict is ``0.weight, 0.bias, 2.weight,
2.bias``, the names of LLaVA's ``mm_projector`` (a LLaVA stage-1 ``mm_projector.bin`` loads
directly); the VSS variants use ``vss.*``, ``norm.*``, ``mlp.{0,2}.*`` / ``linear1.*``, ``linear2.*``.
"""

from __future__ import annotations

import torch.nn as nn
from torch import Tensor

from mmeval.models.vss import VSS

MMC_TYPES = ("mlp", "vss-mlp", "vss-l2")
# LLaVA-style `mm_projector_type` values written to config.json for each MMC
PROJECTOR_TYPES = {"mlp": "mlp2x_gelu", "vss-mlp": "vss_mlp", "vss-l2": "vss_l2"}


def mlp2x_gelu(d_in: int, d_out: int, device=None, dtype=None) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out, device=device, dtype=dtype), nn.GELU(),
                         nn.Linear(d_out, d_out, device=device, dtype=dtype))


class VSSMLPConnector(nn.Module):
    """V_out = MLP(Norm(VSS(V_img) + V_img))."""

    def __init__(self, vision_dim: int, d_model: int, scan: str = "bsm", vss_kwargs: dict | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.vss = VSS(vision_dim, scan_mode=scan, device=device, dtype=dtype, **(vss_kwargs or {}))
        self.norm = nn.LayerNorm(vision_dim, device=device, dtype=dtype)
        self.mlp = mlp2x_gelu(vision_dim, d_model, device=device, dtype=dtype)

    def forward(self, v_img: Tensor) -> Tensor:
        v_scan = self.vss(v_img)
        return self.mlp(self.norm(v_scan + v_img))


class VSSL2Connector(nn.Module):
    """V' = Linear_1(V_img);  V_out = Linear_2(Norm(VSS(GELU(V')) + V'))."""

    def __init__(self, vision_dim: int, d_model: int, scan: str = "bsm", vss_kwargs: dict | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.linear1 = nn.Linear(vision_dim, d_model, device=device, dtype=dtype)
        self.act = nn.GELU()
        self.vss = VSS(d_model, scan_mode=scan, device=device, dtype=dtype, **(vss_kwargs or {}))
        self.norm = nn.LayerNorm(d_model, device=device, dtype=dtype)
        self.linear2 = nn.Linear(d_model, d_model, device=device, dtype=dtype)

    def forward(self, v_img: Tensor) -> Tensor:
        v1 = self.linear1(v_img)
        v_scan = self.vss(self.act(v1))
        return self.linear2(self.norm(v_scan + v1))


def build_connector(mmc: str, vision_dim: int, d_model: int, scan: str = "bsm",
                    vss_kwargs: dict | None = None, device=None, dtype=None) -> nn.Module:
    """The MMC named ``mmc`` (mlp | vss-mlp | vss-l2) mapping [B, P, vision_dim] -> [B, P, d_model]."""
    if mmc == "mlp":
        return mlp2x_gelu(vision_dim, d_model, device=device, dtype=dtype)
    if mmc == "vss-mlp":
        return VSSMLPConnector(vision_dim, d_model, scan, vss_kwargs, device=device, dtype=dtype)
    if mmc == "vss-l2":
        return VSSL2Connector(vision_dim, d_model, scan, vss_kwargs, device=device, dtype=dtype)
    raise ValueError(f"mmc must be one of {MMC_TYPES}, got {mmc!r}")
