"""Tests of the Mamba-1 selective scan / conv primitives (reference path, CPU)."""
import pytest
import torch
import torch.nn.functional as F

from mmeval.models.mamba.ops import (
    causal_conv1d,
    causal_conv1d_step,
    selective_scan,
    selective_scan_from_zero_with_correction,
    selective_scan_ref,
    selective_state_step_ref,
    use_kernel,
)


def naive_scan(u, delta, A, B, C, D, z, delta_bias, h0=None):
    """Textbook step-by-step recurrence in float64 (independent of ops.py)."""
    u, delta, A, B, C, D, z, delta_bias = (t.double() for t in (u, delta, A, B, C, D, z, delta_bias))
    b, d, L = u.shape
    if B.dim() == 4:
        B = B.repeat_interleave(d // B.shape[1], dim=1)
        C = C.repeat_interleave(d // C.shape[1], dim=1)
    else:
        B = B[:, None].expand(b, d, *B.shape[1:])
        C = C[:, None].expand(b, d, *C.shape[1:])
    h = torch.zeros(b, d, A.shape[1], dtype=torch.float64) if h0 is None else h0.double().clone()
    ys = []
    for t in range(L):
        dt = F.softplus(delta[:, :, t] + delta_bias)  # [b, d]
        for bi in range(b):
            for di in range(d):
                h[bi, di] = torch.exp(dt[bi, di] * A[di]) * h[bi, di] + dt[bi, di] * B[bi, di, :, t] * u[bi, di, t]
        y = (h * C[:, :, :, t]).sum(-1) + D * u[:, :, t]
        ys.append(y * F.silu(z[:, :, t]))
    return torch.stack(ys, -1), h


def make_inputs(b=2, d=6, n=4, L=9, groups=None, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g)

    u, delta, z = r(b, d, L), r(b, d, L) * 0.5, r(b, d, L)
    A = -torch.exp(r(d, n) * 0.5)
    if groups:
        B, C = r(b, groups, n, L), r(b, groups, n, L)
    else:
        B, C = r(b, n, L), r(b, n, L)
    return u, delta, A, B, C, r(d), z, r(d) * 0.3


@pytest.mark.parametrize("groups", [None, 2])
def test_reference_scan_matches_naive_recurrence(groups):
    u, delta, A, B, C, D, z, db = make_inputs(groups=groups)
    h0 = torch.randn(2, 6, 4)
    for init in (None, h0):
        out, last = selective_scan(u, delta, A, B, C, D, z, db, True, initial_state=init,
                                   return_last_state=True, kernel="ref")
        exp_out, exp_last = naive_scan(u, delta, A, B, C, D, z, db, init)
        assert out.dtype == torch.float32 and last.dtype == torch.float32
        torch.testing.assert_close(out.double(), exp_out, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(last.double(), exp_last, rtol=1e-5, atol=1e-5)
    # the initial state matters (the test above could not pass with it ignored)
    assert not torch.allclose(selective_scan(u, delta, A, B, C, D, z, db, True, initial_state=h0),
                              selective_scan(u, delta, A, B, C, D, z, db, True))


def test_reference_scan_chunking_is_invisible(monkeypatch):
    from mmeval.models.mamba import ops
    u, delta, A, B, C, D, z, db = make_inputs(L=11)
    full = selective_scan_ref(u, delta, A, B, C, D, z, db, True, return_last_state=True)
    monkeypatch.setattr(ops, "_CHUNK_ELEMS", 2 * 6 * 4 * 3)  # chunks of 3 steps
    chunked = ops.selective_scan_ref(u, delta, A, B, C, D, z, db, True, return_last_state=True)
    torch.testing.assert_close(full, chunked, rtol=0, atol=0)


@pytest.mark.parametrize("groups", [None, 3])
def test_kernel_path_correction_equals_reference_with_initial_state(groups):
    u, delta, A, B, C, D, z, db = make_inputs(groups=groups, L=13, seed=1)
    h0 = torch.randn(2, 6, 4) * 2
    exp_out, exp_last = selective_scan_ref(u, delta, A, B, C, D, z, db, True, initial_state=h0,
                                           return_last_state=True)
    # the very function the kernel path uses, with the reference scan started from zero
    out, last = selective_scan_from_zero_with_correction(
        selective_scan_ref, u, delta, A, B, C, D, z, db, True, initial_state=h0, return_last_state=True)
    torch.testing.assert_close(out, exp_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last, exp_last, rtol=1e-5, atol=1e-5)
    zero_out = selective_scan_ref(u, delta, A, B, C, D, z, db, True)
    assert (zero_out - exp_out).abs().max() > 1e-2  # correction is not a no-op


def test_correction_with_padded_steps_keeps_state():
    # delta_raw = -inf gives an effective step of exactly 0: the state passes unchanged.
    u, delta, A, B, C, D, z, db = make_inputs(L=7, seed=2)
    delta = delta.clone()
    delta[0, :, 4:] = float("-inf")
    h0 = torch.randn(2, 6, 4)
    _, last_full = selective_scan_ref(u, delta, A, B, C, D, z, db, True, initial_state=h0, return_last_state=True)
    _, last_trunc = selective_scan_ref(u[:, :, :4], delta[:, :, :4], A, B[..., :4], C[..., :4], D,
                                       z[:, :, :4], db, True, initial_state=h0, return_last_state=True)
    assert torch.equal(last_full[0], last_trunc[0])
    _, last_corr = selective_scan_from_zero_with_correction(
        selective_scan_ref, u, delta, A, B, C, D, z, db, True, initial_state=h0, return_last_state=True)
    torch.testing.assert_close(last_corr[0], last_trunc[0], rtol=1e-5, atol=1e-6)


def test_bf16_inputs_keep_fp32_state():
    u, delta, A, B, C, D, z, db = make_inputs()
    out, last = selective_scan(u.bfloat16(), delta.bfloat16(), A, B.bfloat16(), C.bfloat16(), D,
                               z.bfloat16(), db, True, return_last_state=True)
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32
    ref = selective_scan(u, delta, A, B, C, D, z, db, True)
    assert (out.float() - ref).abs().max() < 0.1


def test_scan_backward_reaches_all_inputs():
    u, delta, A, B, C, D, z, db = (t.requires_grad_() for t in make_inputs())
    h0 = torch.randn(2, 6, 4, requires_grad=True)
    out, last = selective_scan(u, delta, A, B, C, D, z, db, True, initial_state=h0, return_last_state=True)
    (out.square().sum() + last.sum()).backward()
    for t in (u, delta, A, B, C, D, z, db, h0):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_state_step_matches_scan():
    u, delta, A, B, C, D, z, db = make_inputs(L=5)
    out, last = selective_scan_ref(u, delta, A, B, C, D, z, db, True, return_last_state=True)
    h = torch.zeros(2, 6, 4)
    for t in range(5):
        y, h = selective_state_step_ref(
            h, u[:, :, t], delta[:, :, t], A, B[:, :, t], C[:, :, t], D, z[:, :, t], db, True
        )
        torch.testing.assert_close(y, out[:, :, t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, last, rtol=1e-5, atol=1e-6)


def test_conv_initial_state_and_step():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 9, generator=g)
    w, bias = torch.randn(5, 4, generator=g), torch.randn(5, generator=g)
    full = causal_conv1d(x, w, bias, kernel="ref")
    expected = F.silu(F.conv1d(x, w.unsqueeze(1), bias, padding=3, groups=5)[..., :9])
    torch.testing.assert_close(full, expected, rtol=1e-5, atol=1e-6)
    # split at 6: continue from the 3 preceding inputs
    tail = causal_conv1d(x[:, :, 6:], w, bias, initial_state=x[:, :, 3:6], kernel="ref")
    torch.testing.assert_close(tail, full[:, :, 6:], rtol=1e-5, atol=1e-6)
    state = torch.zeros(2, 5, 4)
    for t in range(9):
        y = causal_conv1d_step(x[:, :, t], state, w, bias, kernel="ref")
        torch.testing.assert_close(y, full[:, :, t], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state, x[:, :, 5:])


def test_kernel_modes_without_cuda():
    x = torch.zeros(1, 2, 3)
    assert use_kernel("auto", x, "scan") is False
    assert use_kernel("ref", x, "scan") is False
    with pytest.raises(RuntimeError, match="CUDA"):
        use_kernel("cuda", x, "scan")
    with pytest.raises(ValueError):
        use_kernel("gpu", x, "scan")
