"""Mamba-1 numerical primitives: selective scan, causal depthwise conv1d and their
single-step (decoding) versions, each with a pure-PyTorch reference and an optional
CUDA-kernel path (mamba_ssm / causal_conv1d, imported lazily only when used).

Conventions follow mamba_ssm's ``selective_scan_fn``: ``u, delta, z`` are ``[b, d, l]``,
``A`` is ``[d, n]``, ``B, C`` are ``[b, n, l]`` (or grouped ``[b, g, n, l]``), ``D`` and
``delta_bias`` are ``[d]``, SSM states are ``[b, d, n]`` in float32.

mamba_ssm's Mamba-1 scan kernel cannot start from a non-zero state, so the kernel path
continues from a cached state with the exact linear correction (see
:func:`apply_initial_state_correction`). That correction is also what the tests check
on CPU, by running it on top of the *reference* scan started from zero.
"""
from __future__ import annotations

import functools
import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from . import triton_correction, triton_scan

KERNEL_MODES = ("auto", "ref", "cuda")

# Elements of one float32 [b, d, chunk, n] temporary in the reference scan / correction
# (2**25 floats = 128 MiB); bounds memory for long sequences on GPU.
_CHUNK_ELEMS = 1 << 25


# ----------------------------------------------------------------------------- kernels
@functools.cache
def _import_selective_scan_fn():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # noqa: BLE001 - ImportError, or a broken build raising at import
        return None
    return selective_scan_fn


@functools.cache
def _import_selective_state_update():
    try:
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update
    except Exception:  # noqa: BLE001 - optional kernel package
        return None
    return selective_state_update


@functools.cache
def _import_causal_conv1d():
    try:
        from causal_conv1d import causal_conv1d_fn, causal_conv1d_update
    except Exception:  # noqa: BLE001 - optional kernel package
        return None
    return causal_conv1d_fn, causal_conv1d_update


@functools.cache
def _import_layer_norm_fn():
    try:
        from mamba_ssm.ops.triton.layer_norm import layer_norm_fn
    except Exception:  # noqa: BLE001 - optional kernel package
        return None
    return layer_norm_fn


def kernels_available() -> bool:
    """True when every Mamba-1 CUDA kernel (scan, state update, conv, conv update) imports."""
    return (
        torch.cuda.is_available()
        and _import_selective_scan_fn() is not None
        and _import_selective_state_update() is not None
        and _import_causal_conv1d() is not None
    )


def check_kernel_mode(kernel: str) -> str:
    if kernel not in KERNEL_MODES:
        raise ValueError(f"kernel must be one of {KERNEL_MODES}, got {kernel!r}")
    return kernel


def use_kernel(kernel: str, t: Tensor, which: str) -> bool:
    """Decide whether the CUDA kernel ``which`` ('scan', 'update', 'conv') is used for ``t``.

    'ref' never; 'cuda' always (raises if unavailable or ``t`` is not on CUDA);
    'auto' when ``t`` is on CUDA and the kernel imports.
    """
    check_kernel_mode(kernel)
    if kernel == "ref":
        return False
    importer = {
        "scan": _import_selective_scan_fn,
        "update": _import_selective_state_update,
        "conv": _import_causal_conv1d,
        "norm": _import_layer_norm_fn,
    }[which]
    if kernel == "auto":
        return t.is_cuda and importer() is not None
    if not t.is_cuda:
        raise RuntimeError(f"kernel='cuda' needs CUDA tensors, got a tensor on {t.device}")
    if importer() is None:
        pkg = "causal_conv1d" if which == "conv" else "mamba_ssm"
        raise RuntimeError(f"kernel='cuda' needs the '{pkg}' package, which could not be imported")
    return True


def fused_add_norm(hidden: Tensor, residual: Tensor | None, weight: Tensor, bias: Tensor | None, eps: float,
                   is_rms_norm: bool, residual_in_fp32: bool, prenorm: bool, kernel: str):
    """residual = residual + hidden (fp32 if asked); out = norm(residual) in the weight dtype.

    The kernel path is mamba_ssm's Triton fused add+norm (one pass instead of ~8 memory-bound
    PyTorch ops per layer); the reference computes the same in float32. Returns (out, residual)
    with ``prenorm``, else out."""
    if use_kernel(kernel, hidden, "norm"):
        return _import_layer_norm_fn()(hidden, weight, bias, residual=residual, eps=eps, prenorm=prenorm,
                                       residual_in_fp32=residual_in_fp32, is_rms_norm=is_rms_norm)
    residual = hidden if residual is None else residual + hidden
    if residual_in_fp32:
        residual = residual.float()
    xf = residual.float()
    if is_rms_norm:
        y = xf * torch.rsqrt(xf.square().mean(-1, keepdim=True) + eps) * weight.float()
    else:
        y = F.layer_norm(xf, xf.shape[-1:], weight.float(), None if bias is None else bias.float(), eps)
    out = y.to(weight.dtype)
    return (out, residual) if prenorm else out


