"""The short-sequence Triton scan (mmeval/models/mamba/triton_scan.py) against the PyTorch
reference scan, run on the CPU through Triton's interpreter (TRITON_INTERPRET=1 must be set
before triton is imported, hence a subprocess). On the GPU, bench/mamba_kernel_check.py checks
the compiled kernel inside the model (prefix reuse vs full recomputation)."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import torch
    from mmeval.models.mamba import triton_scan
    from mmeval.models.mamba.ops import selective_scan_ref

    torch.manual_seed(0)
    b, d, l, n = 3, 40, 7, 16   # d not a multiple of the block: masked channels
    u, dt, z = torch.randn(b, d, l), torch.randn(b, d, l) * 0.5, torch.randn(b, d, l)
    dt[1, :, 5:] = float("-inf")  # right padding: the state must pass unchanged
    A, D, bias = -torch.rand(d, n) * 2, torch.randn(d), torch.randn(d) * 0.1
    B, C, h0 = torch.randn(b, n, l), torch.randn(b, n, l), torch.randn(b, d, n)
    worst = 0.0
    for h in (h0, None):
        for zz in (z, None):
            for DD, bb, sp, step in ((D, bias, True, dt), (None, None, False, dt.exp().nan_to_num(0.0))):
                ref, ref_last = selective_scan_ref(u, step, A, B, C, DD, zz, bb, sp, h, True)
                out, last = triton_scan.short_scan(u, step, A, B, C, DD, zz, bb, sp, h, block_d=16)
                worst = max(worst, (out - ref).abs().max().item(), (last - ref_last).abs().max().item())
    # ragged lengths applied in the kernel == delta = -inf on the pad steps
    lens = torch.tensor([7, 3, 5])
    dpad = dt.masked_fill(torch.arange(l).view(1, 1, l) >= lens.view(b, 1, 1), float("-inf"))
    for h in (h0, None):
        ref, ref_last = selective_scan_ref(u, dpad, A, B, C, D, z, bias, True, h, True)
        out, last = triton_scan.short_scan(u, dt, A, B, C, D, z, bias, True, h, lengths=lens, block_d=16)
        worst = max(worst, (out - ref).abs().max().item(), (last - ref_last).abs().max().item())
    # B and C as the mixer passes them: views [b, n, l] of one [(b l), R + 2N] projection
    x_dbl = torch.randn(b * l, 5 + 2 * n)
    Bv, Cv = (x_dbl[:, 5 + i * n: 5 + (i + 1) * n].view(b, l, n).transpose(1, 2) for i in range(2))
    ref, ref_last = selective_scan_ref(u, dt, A, Bv.contiguous(), Cv.contiguous(), D, z, bias, True, h0, True)
    out, last = triton_scan.short_scan(u, dt, A, Bv, Cv, D, z, bias, True, h0)
    worst = max(worst, (out - ref).abs().max().item(), (last - ref_last).abs().max().item())
    # the padded sequence's last state is its state after 5 steps
    _, last5 = selective_scan_ref(u[1:2, :, :5], dt[1:2, :, :5], A, B[1:2, :, :5], C[1:2, :, :5], D, z[1:2, :, :5],
                                  bias, True, h0[1:2], True)
    _, last = triton_scan.short_scan(u, dt, A, B, C, D, z, bias, True, h0)
    worst = max(worst, (last[1:2] - last5).abs().max().item())
    # feature-major strided input (the mixer's layout), bfloat16 activations
    ub = torch.randn(d, b, l).permute(1, 0, 2).to(torch.bfloat16)
    ref, _ = selective_scan_ref(ub, dt, A, B, C, D, z, bias, True, h0, True)
    out, _ = triton_scan.short_scan(ub, dt, A, B, C, D, z, bias, True, h0)
    assert out.dtype == torch.bfloat16
    rel = ((out.float() - ref.float()).abs().max() / ref.float().abs().max()).item()
    print(worst, rel)
""")


@pytest.mark.slow  # a subprocess importing torch and triton, then interpreting the kernel
def test_short_scan_matches_reference_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    worst, rel = (float(x) for x in res.stdout.split())
    assert worst < 2e-5  # float32 throughout, only the summation order differs
    assert rel < 1e-2  # bfloat16 output: one rounding
