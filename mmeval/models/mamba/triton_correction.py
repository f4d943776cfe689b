"""Triton kernel for the initial-state term of a selective scan continued from a cached state.

    corr[b, d, t] = sum_n C[b, n, t] * exp(A[d, n] * S[b, d, t]) * h[b, d, n],   S = cumsum(delta)

In plain PyTorch this materialises a float32 [b, d, l, n] tensor several times (about 4 GB of
memory traffic per layer for 64 suffixes of 25 tokens at the 2.8B size); here each program keeps
a [BLOCK_D, BLOCK_L] tile in registers and loops over the 16 state channels, reading only S, C, A
and h. Used by the kernel path on CUDA; the PyTorch formula in ops.py is the reference.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - optional on CPU-only installs
    triton = None


if triton is not None:

    @triton.jit
    def _state_term_kernel(S_ptr, A_ptr, C_ptr, h_ptr, out_ptr, D, L,
                           s_sb, s_sd, s_sl, s_ad, s_an, s_cb, s_cn, s_cl, s_hb, s_hd, s_hn, s_ob, s_od, s_ol,
                           N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_L: tl.constexpr):
        b = tl.program_id(0)
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        offs_l = tl.program_id(2) * BLOCK_L + tl.arange(0, BLOCK_L)
        md = offs_d < D
        ml = offs_l < L
        m2 = md[:, None] & ml[None, :]
        S = tl.load(S_ptr + b * s_sb + offs_d[:, None] * s_sd + offs_l[None, :] * s_sl, mask=m2, other=0.0)
        acc = tl.zeros((BLOCK_D, BLOCK_L), dtype=tl.float32)
        for n in tl.static_range(N):
            a = tl.load(A_ptr + offs_d * s_ad + n * s_an, mask=md, other=0.0)
            hv = tl.load(h_ptr + b * s_hb + offs_d * s_hd + n * s_hn, mask=md, other=0.0)
            c = tl.load(C_ptr + b * s_cb + n * s_cn + offs_l * s_cl, mask=ml, other=0.0).to(tl.float32)
            acc += tl.exp(S * a[:, None]) * hv[:, None] * c[None, :]
        tl.store(out_ptr + b * s_ob + offs_d[:, None] * s_od + offs_l[None, :] * s_ol, acc, mask=m2)


def available(C: torch.Tensor) -> bool:
    """The kernel handles ungrouped C [b, n, l] on CUDA."""
    return triton is not None and C.is_cuda and C.dim() == 3


def state_term(S: torch.Tensor, A: torch.Tensor, C: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """S [b, d, l] float32 (cumulative step), A [d, n], C [b, n, l], h [b, d, n] -> [b, d, l] float32."""
    b, d, L = S.shape
    n = A.shape[-1]
    S, A, h = S.float(), A.float(), h.float()
    out = torch.empty(b, d, L, device=S.device, dtype=torch.float32)
    BLOCK_D, BLOCK_L = 64, 32
    grid = (b, triton.cdiv(d, BLOCK_D), triton.cdiv(L, BLOCK_L))
    _state_term_kernel[grid](S, A, C, h, out, d, L,
                             S.stride(0), S.stride(1), S.stride(2), A.stride(0), A.stride(1),
                             C.stride(0), C.stride(1), C.stride(2), h.stride(0), h.stride(1), h.stride(2),
                             out.stride(0), out.stride(1), out.stride(2),
                             N=n, BLOCK_D=BLOCK_D, BLOCK_L=BLOCK_L)
    return out