# ------------------------------------------------------------------ reference selective scan
def _effective_delta(delta: Tensor, delta_bias: Tensor | None, delta_softplus: bool) -> Tensor:
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def _per_channel(M: Tensor, d: int) -> Tensor:
    """[b, n, l] -> [b, 1, n, l]; grouped [b, g, n, l] -> [b, d, n, l] (float32)."""
    M = M.float()
    if M.dim() == 3:
        return M.unsqueeze(1)
    if M.dim() == 4:
        return M.repeat_interleave(d // M.shape[1], dim=1)
    raise ValueError(f"B/C must be [b, n, l] or [b, g, n, l], got shape {tuple(M.shape)}")


def _chunk_len(b: int, d: int, n: int, L: int) -> int:
    return max(1, min(L, _CHUNK_ELEMS // max(1, b * d * n)))


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: Tensor | None = None,
    return_last_state: bool = False,
):
    """Pure-PyTorch selective scan (float32 inside), optionally from ``initial_state``.

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t ;  y_t = C_t . h_t + D u_t ;  y *= silu(z).
    Returns ``out`` (dtype of ``u``) or ``(out, last_state)`` with last_state float32 [b, d, n].
    """
    dtype_in = u.dtype
    b, d, L = u.shape
    n = A.shape[-1]
    uf = u.float()
    dl = _effective_delta(delta, delta_bias, delta_softplus)
    Af = A.float()
    Bc = _per_channel(B, d)  # [b, 1|d, n, l]
    Cc = _per_channel(C, d)
    if initial_state is not None:
        h = initial_state.float()
        if h.shape != (b, d, n):
            raise ValueError(f"initial_state must be {(b, d, n)}, got {tuple(h.shape)}")
    else:
        h = u.new_zeros((b, d, n), dtype=torch.float32)
    ys = []
    step = _chunk_len(b, d, n, L)
    for s in range(0, L, step):
        e = min(L, s + step)
        dchunk = dl[:, :, s:e]
        dA = torch.exp(dchunk.unsqueeze(-1) * Af[:, None, :])  # [b, d, c, n]
        dBu = (dchunk * uf[:, :, s:e]).unsqueeze(-1) * Bc[..., s:e].transpose(-1, -2)  # [b, d, c, n]
        Ct = Cc[..., s:e].transpose(-1, -2)  # [b, 1|d, c, n]
        # step-major copies unbound once: indexing step i instead makes autograd write a
        # zero-filled full-size gradient per step (quadratic in l; half of a CPU training step)
        steps = (t.movedim(2, 0).contiguous().unbind(0) for t in (dA, dBu, Ct))
        for dA_i, dBu_i, C_i in zip(*steps, strict=True):
            h = dA_i * h + dBu_i
            ys.append((h * C_i).sum(-1))
    y = torch.stack(ys, dim=-1) if ys else uf.new_zeros((b, d, 0))
    if D is not None:
        y = y + uf * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    out = y.to(dtype_in)
    return (out, h) if return_last_state else out


# ------------------------------------------------------- continuing from a state (kernel path)
def apply_initial_state_correction(
    out0: Tensor,
    last0: Tensor,
    delta_eff: Tensor,
    A: Tensor,
    C: Tensor,
    z: Tensor | None,
    initial_state: Tensor,
    use_triton: bool = False,
):
    """Add the contribution of a non-zero initial state ``h`` to a scan started from zero.

    The recurrence is linear in the state, so with cumulative step ``S_t = sum_{k<=t} delta_k``:
        y_t = y0_t + silu(z_t) * C_t . (exp(S_t A) * h)      h_T = h0_T + exp(S_T A) * h
    ``delta_eff`` is the effective step (bias added, softplus applied), float32 [b, d, l].
    Returns ``(out, last_state)``; differentiable in PyTorch.
    """
    b, d, L = delta_eff.shape
    n = A.shape[-1]
    Af = A.float()
    h = initial_state.float()
    if L == 0:
        return out0, last0 + h
    cum = torch.cumsum(delta_eff.float(), dim=-1)  # [b, d, l]
    if use_triton and triton_correction.available(C) and os.environ.get("MMEVAL_TRITON_CORRECTION", "1") != "0":
        corr = triton_correction.state_term(cum, Af, C, h)  # fused: no [b, d, l, n] temporaries
    else:
        Cc = _per_channel(C, d)
        parts = []
        step = _chunk_len(b, d, n, L)
        for s in range(0, L, step):
            e = min(L, s + step)
            decay = torch.exp(cum[:, :, s:e].unsqueeze(-1) * Af[:, None, :])  # [b, d, c, n]
            parts.append((decay * h.unsqueeze(2) * Cc[..., s:e].transpose(-1, -2)).sum(-1))
        corr = torch.cat(parts, dim=-1)
    if z is not None:
        corr = corr * F.silu(z.float())
    out = (out0.float() + corr).to(out0.dtype)
    last = last0.float() + torch.exp(cum[:, :, -1:] * Af) * h
    return out, last


def selective_scan_from_zero_with_correction(
    scan_fn: Callable,
    u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
    initial_state=None, return_last_state=False,
):
    """Run ``scan_fn`` (mamba_ssm ``selective_scan_fn`` signature, no initial state) and
    continue from ``initial_state`` through :func:`apply_initial_state_correction`.
    This is exactly how the kernel path handles a cached state; tests pass the reference
    scan as ``scan_fn``."""
    if initial_state is None:
        return scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                       return_last_state=return_last_state)
    out0, last0 = scan_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state=True)
    delta_eff = _effective_delta(delta, delta_bias, delta_softplus)
    # the fused Triton term serves inference only (no autograd through it)
    use_triton = scan_fn is _kernel_scan_fn and not torch.is_grad_enabled()
    out, last = apply_initial_state_correction(out0, last0, delta_eff, A, C, z, initial_state, use_triton)
    return (out, last) if return_last_state else out


