"""Triton kernel: the selective scan for inference, from zero or from a given state.

mamba_ssm's scan kernel cannot start from a state, so its path for the question suffixes of the
prefix-reuse path (~25 tokens continuing from cached image states) runs from zero and adds the
state's contribution (ops.apply_initial_state_correction), which costs more than the scan itself.
Here one program owns a [BLOCK_D, N] tile of the state in registers, one channel's N states per
thread, and walks the time steps: a state is read once and written once, no correction. The
activations are time-major (ops.time_major_applies), so one step of a block of channels is one
contiguous load, issued a step ahead. The recurrence is the reference's (ops.selective_scan_ref):

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t ;  y_t = C_t . h_t + D u_t ;  y *= silu(z)

with delta = softplus(delta + delta_bias) (mamba_ssm's threshold 20). Pad steps carry
delta = -inf (the mixer's convention), i.e. an effective step of 0: the state passes unchanged.
It is sequential in time, so it needs several rows to fill the GPU (time_major_wins says where).
"""

from __future__ import annotations

import math

import torch

try:
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - optional on CPU-only installs
    triton = None

# Where this kernel beats mamba_ssm's (bench/scan_lengths.py on an H200, d_inner 5120, time-major
# activations, GPU ms per layer, ours vs mamba_ssm's): from zero 29 x 736 tokens 1.14 vs 4.13, 4 x 736
# 0.50 vs 0.60, 29 x 256 0.42 vs 0.69, but 1 x 736 0.32 vs 0.17 (one row: mamba_ssm's kernel splits
# the time axis among threads, this one walks it); from a state 512 x 24 0.79 vs 30.4 and 64 x 24
# 0.14 vs 3.9 (mamba_ssm cannot start from a state: its path adds a correction term). From a state
# the earlier kernel's rule stands (up to 256 steps at any batch); this one is faster than it there.
TIME_MAJOR_MIN_BATCH = 4
STATE_SCAN_MAX_LEN = 256
TILE = (64, 2)  # (channels, warps) per program: one channel per thread (see the kernel)


def time_major_wins(batch: int, length: int, from_state: bool) -> bool:
    """Whether the time-major layout with this kernel beats mamba_ssm's kernel for a [batch, length] scan."""
    if length <= 1:
        return False
    return batch >= TIME_MAJOR_MIN_BATCH or (from_state and length <= STATE_SCAN_MAX_LEN)


if triton is not None:

    @triton.jit
    def _exp2(x, FAST: tl.constexpr):
        # ex2.approx.ftz: one MUFU op; the non-ftz form that tl.exp compiles to adds a range test and
        # two scalings around it for denormal results, which made up a third of the scan's instructions.
        if FAST:
            return tl.inline_asm_elementwise("ex2.approx.ftz.f32 $0, $1;", "=f,f", [x], dtype=tl.float32,
                                             is_pure=True, pack=1)
        else:  # Triton's interpreter (CPU tests) runs no PTX
            return tl.exp2(x)

    @triton.jit
    def _log2(x, FAST: tl.constexpr):
        if FAST:
            return tl.inline_asm_elementwise("lg2.approx.ftz.f32 $0, $1;", "=f,f", [x], dtype=tl.float32,
                                             is_pure=True, pack=1)
        else:
            return tl.log2(x)

    @triton.jit
    def _load_step(u_row, dt_row, z_row, B_row, C_row, t, s_ul, s_tl, s_zl, s_bl, s_cl, md, HAS_Z: tl.constexpr):
        """One time step's inputs, left in their storage dtype (fewer registers while prefetched)."""
        x = tl.load(u_row + t * s_ul, mask=md, other=0.0)
        dt = tl.load(dt_row + t * s_tl, mask=md, other=0.0)
        zt = tl.load(z_row + t * s_zl, mask=md, other=0.0) if HAS_Z else x
        return x, dt, zt, tl.load(B_row + t * s_bl), tl.load(C_row + t * s_cl)

    @triton.jit
    def _short_scan_kernel(u_ptr, dt_ptr, At_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr, len_ptr, out_ptr,
                           hT_ptr, Dm, L, s_an,
                           s_ub, s_ud, s_ul, s_tb, s_td, s_tl, s_bb, s_bn, s_bl, s_cb, s_cn, s_cl,
                           s_zb, s_zd, s_zl, s_hb, s_hd, s_hn, s_ob, s_od, s_ol, s_Hb, s_Hd, s_Hn,
                           N: tl.constexpr, BLOCK_D: tl.constexpr, HAS_D: tl.constexpr, HAS_Z: tl.constexpr,
                           HAS_BIAS: tl.constexpr, HAS_H0: tl.constexpr, SOFTPLUS: tl.constexpr,
                           HAS_LEN: tl.constexpr, FAST: tl.constexpr):
        LOG2E: tl.constexpr = 1.4426950408889634
        LN2: tl.constexpr = 0.6931471805599453
        b = tl.program_id(0)
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        offs_n = tl.arange(0, N)
        md = offs_d < Dm
        m2 = md[:, None]
        # A is read transposed ([n, d], channels contiguous): that makes the compiler give each thread
        # whole rows of the [BLOCK_D, N] state, so y = C . h sums in registers and a step's channel
        # vectors need no exchange between threads (with [d, n] it split rows across 16 lanes:
        # 64 shuffles and 3 layout conversions through shared memory, with barriers, every step).
        A = tl.load(At_ptr + offs_n[None, :] * s_an + offs_d[:, None], mask=m2, other=0.0)
        h = tl.zeros((BLOCK_D, N), dtype=tl.float32)
        if HAS_H0:  # one state channel at a time: a [d, n] tile load would impose its layout on the loop
            for n in tl.static_range(N):
                hn = tl.load(h0_ptr + b * s_hb + offs_d * s_hd + n * s_hn, mask=md, other=0.0)
                h = tl.where(offs_n[None, :] == n, hn[:, None], h)
        if HAS_D:
            Dv = tl.load(D_ptr + offs_d, mask=md, other=0.0)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_d, mask=md, other=0.0)
        if HAS_LEN:
            length = tl.load(len_ptr + b)
        u_row = u_ptr + b * s_ub + offs_d * s_ud
        dt_row = dt_ptr + b * s_tb + offs_d * s_td
        z_row = z_ptr + b * s_zb + offs_d * s_zd
        B_row = B_ptr + b * s_bb + offs_n * s_bn
        C_row = C_ptr + b * s_cb + offs_n * s_cn
        o_row = out_ptr + b * s_ob + offs_d * s_od
        # The loads of step t+1 are issued before step t is computed: a step is otherwise a full
        # memory latency, and the scan is a chain of L of them.
        x1, dt1, z1, B1, C1 = _load_step(u_row, dt_row, z_row, B_row, C_row, 0, s_ul, s_tl, s_zl, s_bl, s_cl, md, HAS_Z)
        for t in range(0, L):
            x, dt, zt, Bt, Ct = x1, dt1, z1, B1, C1
            x1, dt1, z1, B1, C1 = _load_step(u_row, dt_row, z_row, B_row, C_row, tl.minimum(t + 1, L - 1),
                                             s_ul, s_tl, s_zl, s_bl, s_cl, md, HAS_Z)
            x = x.to(tl.float32)
            dt = dt.to(tl.float32)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = tl.where(dt <= 20.0, _log2(1.0 + _exp2(dt * LOG2E, FAST), FAST) * LN2, dt)
            if HAS_LEN:  # a pad step: effective step 0, the state passes unchanged
                dt = tl.where(t < length, dt, 0.0)
            # A arrives multiplied by log2(e): exp(dt A) = 2^(dt A log2 e)
            h = _exp2(dt[:, None] * A, FAST) * h + (dt * x)[:, None] * Bt.to(tl.float32)[None, :]
            y = tl.sum(h * Ct.to(tl.float32)[None, :], axis=1)
            if HAS_D:
                y += Dv * x
            if HAS_Z:
                zf = zt.to(tl.float32)
                y = y * zf / (1.0 + _exp2(-zf * LOG2E, FAST))
            tl.store(o_row + t * s_ol, y.to(out_ptr.dtype.element_ty), mask=md)
        for n in tl.static_range(N):  # likewise; the sum over a row is within one thread
            hn = tl.sum(tl.where(offs_n[None, :] == n, h, 0.0), axis=1)
            tl.store(hT_ptr + b * s_Hb + offs_d * s_Hd + n * s_Hn, hn, mask=md)


