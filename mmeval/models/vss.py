"""2D Vision Selective Scan (VSS) for VL-Mamba's MultiModal Connector.

VL-Mamba (Qiao et al., arXiv 2403.13600, Sec. 3.2 "MultiModal Connector") defines the VSS module
as "a 2D vision scan mechanism and one mamba layer": the patch grid is unfolded into 1D sequences
along several routes, each sequence is scanned by a selective SSM, the results are put back into
the patch order and merged. Two scan mechanisms are studied:

* BSM, Bidirectional-Scan: the row-major patch sequence forward and backward (2 routes);
* CSM, Cross-Scan (VMamba's cross-scan): row-major and column-major, each forward and
  backward (4 routes).

The paper gives no code for the mamba layer; we follow VMamba's SS2D (MzeroMiko/VMamba, the
repository VL-Mamba's README credits): ``in_proj`` (x and gate z), depthwise 3x3 ``conv2d`` + SiLU
on the grid, per-route ``x_proj`` / ``dt_proj`` / ``A_log`` / ``D`` (stacked along a leading route
axis), one grouped selective scan over all routes (the engine's ``selective_scan``, so it runs on
the CUDA kernel or the PyTorch reference), inverse reordering, sum over routes, ``out_norm``
(LayerNorm), gating by SiLU(z), ``out_proj``.

The scan orders are pure functions: ``scan_orders(h, w, mode)`` returns a [K, h*w] LongTensor whose
row k lists, for each step t of route k, the row-major index (r*w + c) of the patch read at t;
``scan`` gathers with it and ``merge`` scatters back (the inverse permutation) and sums.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmeval.models.mamba.fp32_params import KeepsFP32Params

SCAN_MODES = ("bsm", "csm")


def _selective_scan():
    try:
        from mmeval.models.mamba import selective_scan
    except ImportError:  # package __init__ not there: the op itself
        from mmeval.models.mamba.ops import selective_scan
    return selective_scan


def scan_orders(h: int, w: int, mode: str) -> Tensor:
    """Index permutations of the row-major patch grid, one row per scan route.

    bsm: [row-major, row-major reversed]
    csm: [row-major, column-major, row-major reversed, column-major reversed] (VMamba's order)
    """
    if mode not in SCAN_MODES:
        raise ValueError(f"scan mode must be one of {SCAN_MODES}, got {mode!r}")
    row = torch.arange(h * w, dtype=torch.long)
    if mode == "bsm":
        return torch.stack([row, row.flip(0)])
    col = row.view(h, w).t().reshape(-1)  # (r, c) read column by column
    return torch.stack([row, col, row.flip(0), col.flip(0)])


def inverse_orders(orders: Tensor) -> Tensor:
    """Per route, the position in the scanned sequence of each row-major patch."""
    return torch.argsort(orders, dim=-1)


def scan(x: Tensor, orders: Tensor) -> Tensor:
    """[B, C, L] row-major features -> [B, K, C, L] sequences in each route's order."""
    return x[:, :, orders].permute(0, 2, 1, 3)  # x[:, :, orders] is [B, C, K, L]


def merge(ys: Tensor, orders: Tensor, reduce: str = "sum") -> Tensor:
    """Inverse of ``scan``: [B, K, C, L] route-ordered outputs -> row-major.

    reduce="sum": [B, C, L], the routes summed (VMamba's cross-merge);
    reduce="none": [B, K, C, L], each route put back into row-major order.
    """
    inv = inverse_orders(orders).to(ys.device)  # [K, L]
    idx = inv[None, :, None, :].expand(ys.shape[0], -1, ys.shape[2], -1)
    back = torch.gather(ys, 3, idx)
    if reduce == "none":
        return back
    if reduce == "sum":
        return back.sum(dim=1)
    raise ValueError(f"reduce must be 'sum' or 'none', got {reduce!r}")


def grid_size(n_patches: int) -> tuple[int, int]:
    """The square patch grid of a ViT (24x24 for CLIP-L/14-336, 27x27 for SigLIP-SO/14-384)."""
    side = int(round(math.sqrt(n_patches)))
    if side * side != n_patches:
        raise ValueError(f"{n_patches} patches do not form a square grid")
    return side, side


class VSS(KeepsFP32Params):
    """One VMamba SS2D-style selective-scan layer over a patch grid: [B, L, dim] -> [B, L, dim].

    Hyper-parameters the paper does not state take VMamba's SS2D defaults: d_state=16, expand=2
    (ssm_ratio), depthwise conv 3x3, dt_rank=ceil(dim/16), mamba_ssm's dt/A/D initialisation.
    Parameter dtypes follow mamba_ssm's Mamba layer: ``A_log`` and ``D`` are float32 whatever the
    model dtype and stay so through ``.to(dtype)`` (``KeepsFP32Params``); the step bias
    ``dt_proj_bias`` and every other parameter take the model dtype. (VMamba's SS2D keeps all its
    parameters float32; the forward math is the same either way: the scan reads A, D and the bias
    as float32.)
    """

    fp32_params = ("A_log", "D")

    def __init__(self, dim: int, scan_mode: str = "bsm", d_state: int = 16, expand: float = 2.0,
                 d_conv: int = 3, dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
                 norm_eps: float = 1e-5, kernel: str = "auto", device=None, dtype=None):
        super().__init__()
        if scan_mode not in SCAN_MODES:
            raise ValueError(f"scan mode must be one of {SCAN_MODES}, got {scan_mode!r}")
        fk = {"device": device, "dtype": dtype}
        self.dim, self.scan_mode, self.kernel = dim, scan_mode, kernel
        self.d_state = d_state
        self.d_inner = int(expand * dim)
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else int(dt_rank)
        self.n_routes = 2 if scan_mode == "bsm" else 4
        K, Di, N, R = self.n_routes, self.d_inner, d_state, self.dt_rank

        self.in_proj = nn.Linear(dim, 2 * Di, bias=bias, **fk)
        self.conv2d = nn.Conv2d(Di, Di, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=Di,
                                bias=conv_bias, **fk)
        # per-route parameters, stacked on a leading route axis
        self.x_proj_weight = nn.Parameter(torch.empty(K, R + 2 * N, Di, **fk))
        self.dt_proj_weight = nn.Parameter(torch.empty(K, Di, R, **fk))
        self.dt_proj_bias = nn.Parameter(torch.empty(K, Di, **fk))
        self.A_log = nn.Parameter(torch.empty(K, Di, N, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(K, Di, device=device, dtype=torch.float32))
        self.out_norm = nn.LayerNorm(Di, eps=norm_eps, **fk)
        self.out_proj = nn.Linear(Di, dim, bias=bias, **fk)
        self._dt = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()
        self._orders: dict = {}

    @torch.no_grad()
    def reset_ssm_parameters(self):
        """mamba_ssm / VMamba initialisation of the SSM parameters of every route."""
        K, Di, N, R = self.n_routes, self.d_inner, self.d_state, self.dt_rank
        dt_min, dt_max, floor = self._dt
        bound = 1.0 / math.sqrt(Di)  # nn.Linear(Di, R+2N) default
        self.x_proj_weight.uniform_(-bound, bound)
        std = R ** -0.5  # dt_init="random", dt_scale=1
        self.dt_proj_weight.uniform_(-std, std)
        dt = torch.exp(torch.rand(K, Di) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=floor)
        self.dt_proj_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        A = torch.arange(1, N + 1, dtype=torch.float32).expand(K, Di, N)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)

    def orders(self, h: int, w: int, device) -> Tensor:
        key = (h, w, str(device))
        if key not in self._orders:
            self._orders[key] = scan_orders(h, w, self.scan_mode).to(device)
        return self._orders[key]

    def forward(self, x: Tensor, hw: tuple[int, int] | None = None) -> Tensor:
        Bsz, L, _ = x.shape
        h, w = hw if hw is not None else grid_size(L)
        K, Di, N, R = self.n_routes, self.d_inner, self.d_state, self.dt_rank
        xz = self.in_proj(x)
        xs, z = xz.chunk(2, dim=-1)  # [B, L, Di]
        xs = xs.transpose(1, 2).reshape(Bsz, Di, h, w)
        xs = F.silu(self.conv2d(xs)).reshape(Bsz, Di, L)
        orders = self.orders(h, w, x.device)
        u = scan(xs, orders)  # [B, K, Di, L]
        proj = torch.einsum("bkdl,kcd->bkcl", u, self.x_proj_weight.to(u.dtype))  # [B, K, R+2N, L]
        dts, Bs, Cs = torch.split(proj, [R, N, N], dim=2)
        dts = torch.einsum("bkrl,kdr->bkdl", dts, self.dt_proj_weight.to(u.dtype))  # [B, K, Di, L]
        y = _selective_scan()(
            u.reshape(Bsz, K * Di, L).contiguous(),
            dts.reshape(Bsz, K * Di, L).contiguous(),
            -torch.exp(self.A_log.float()).reshape(K * Di, N),
            Bs.contiguous(), Cs.contiguous(),  # grouped [B, K, N, L]: route k's B/C for its Di channels
            D=self.D.float().reshape(-1),
            delta_bias=self.dt_proj_bias.float().reshape(-1),
            delta_softplus=True,
            kernel=self.kernel,
        )
        y = merge(y.view(Bsz, K, Di, L), orders)  # [B, Di, L]
        y = self.out_norm(y.transpose(1, 2).to(x.dtype))
        y = y * F.silu(z)
        return self.out_proj(y)
