"""Triton kernel: the selective scan of a SHORT sequence from a given state, for inference.

The question suffixes of the prefix-reuse path (~25 tokens, 64 per batch) continue from cached
image states. mamba_ssm's scan kernel cannot start from a state, so the generic kernel path runs
it from zero and adds the state's contribution (ops.apply_initial_state_correction): on an H100
at the 2.8B size that costs ~2.9 ms per layer for 64 x 24 tokens (a cumsum over 24-long rows
1.6 ms, the scan itself 1.2 ms: one thread block per (sequence, channel), 330k tiny blocks),
i.e. ~190 ms of GPU time per batch of questions, more than everything else in it.

Here one program owns a [BLOCK_D, N] tile of the state in registers and walks the time steps,
so a state is read once and written once, and there is no correction. The recurrence is the
reference's (ops.selective_scan_ref):

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t ;  y_t = C_t . h_t + D u_t ;  y *= silu(z)

with delta = softplus(delta + delta_bias) (mamba_ssm's threshold 20). Pad steps carry
delta = -inf (the mixer's convention), i.e. an effective step of 0: the state passes unchanged.
Works for any length, but it is sequential in time; ops.selective_scan uses it up to
SHORT_SCAN_MAX_LEN steps (STATE_SCAN_MAX_LEN when continuing from a state).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - optional on CPU-only installs
    triton = None

# Up to these lengths this kernel beats mamba_ssm's (H100, 2.8B, batch 64): from zero up to 64
# steps; from a state up to 256, since the alternative then also pays the correction (its cumsum
# over short rows alone costs more than this whole scan).
SHORT_SCAN_MAX_LEN = 64
STATE_SCAN_MAX_LEN = 256
# Time-major activations (the mixer's layout where ops.time_major_applies): one step of a block of
# channels is one contiguous load. Measured on an H200 (bench/scan_lengths.py, d_inner 5120, GPU ms
# per layer, this kernel with 64-channel tiles vs mamba_ssm's): from zero, 29 x 736 tokens 2.50 vs
# 4.13, but 4 x 736 1.18 vs 0.60, 1 x 736 0.71 vs 0.16, 29 x 256 0.87 vs 0.65 (at few rows this
# kernel waits on its sequential steps); from a state, 512 x 24 1.33 (feature-major 1.83; mamba_ssm
# with the correction 29.8). So: from a state on short suffixes, and from zero on long batches.
TIME_MAJOR_MIN_BATCH, TIME_MAJOR_MIN_LEN = 16, 512
TIME_MAJOR_TILE = (64, 2)  # (channels, warps) per program: the fastest of five tiles where the rule picks this
FEATURE_MAJOR_TILE = (32, 2)


def time_major_wins(batch: int, length: int, from_state: bool) -> bool:
    """Whether the time-major layout with this kernel beats the alternative for a [batch, length] scan."""
    if from_state:
        return 1 < length <= STATE_SCAN_MAX_LEN
    return batch >= TIME_MAJOR_MIN_BATCH and length > TIME_MAJOR_MIN_LEN


if triton is not None:

    @triton.jit
    def _short_scan_kernel(u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr, out_ptr, hT_ptr,
                           Dm, L,
                           s_ub, s_ud, s_ul, s_tb, s_td, s_tl, s_ad, s_an, s_bb, s_bn, s_bl, s_cb, s_cn, s_cl,
                           s_zb, s_zd, s_zl, s_hb, s_hd, s_hn, s_ob, s_od, s_ol, s_Hb, s_Hd, s_Hn,
                           N: tl.constexpr, BLOCK_D: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                           HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SOFTPLUS: tl.constexpr):
        b = tl.program_id(0)
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        offs_n = tl.arange(0, N)
        md = offs_d < Dm
        m2 = md[:, None]
        A = tl.load(A_ptr + offs_d[:, None] * s_ad + offs_n[None, :] * s_an, mask=m2, other=0.0)
        if HAS_H0:
            h = tl.load(h0_ptr + b * s_hb + offs_d[:, None] * s_hd + offs_n[None, :] * s_hn, mask=m2, other=0.0)
        else:
            h = tl.zeros((BLOCK_D, N), dtype=tl.float32)
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=md, other=0.0)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=md, other=0.0)
        for t in range(0, L):
            x = tl.load(u_ptr + b * s_ub + offs_d * s_ud + t * s_ul, mask=md, other=0.0).to(tl.float32)
            dt = tl.load(dt_ptr + b * s_tb + offs_d * s_td + t * s_tl, mask=md, other=0.0).to(tl.float32)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
            Bt = tl.load(B_ptr + b * s_bb + offs_n * s_bn + t * s_bl).to(tl.float32)
            Ct = tl.load(C_ptr + b * s_cb + offs_n * s_cn + t * s_cl).to(tl.float32)
            h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bt[None, :]
            y = tl.sum(h * Ct[None, :], axis=1)
            if HAS_D:
                y += Dv * x
            if HAS_Z:
                zt = tl.load(z_ptr + b * s_zb + offs_d * s_zd + t * s_zl, mask=md, other=0.0).to(tl.float32)
                y = y * zt * tl.sigmoid(zt)
            tl.store(out_ptr + b * s_ob + offs_d * s_od + t * s_ol, y.to(out_ptr.dtype.element_ty), mask=md)
        tl.store(hT_ptr + b * s_Hb + offs_d[:, None] * s_Hd + offs_n[None, :] * s_Hn, h, mask=m2)


def available(u: torch.Tensor, B: torch.Tensor, A: torch.Tensor) -> bool:
    """Ungrouped B/C [b, n, l], a power-of-two state size, CUDA tensors."""
    n = A.shape[-1]
    return triton is not None and u.is_cuda and B.dim() == 3 and n > 0 and n & (n - 1) == 0


def short_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
               D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
               delta_softplus: bool = False, initial_state: torch.Tensor | None = None,
               block_d: int | None = None, num_warps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """u, delta, z [b, d, l] (any strides); A [d, n]; B, C [b, n, l]; D, delta_bias [d];
    initial_state [b, d, n] (None: zeros). Returns (out [b, d, l] in u's dtype, last state
    [b, d, n] float32). No autograd."""
    b, d, L = u.shape
    n = A.shape[-1]
    if block_d is None or num_warps is None:
        block_d, num_warps = TIME_MAJOR_TILE if u.stride(1) == 1 and L > 1 else FEATURE_MAJOR_TILE
    A = A.float()
    out = torch.empty_like(u)  # in u's layout (feature- or time-major): the steps' stores coalesce as its loads do
    last = torch.empty(b, d, n, device=u.device, dtype=torch.float32)
    h0 = initial_state.float() if initial_state is not None else last  # unused when HAS_H0 is False
    Dv = D.float().contiguous() if D is not None else A
    bias = delta_bias.float().contiguous() if delta_bias is not None else A
    zz = z if z is not None else u
    grid = (b, triton.cdiv(d, block_d))
    _short_scan_kernel[grid](
        u, delta, A, B, C, Dv, zz, bias, h0, out, last, d, L,
        u.stride(0), u.stride(1), u.stride(2), delta.stride(0), delta.stride(1), delta.stride(2),
        A.stride(0), A.stride(1), B.stride(0), B.stride(1), B.stride(2), C.stride(0), C.stride(1), C.stride(2),
        zz.stride(0), zz.stride(1), zz.stride(2), h0.stride(0), h0.stride(1), h0.stride(2),
        out.stride(0), out.stride(1), out.stride(2), last.stride(0), last.stride(1), last.stride(2),
        N=n, BLOCK_D=block_d, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        HAS_H0=initial_state is not None, SOFTPLUS=bool(delta_softplus), num_warps=num_warps)
    return out, last
