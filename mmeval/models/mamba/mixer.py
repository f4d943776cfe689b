"""The Mamba-1 mixer and its residual block (mamba_ssm ``Mamba`` / ``Block`` structure and
parameter names), with a sequence forward (right-padded batches, optional initial state)
and an in-place single-token decoding step."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import triton_step
from .config import MambaConfig
from .fp32_params import KeepsFP32Params
from .ops import (
    causal_conv1d,
    causal_conv1d_step,
    fused_add_norm,
    selective_scan,
    selective_state_step,
    time_major_applies,
)


class RMSNorm(nn.Module):
    """RMSNorm computed in float32 (as mamba_ssm's fused kernel), output in the weight dtype."""

    def __init__(self, dim: int, eps: float = 1e-5, device=None, dtype=None):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim, device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + self.eps)
        return (y * self.weight.float()).to(self.weight.dtype)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32, output in the weight dtype (rms_norm=False configs)."""

    def forward(self, x: Tensor) -> Tensor:
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), b, self.eps).to(self.weight.dtype)


def make_norm(cfg: MambaConfig, device=None, dtype=None) -> nn.Module:
    if cfg.rms_norm:
        return RMSNorm(cfg.d_model, eps=cfg.norm_epsilon, device=device, dtype=dtype)
    return LayerNorm(cfg.d_model, eps=cfg.norm_epsilon, device=device, dtype=dtype)


def _rows(t: Tensor) -> Tensor:
    """[b, d, l] -> [(b l), d]: a view for the feature-major layout, a copy otherwise."""
    return t.permute(0, 2, 1).reshape(-1, t.shape[1])


class MambaMixer(KeepsFP32Params):
    fp32_params = ("A_log", "D")  # float32 whatever the model dtype, through .to() too (fp32_params.py)

    def __init__(self, cfg: MambaConfig, layer_idx: int = 0, device=None, dtype=None):
        super().__init__()
        fk = {"device": device, "dtype": dtype}
        self.layer_idx = layer_idx
        self.d_model, self.d_state, self.d_conv = cfg.d_model, cfg.d_state, cfg.d_conv
        self.d_inner = cfg.d_inner
        self.dt_rank = cfg.dt_rank_value
        di = self.d_inner
        self.in_proj = nn.Linear(self.d_model, 2 * di, bias=cfg.bias, **fk)
        self.conv1d = nn.Conv1d(di, di, kernel_size=cfg.d_conv, groups=di, padding=cfg.d_conv - 1,
                                bias=cfg.conv_bias, **fk)
        self.x_proj = nn.Linear(di, self.dt_rank + 2 * self.d_state, bias=False, **fk)
        self.dt_proj = nn.Linear(self.dt_rank, di, bias=True, **fk)
        # A_log and D are kept in float32 whatever the model dtype (as mamba_ssm does)
        self.A_log = nn.Parameter(torch.empty(di, self.d_state, device=device, dtype=torch.float32))
        self.D = nn.Parameter(torch.empty(di, device=device, dtype=torch.float32))
        self.out_proj = nn.Linear(di, self.d_model, bias=cfg.bias, **fk)
        self._init_ssm(cfg)

    @torch.no_grad()
    def _init_ssm(self, cfg: MambaConfig):
        std = self.dt_rank ** -0.5 * cfg.dt_scale
        if cfg.dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, std)
        elif cfg.dt_init == "random":
            nn.init.uniform_(self.dt_proj.weight, -std, std)
        else:
            raise NotImplementedError(f"dt_init={cfg.dt_init!r}")
        dev = self.dt_proj.bias.device
        dt = torch.exp(torch.rand(self.d_inner, device=dev) * (math.log(cfg.dt_max) - math.log(cfg.dt_min))
                       + math.log(cfg.dt_min)).clamp(min=cfg.dt_init_floor)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.dt_proj.bias._no_reinit = True
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=dev).expand(self.d_inner, -1)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)

    def _inference_cached(self, name: str, source: Tensor, make) -> Tensor:
        """make() computed once and reused while `source` is unchanged (its version counter moves
        on every in-place write, e.g. load_state_dict; .to() gives new storage). Without autograd
        only: at batch 1 these small kernels were ~15% of a decoding step's GPU time."""
        if torch.is_grad_enabled():
            return make()
        tag = (source._version, source.data_ptr(), source.device, source.dtype)
        hit = self.__dict__.get("_cached_" + name)
        if hit is None or hit[0] != tag:
            hit = (tag, make())
            self.__dict__["_cached_" + name] = hit
        return hit[1]

    def _A(self) -> Tensor:
        """A = -exp(A_log), float32."""
        return self._inference_cached("A", self.A_log, lambda: -torch.exp(self.A_log.float()))

    def _dt_bias(self) -> Tensor:
        """The step bias in float32 (the kernels take it so; the weights may be bf16)."""
        return self._inference_cached("dt_bias", self.dt_proj.bias, lambda: self.dt_proj.bias.float())

    def _step_counters(self, xz: Tensor) -> Tensor:
        """The fused step's arrival counters for this batch size and device: one tensor, zero between
        steps, so that a captured CUDA graph and later eager steps share it."""
        key = f"_step_counters_{xz.shape[0]}_{xz.device}"
        if key not in self.__dict__:
            self.__dict__[key] = torch.zeros(xz.shape[0], device=xz.device, dtype=torch.int32)
        return self.__dict__[key]

    def _conv_weight(self) -> Tensor:
        return self.conv1d.weight.squeeze(1)  # [d_inner, d_conv]

    def forward(
        self,
        hidden: Tensor,
        lengths: Tensor | None = None,
        length_range: tuple[int, int] | None = None,
        conv_state: Tensor | None = None,
        ssm_state: Tensor | None = None,
        return_state: bool = False,
        kernel: str = "auto",
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """hidden [B, L, D] (right-padded when ``lengths`` [B] is given) -> ([B, L, D], state).

        Pad positions get the raw step dt = -inf, i.e. an effective step softplus(-inf) = 0
        exactly, so the SSM state passes them unchanged; the conv state is gathered from
        each sequence's last real inputs. The given states are never modified.
        ``length_range``: (shortest, longest) of ``lengths`` when the caller knows it on the host;
        it lets equal lengths (padding only for alignment) mask a slice, and lengths of at least
        the conv width take the conv state from x alone."""
        Bsz, L, _ = hidden.shape
        hs = hidden.reshape(Bsz * L, -1)
        # Activations are matrices viewed as [b, d, l], never copied into another layout between the
        # projections (the transposes of a [b, l, d] layout cost ~40% of a 2.8B prefill on an H100).
        # Feature-major ([d, (b l)], strides (l, b*l, 1)) is what mamba_ssm's scan kernel reads; the
        # Triton scan reads time-major ([(b l), d], strides (l*d, 1, d)), where one step of a block of
        # channels is one contiguous load (ops.time_major_applies says which one runs).
        time_major = time_major_applies(hidden, kernel, ssm_state is not None)
        if time_major:
            # x and z as two products: each half dense, as the channel-last conv needs it (one product
            # of both halves left x strided, and the conv's copy of it cost ~40% of the product)
            di, w, bias = self.d_inner, self.in_proj.weight, self.in_proj.bias
            x, z = (F.linear(hs, w[i * di:(i + 1) * di], None if bias is None else bias[i * di:(i + 1) * di])
                    .view(Bsz, L, di).permute(0, 2, 1) for i in range(2))
        else:
            xz = self.in_proj.weight @ hs.t()  # [2 d_inner, b*l]
            if self.in_proj.bias is not None:
                xz = xz + self.in_proj.bias[:, None]
            x, z = xz.view(2 * self.d_inner, Bsz, L).permute(1, 0, 2).chunk(2, dim=1)  # [b, d_inner, l] each
        init_conv = conv_state[:, :, 1:] if conv_state is not None else None
        new_conv = None
        if return_state:
            new_conv = self._last_conv_inputs(x, lengths, length_range, conv_state)
        xc = causal_conv1d(x, self._conv_weight(), self.conv1d.bias, init_conv, kernel)
        x_dbl = F.linear(_rows(xc), self.x_proj.weight)  # [(b l), R + 2N]
        # the step before its bias (added in the scan), [b, d_inner, l]
        if time_major:
            dt = F.linear(x_dbl[:, : self.dt_rank], self.dt_proj.weight).view(Bsz, L, -1).permute(0, 2, 1)
        else:
            dt = (self.dt_proj.weight @ x_dbl[:, : self.dt_rank].t()).view(self.d_inner, Bsz, L).permute(1, 0, 2)
        ragged = None  # the lengths of a ragged batch, masked by selective_scan (in the Triton kernel when it runs)
        if lengths is not None:
            if length_range is not None and length_range[0] == length_range[1]:
                if length_range[1] < L:  # padding for alignment only: one slice
                    dt[:, :, length_range[1]:] = float("-inf")
            else:
                ragged = lengths
        # views [b, n, l] of x_dbl: the Triton scan reads a step's n values as one vector; the
        # mamba_ssm path makes them contiguous (ops._kernel_scan_fn)
        Bm = x_dbl[:, self.dt_rank: self.dt_rank + self.d_state].view(Bsz, L, -1).transpose(1, 2)
        Cm = x_dbl[:, self.dt_rank + self.d_state:].view(Bsz, L, -1).transpose(1, 2)
        A = self._A()
        res = selective_scan(xc, dt, A, Bm, Cm, self.D.float(), z=z, delta_bias=self._dt_bias(),
                             delta_softplus=True, initial_state=ssm_state, return_last_state=return_state,
                             lengths=ragged, kernel=kernel)
        if return_state:
            y, last = res
        else:
            y, last = res, None
        out = F.linear(_rows(y), self.out_proj.weight, self.out_proj.bias).view(Bsz, L, -1)
        return out, ((new_conv, last) if return_state else None)

    def _last_conv_inputs(self, x: Tensor, lengths: Tensor | None, length_range: tuple[int, int] | None,
                          conv_state: Tensor | None) -> Tensor:
        """The conv state after each sequence: its last d_conv real inputs (the given state's
        tail first when a sequence is shorter than that), gathered without concatenating the
        whole sequence to the state (at 512 x 32 tokens that copy cost ~0.3 ms a layer). x [B, d_inner, L]."""
        Bsz, _, L = x.shape
        W = self.d_conv
        if lengths is None:
            if L >= W:
                return x[:, :, L - W:].contiguous()
            lengths = torch.full((Bsz,), L, device=x.device, dtype=torch.long)
        pos = lengths.view(Bsz, 1) - W + torch.arange(W, device=x.device).view(1, W)  # in x; < 0: in the state

        def take(t: Tensor, idx: Tensor) -> Tensor:
            return t.gather(2, idx.view(Bsz, 1, W).expand(Bsz, self.d_inner, W))

        from_x = take(x, pos.clamp(min=0))
        if length_range is not None and length_range[0] >= W:
            return from_x
        prev = conv_state.to(x.dtype) if conv_state is not None else x.new_zeros(Bsz, self.d_inner, W)
        return torch.where((pos >= 0).view(Bsz, 1, W), from_x, take(prev, (pos + W).clamp(max=W - 1)))

    def step(self, hidden: Tensor, conv_state: Tensor, ssm_state: Tensor, kernel: str = "auto") -> Tensor:
        """One token: hidden [B, D] -> [B, D]; UPDATES conv_state and ssm_state IN PLACE."""
        xz = self.in_proj(hidden)
        if triton_step.applies(xz, conv_state, ssm_state, kernel):  # 2 launches for the 4-6 below
            y = triton_step.fused_step(xz, conv_state, ssm_state, self._conv_weight(), self.conv1d.bias,
                                       self.x_proj.weight, self.dt_proj.weight, self._dt_bias(), self._A(), self.D,
                                       self._step_counters(xz))
            return self.out_proj(y)
        x, z = xz.chunk(2, dim=-1)
        x = causal_conv1d_step(x, conv_state, self._conv_weight(), self.conv1d.bias, kernel)
        x_db = self.x_proj(x)
        dt, Bm, Cm = torch.split(x_db, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)
        A = self._A()
        y = selective_state_step(ssm_state, x, dt, A, Bm, Cm, self.D, z=z, dt_bias=self._dt_bias(),
                                 dt_softplus=True, kernel=kernel)
        return self.out_proj(y)


class Block(nn.Module):
    """mamba_ssm Block without MLP: residual = residual + hidden; hidden = mixer(norm(residual))."""

    def __init__(self, cfg: MambaConfig, layer_idx: int = 0, device=None, dtype=None):
        super().__init__()
        self.residual_in_fp32 = cfg.residual_in_fp32
        self.norm = make_norm(cfg, device=device, dtype=dtype)
        self.mixer = MambaMixer(cfg, layer_idx=layer_idx, device=device, dtype=dtype)
        self.layer_idx = layer_idx

    def add_norm(self, hidden: Tensor, residual: Tensor | None, kernel: str) -> tuple[Tensor, Tensor]:
        """residual += hidden; normed = norm(residual) (one fused kernel on the CUDA path)."""
        return fused_add_norm(hidden, residual, self.norm.weight, getattr(self.norm, "bias", None), self.norm.eps,
                              isinstance(self.norm, RMSNorm), self.residual_in_fp32, prenorm=True, kernel=kernel)

    def forward(self, hidden, residual=None, kernel="auto", **mixer_kwargs):
        normed, residual = self.add_norm(hidden, residual, kernel)
        hidden, state = self.mixer(normed, kernel=kernel, **mixer_kwargs)
        return hidden, residual, state

    def step(self, hidden, residual, conv_state, ssm_state, kernel="auto"):
        normed, residual = self.add_norm(hidden, residual, kernel)
        return self.mixer.step(normed, conv_state, ssm_state, kernel), residual