def _kernel_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                    return_last_state=False):
    fn = _import_selective_scan_fn()
    D = D.float() if D is not None else None
    delta_bias = delta_bias.float() if delta_bias is not None else None
    res = fn(u, delta, A.float(), B.contiguous(), C.contiguous(), D, z, delta_bias, delta_softplus, return_last_state)
    if return_last_state:
        out, last = res
        return out, last.float()
    return res


def _triton_scan_on() -> bool:
    return not torch.is_grad_enabled() and os.environ.get("MMEVAL_TRITON_SCAN", "1") != "0"


def time_major_applies(hidden: Tensor, kernel: str, from_state: bool) -> bool:
    """The mixer lays its activations out time-major for the Triton scan (inference on CUDA with the
    kernels) where that scan is the faster one (triton_scan.time_major_wins); MMEVAL_TRITON_SCAN=0
    turns it off."""
    return (hidden.is_cuda and triton_scan.triton is not None and _triton_scan_on()
            and triton_scan.time_major_wins(hidden.shape[0], hidden.shape[1], from_state)
            and use_kernel(kernel, hidden, "scan"))


def _short_scan_applies(u: Tensor, B: Tensor, A: Tensor, from_state: bool) -> bool:
    """Inference on time-major activations where the Triton scan (triton_scan.py) beats mamba_ssm's
    kernel (plus the initial-state correction from a state): triton_scan.time_major_wins.
    MMEVAL_TRITON_SCAN=0 turns it off."""
    return (u.stride(1) == 1 and triton_scan.time_major_wins(u.shape[0], u.shape[-1], from_state)
            and _triton_scan_on() and triton_scan.available(u, B, A))


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    initial_state: Tensor | None = None,
    return_last_state: bool = False,
    lengths: Tensor | None = None,
    kernel: str = "auto",
):
    """Selective scan with mamba_ssm ``selective_scan_fn`` shapes plus ``initial_state``.

    ``lengths`` [b]: right padding; the steps from a row's length on get the raw step -inf (an
    effective step of 0: the state passes them unchanged). The Triton kernel applies it as it reads
    the steps; the other paths mask a copy of ``delta``.

    ``kernel``: 'auto' (CUDA kernel when on CUDA and mamba_ssm imports), 'ref' or 'cuda'.
    Returns ``out`` [b, d, l] (dtype of ``u``) or ``(out, last_state)`` (float32 [b, d, n]).
    On the kernel path the gradient does not flow through the returned last state of the
    zero-start scan (a mamba_ssm limitation); through ``out`` it does.
    """
    if lengths is not None and not delta_softplus:
        raise ValueError("selective_scan: lengths needs delta_softplus=True (pad steps carry delta = -inf)")
    on_kernel = use_kernel(kernel, u, "scan")
    if on_kernel and _short_scan_applies(u, B, A, initial_state is not None):
        out, last = triton_scan.short_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state,
                                           lengths=lengths)
        return (out, last) if return_last_state else out
    if lengths is not None:
        pad = torch.arange(u.shape[-1], device=u.device).view(1, 1, -1) >= lengths.view(-1, 1, 1)
        delta = delta.masked_fill(pad, float("-inf"))
    if on_kernel:
        return selective_scan_from_zero_with_correction(
            _kernel_scan_fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
            initial_state, return_last_state,
        )
    return selective_scan_ref(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, initial_state, return_last_state
    )


