"""Triton kernels: the middle of a Mamba-1 decoding step in two launches instead of five or six.

Between the in_proj and out_proj matrix-vector products, a decoding step is a chain of small
kernels (conv-state update, x_proj, dt_proj, the selective state update, and the copies between
them), each ~2-4 us at batch 1 on an H200, where moving the layer's weights takes ~20 us: at the
2.8B size they are about a third of a token's time. Here:

1. ``_conv_xproj_kernel``, one program per (row, block of channels): shift the conv state and
   append x, the depthwise conv + SiLU, and this block's share of x_proj (``x_dbl`` partial sums
   over its channels, written per block: no atomics, so the result does not depend on scheduling).
2. ``_dt_state_kernel``, one program per (row, block of channels): sum the partials (dt_low, B, C),
   dt_proj for its channels, softplus(dt + bias), the state update, ``y = C.h + D x``, ``y *= silu(z)``.

Roundings follow the unfused path (ops.causal_conv1d_step, F.linear, ops.selective_state_step):
the conv output, ``x_dbl`` and ``dt`` are rounded to the activation dtype where the unfused path
stores them in it; everything else is float32. Only summation orders differ. The PyTorch
reference (``fused_step_ref`` = the unfused ops on the reference path) is the oracle; the tests run
these kernels in Triton's interpreter on the CPU, bench/mamba_kernel_check.py on the GPU.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

try:
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - optional on CPU-only installs
    triton = None

# Measured on an H200 at the 2.8B size (bench/decode_step.py, docs/performance.md): the graphed
# step takes 2.82 ms fused vs 3.02 unfused at batch 1, 3.01 vs 3.08 at batch 4, 4.02 vs 3.38 at
# batch 16 (above a few rows cuBLAS's GEMMs, reading x_proj's weights once for all rows, win).
FUSED_STEP_MAX_BATCH = 4
_CONV_BLOCK = 64  # channels per program of kernel 1: 80 partial sums per row at d_inner 5120
_STATE_BLOCK = 16  # channels per program of kernel 2 (the fastest of 16/32 x 32/64/128 at batch 1)
_J_CHUNK = 64  # x_dbl columns reduced at a time


if triton is not None:

    @triton.jit
    def _conv_xproj_kernel(xz_ptr, conv_ptr, cw_ptr, cb_ptr, wx_ptr, xc_ptr, part_ptr, count_ptr, xdbl_ptr,
                           Dm, J, P,
                           s_xzb, s_cb, s_cd, s_cw, s_wd, s_ww, s_xj, s_xd, s_xcb, s_pb, s_pp, s_db,
                           W: tl.constexpr, BLOCK_D: tl.constexpr, J_PAD: tl.constexpr, J_CHUNK: tl.constexpr,
                           P_PAD: tl.constexpr, HAS_CB: tl.constexpr):
        b = tl.program_id(0)
        pd = tl.program_id(1)
        offs_d = pd * BLOCK_D + tl.arange(0, BLOCK_D)
        md = offs_d < Dm
        # every load first, x_proj's weights included: at batch 1 this kernel is a chain of memory
        # latencies, and loads issued together wait once
        offs_j = tl.arange(0, J_PAD)
        mj = offs_j < J
        wx = tl.load(wx_ptr + offs_j[:, None] * s_xj + offs_d[None, :] * s_xd, mask=mj[:, None] & md[None, :],
                     other=0.0)
        offs_w = tl.arange(0, W)
        # the window after this step: the state's last W-1 inputs, then x
        old = tl.load(conv_ptr + b * s_cb + offs_d[:, None] * s_cd + (offs_w[None, :] + 1) * s_cw,
                      mask=md[:, None] & (offs_w[None, :] < W - 1), other=0.0)
        x = tl.load(xz_ptr + b * s_xzb + offs_d, mask=md, other=0.0)
        w = tl.load(cw_ptr + offs_d[:, None] * s_wd + offs_w[None, :] * s_ww, mask=md[:, None], other=0.0)
        if HAS_CB:
            bias = tl.load(cb_ptr + offs_d, mask=md, other=0.0).to(tl.float32)
        win = tl.where(offs_w[None, :] == W - 1, x.to(old.dtype)[:, None], old)
        tl.store(conv_ptr + b * s_cb + offs_d[:, None] * s_cd + offs_w[None, :] * s_cw, win, mask=md[:, None])
        acc = tl.sum(win.to(tl.float32) * w.to(tl.float32), axis=1)
        if HAS_CB:
            acc += bias
        xc = (acc * tl.sigmoid(acc)).to(xc_ptr.dtype.element_ty)  # stored in the activation dtype
        tl.store(xc_ptr + b * s_xcb + offs_d, xc, mask=md)
        part = tl.sum(wx.to(tl.float32) * tl.where(md, xc.to(tl.float32), 0.0)[None, :], axis=1)
        tl.store(part_ptr + b * s_pb + pd * s_pp + offs_j, part, mask=mj)
        # The row's last program to finish sums the partials in block order (the result does not
        # depend on which program that is) and resets the counter for the next step.
        tl.debug_barrier()
        done = tl.atomic_add(count_ptr + b, 1, sem="acq_rel")
        if done == P - 1:
            offs_p = tl.arange(0, P_PAD)
            mp = offs_p < P
            for j0 in tl.static_range(0, J_PAD, J_CHUNK):
                offs_c = j0 + tl.arange(0, J_CHUNK)
                mc = offs_c < J
                tile = tl.load(part_ptr + b * s_pb + offs_p[:, None] * s_pp + offs_c[None, :],
                               mask=mp[:, None] & mc[None, :], other=0.0, cache_modifier=".cg")
                tl.store(xdbl_ptr + b * s_db + offs_c, tl.sum(tile, axis=0).to(xdbl_ptr.dtype.element_ty), mask=mc)
            tl.atomic_xchg(count_ptr + b, 0)

    @triton.jit
    def _dt_state_kernel(xdbl_ptr, xc_ptr, z_ptr, wdt_ptr, dtb_ptr, A_ptr, D_ptr, state_ptr, y_ptr,
                         Dm, R,
                         s_db, s_xcb, s_zb, s_wd, s_wr, s_ad, s_an, s_sb, s_sd, s_sn, s_yb,
                         N: tl.constexpr, R_PAD: tl.constexpr, BLOCK_D: tl.constexpr, HAS_D: tl.constexpr):
        b = tl.program_id(0)
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        md = offs_d < Dm
        offs_r = tl.arange(0, R_PAD)
        mr = offs_r < R
        offs_n = tl.arange(0, N)
        low = tl.load(xdbl_ptr + b * s_db + offs_r, mask=mr, other=0.0).to(tl.float32)
        Bv = tl.load(xdbl_ptr + b * s_db + R + offs_n).to(tl.float32)
        Cv = tl.load(xdbl_ptr + b * s_db + R + N + offs_n).to(tl.float32)
        wdt = tl.load(wdt_ptr + offs_d[:, None] * s_wd + offs_r[None, :] * s_wr, mask=md[:, None] & mr[None, :],
                      other=0.0)
        dt = tl.sum(wdt.to(tl.float32) * low[None, :], axis=1)  # dt_proj, rounded as its output is
        dt = dt.to(y_ptr.dtype.element_ty).to(tl.float32) + tl.load(dtb_ptr + offs_d, mask=md, other=0.0)
        dt = tl.where(dt <= 20.0, tl.log(1.0 + tl.exp(dt)), dt)
        x = tl.load(xc_ptr + b * s_xcb + offs_d, mask=md, other=0.0).to(tl.float32)
        A = tl.load(A_ptr + offs_d[:, None] * s_ad + offs_n[None, :] * s_an, mask=md[:, None], other=0.0)
        sp = state_ptr + b * s_sb + offs_d[:, None] * s_sd + offs_n[None, :] * s_sn
        h = tl.load(sp, mask=md[:, None], other=0.0)
        h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bv[None, :]
        tl.store(sp, h, mask=md[:, None])
        y = tl.sum(h * Cv[None, :], axis=1)
        if HAS_D:
            y += x * tl.load(D_ptr + offs_d, mask=md, other=0.0)
        z = tl.load(z_ptr + b * s_zb + offs_d, mask=md, other=0.0).to(tl.float32)
        y = y * z * tl.sigmoid(z)
        tl.store(y_ptr + b * s_yb + offs_d, y.to(y_ptr.dtype.element_ty), mask=md)


def applies(xz: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor, kernel: str) -> bool:
    """The fused step serves this call: CUDA tensors, Triton, the kernel path, a small batch,
    power-of-two conv width and state size, float32 states (MMEVAL_FUSED_STEP=0 turns it off)."""
    w, n = conv_state.shape[-1], ssm_state.shape[-1]
    return (triton is not None and kernel != "ref" and xz.is_cuda and xz.shape[0] <= FUSED_STEP_MAX_BATCH
            and w & (w - 1) == 0 and n & (n - 1) == 0 and ssm_state.dtype == torch.float32
            and os.environ.get("MMEVAL_FUSED_STEP", "1") != "0")


def fused_step(xz: torch.Tensor, conv_state: torch.Tensor, ssm_state: torch.Tensor, conv_weight: torch.Tensor,
               conv_bias: torch.Tensor | None, x_proj_weight: torch.Tensor, dt_proj_weight: torch.Tensor,
               dt_bias: torch.Tensor, A: torch.Tensor, D: torch.Tensor | None, counters: torch.Tensor) -> torch.Tensor:
    """xz [B, 2 d_inner] (in_proj's output: x then z); conv_state [B, d_inner, W] and ssm_state
    [B, d_inner, N] (float32) are UPDATED IN PLACE; conv_weight [d_inner, W]; x_proj_weight
    [R + 2N, d_inner]; dt_proj_weight [d_inner, R]; dt_bias, D [d_inner] float32; A [d_inner, N]
    float32; counters [B] int32 zeros, the first kernel's arrival counts (left at zero: a captured
    graph may keep one tensor). Returns y [B, d_inner] in xz's dtype (out_proj's input). No autograd."""
    Bsz, two_d = xz.shape
    d = two_d // 2
    W, N = conv_state.shape[-1], ssm_state.shape[-1]
    J = x_proj_weight.shape[0]
    R = J - 2 * N
    x, z = xz[:, :d], xz[:, d:]
    if x.stride(1) != 1:
        raise ValueError("fused_step needs xz with unit stride along channels")
    P = triton.cdiv(d, _CONV_BLOCK)
    xc = torch.empty(Bsz, d, device=xz.device, dtype=xz.dtype)
    part = torch.empty(Bsz, P, J, device=xz.device, dtype=torch.float32)
    xdbl = torch.empty(Bsz, J, device=xz.device, dtype=xz.dtype)
    y = torch.empty(Bsz, d, device=xz.device, dtype=xz.dtype)
    cb = conv_bias if conv_bias is not None else conv_weight
    j_pad = triton.next_power_of_2(J)
    _conv_xproj_kernel[(Bsz, P)](
        x, conv_state, conv_weight, cb, x_proj_weight, xc, part, counters, xdbl, d, J, P,
        x.stride(0), conv_state.stride(0), conv_state.stride(1), conv_state.stride(2),
        conv_weight.stride(0), conv_weight.stride(1), x_proj_weight.stride(0), x_proj_weight.stride(1),
        xc.stride(0), part.stride(0), part.stride(1), xdbl.stride(0),
        W=W, BLOCK_D=_CONV_BLOCK, J_PAD=j_pad, J_CHUNK=_J_CHUNK, P_PAD=triton.next_power_of_2(P),
        HAS_CB=conv_bias is not None, num_warps=8)
    Dv = D if D is not None else dt_bias
    _dt_state_kernel[(Bsz, triton.cdiv(d, _STATE_BLOCK))](
        xdbl, xc, z, dt_proj_weight, dt_bias, A, Dv, ssm_state, y, d, R,
        xdbl.stride(0), xc.stride(0), z.stride(0), dt_proj_weight.stride(0), dt_proj_weight.stride(1),
        A.stride(0), A.stride(1), ssm_state.stride(0), ssm_state.stride(1), ssm_state.stride(2), y.stride(0),
        N=N, R_PAD=triton.next_power_of_2(R), BLOCK_D=_STATE_BLOCK, HAS_D=D is not None, num_warps=4)
    return y


def fused_step_ref(xz, conv_state, ssm_state, conv_weight, conv_bias, x_proj_weight, dt_proj_weight, dt_bias, A, D,
                   counters=None):
    """The same computation with the unfused reference ops (the oracle of the tests)."""
    from .ops import causal_conv1d_step, selective_state_step

    d = xz.shape[1] // 2
    N = ssm_state.shape[-1]
    R = x_proj_weight.shape[0] - 2 * N
    x = causal_conv1d_step(xz[:, :d], conv_state, conv_weight, conv_bias, kernel="ref")
    dt, Bm, Cm = torch.split(F.linear(x, x_proj_weight), [R, N, N], dim=-1)
    dt = F.linear(dt, dt_proj_weight)
    return selective_state_step(ssm_state, x, dt, A, Bm, Cm, D, z=xz[:, d:], dt_bias=dt_bias, dt_softplus=True,
                                kernel="ref")