def available(u: torch.Tensor, B: torch.Tensor, A: torch.Tensor) -> bool:
    """Ungrouped B/C [b, n, l], a power-of-two state size, CUDA tensors."""
    n = A.shape[-1]
    return triton is not None and u.is_cuda and B.dim() == 3 and n > 0 and n & (n - 1) == 0


def short_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
               D: torch.Tensor | None = None, z: torch.Tensor | None = None, delta_bias: torch.Tensor | None = None,
               delta_softplus: bool = False, initial_state: torch.Tensor | None = None,
               lengths: torch.Tensor | None = None, block_d: int | None = None,
               num_warps: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """u, delta, z [b, d, l] (any strides); A [d, n]; B, C [b, n, l]; D, delta_bias [d];
    initial_state [b, d, n] (None: zeros); lengths [b] (None: all l; steps from a row's length on
    are pad steps, as with delta = -inf). Returns (out [b, d, l] in u's dtype, last state
    [b, d, n] float32). No autograd."""
    b, d, L = u.shape
    n = A.shape[-1]
    block_d, num_warps = block_d or TILE[0], num_warps or TILE[1]
    # A as [n, d] (see the kernel), rows d + 1 apart: with aligned rows the compiler would load 4
    # channels per thread as one vector, and that layout again splits the state's rows across threads
    At = torch.empty(n, d + 1, device=A.device, dtype=torch.float32)[:, :d]
    At.copy_(A.t() * math.log2(math.e))
    out = torch.empty_like(u)  # in u's layout (feature- or time-major): the steps' stores coalesce as its loads do
    last = torch.empty(b, d, n, device=u.device, dtype=torch.float32)
    h0 = initial_state.float() if initial_state is not None else last  # unused when HAS_H0 is False
    Dv = D.float().contiguous() if D is not None else At
    bias = delta_bias.float().contiguous() if delta_bias is not None else At
    zz = z if z is not None else u
    grid = (b, triton.cdiv(d, block_d))
    _short_scan_kernel[grid](
        u, delta, At, B, C, Dv, zz, bias, h0, lengths if lengths is not None else At, out, last, d, L, At.stride(0),
        u.stride(0), u.stride(1), u.stride(2), delta.stride(0), delta.stride(1), delta.stride(2),
        B.stride(0), B.stride(1), B.stride(2), C.stride(0), C.stride(1), C.stride(2),
        zz.stride(0), zz.stride(1), zz.stride(2), h0.stride(0), h0.stride(1), h0.stride(2),
        out.stride(0), out.stride(1), out.stride(2), last.stride(0), last.stride(1), last.stride(2),
        N=n, BLOCK_D=block_d, HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
        HAS_H0=initial_state is not None, SOFTPLUS=bool(delta_softplus),
        HAS_LEN=lengths is not None, FAST=u.is_cuda and torch.version.hip is None,  # inline PTX: NVIDIA only
        num_warps=num_warps)
    return out, last