def selective_state_step_ref(
    state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Tensor | None = None, z: Tensor | None = None, dt_bias: Tensor | None = None,
    dt_softplus: bool = False,
):
    """One recurrence step. x, dt, z: [b, d]; B, C: [b, n]; state: [b, d, n] float32.
    Returns ``(y [b, d] in x.dtype, new_state float32)``; does not modify ``state``."""
    dtf = dt.float()
    if dt_bias is not None:
        dtf = dtf + dt_bias.float()
    if dt_softplus:
        dtf = F.softplus(dtf)
    xf = x.float()
    dA = torch.exp(dtf.unsqueeze(-1) * A.float())
    new_state = dA * state.float() + (dtf * xf).unsqueeze(-1) * B.float().unsqueeze(1)
    y = (new_state * C.float().unsqueeze(1)).sum(-1)
    if D is not None:
        y = y + xf * D.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y.to(x.dtype), new_state


def selective_state_step(
    state: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
    D: Tensor | None = None, z: Tensor | None = None, dt_bias: Tensor | None = None,
    dt_softplus: bool = False, kernel: str = "auto",
):
    """One decoding step that UPDATES ``state`` IN PLACE (float32) and returns y [b, d]."""
    if use_kernel(kernel, x, "update"):
        fn = _import_selective_state_update()
        return fn(state, x, dt, A.float(), B, C, D.float() if D is not None else None, z=z,
                  dt_bias=dt_bias.float() if dt_bias is not None else None,
                  dt_softplus=dt_softplus)
    y, new_state = selective_state_step_ref(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
    state.copy_(new_state)
    return y


# ------------------------------------------------------------------------ causal conv1d
def causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    initial_state: Tensor | None = None,
    kernel: str = "auto",
) -> Tensor:
    """Causal depthwise conv + SiLU. x: [b, d, l]; weight: [d, w]; initial_state: [b, d, w-1]
    (the inputs preceding x). The reference computes in float32; output has x's dtype."""
    w = weight.shape[-1]
    if use_kernel(kernel, x, "conv"):
        conv_fn, _ = _import_causal_conv1d()
        if initial_state is None and (x.stride(-1) == 1 or x.stride(1) != 1):
            # the kernel takes any batch/channel strides as long as the time axis is unit-stride
            return conv_fn(x if x.stride(-1) == 1 else x.contiguous(), weight, bias, activation="silu")
        # initial_states needs the channel-last layout (stride(1) == 1) for x and the state; time-major
        # activations are channel-last already (made dense: x may be one half of in_proj's output)
        x_cl = x.transpose(1, 2).contiguous().transpose(1, 2)
        if initial_state is None:
            return conv_fn(x_cl, weight, bias, activation="silu")
        init_cl = initial_state.to(x.dtype).transpose(1, 2).contiguous().transpose(1, 2)
        return conv_fn(x_cl, weight, bias, initial_states=init_cl, activation="silu")
    xf = x.float()
    if initial_state is None:
        xf = F.pad(xf, (w - 1, 0))
    else:
        xf = torch.cat([initial_state.float(), xf], dim=-1)
    out = F.conv1d(xf, weight.float().unsqueeze(1), bias.float() if bias is not None else None,
                   groups=weight.shape[0])
    return F.silu(out).to(x.dtype)


def causal_conv1d_step(
    x: Tensor, conv_state: Tensor, weight: Tensor, bias: Tensor | None = None,
    kernel: str = "auto",
) -> Tensor:
    """One decoding step of the conv. x: [b, d]; conv_state: [b, d, w] (the last w inputs,
    oldest first, mamba_ssm's layout) is shifted IN PLACE to include x. Returns SiLU(conv) [b, d]."""
    if use_kernel(kernel, x, "conv"):
        _, update_fn = _import_causal_conv1d()
        return update_fn(x, conv_state, weight, bias, "silu")
    new_state = torch.cat([conv_state[:, :, 1:], x.unsqueeze(-1).to(conv_state.dtype)], dim=-1)
    conv_state.copy_(new_state)
    w = weight.shape[-1]
    out = (conv_state[:, :, -w:].float() * weight.float()).sum(-1)
    if bias is not None:
        out = out + bias.float()
    return F.silu(out).to(x.dtype)
