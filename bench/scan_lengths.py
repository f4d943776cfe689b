"""Which selective scan to use at which length (GPU, d_inner 5120, d_state 16, bf16 activations in
the mixer's feature-major layout): mamba_ssm's kernel (plus the initial-state correction when
continuing from a state) against the sequential Triton scan (triton_scan.py) at several tile
sizes, on the shapes of the fast path: image prefixes (from zero) and question suffixes (from a
cached state). Prints GPU ms per call and the largest difference between the two outputs.

    python bench/scan_lengths.py --out scan_lengths.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = [  # (batch, length, from a state)
    (29, 736, False), (4, 736, False), (1, 736, False), (29, 256, False), (64, 128, False),
    (512, 24, True), (64, 24, True), (512, 8, True),
]
TILES = [(32, 2), (64, 2), (64, 4), (128, 4), (16, 1)]  # (block_d, num_warps)


def measure_shape(b: int, L: int, from_state: bool, A, D, bias, g) -> dict:
    from mmeval.benchmark.timing import cuda_ms
    from mmeval.models.mamba import ops, triton_scan

    dev, (d, n) = A.device, A.shape

    def feature_major(t):  # the mixer's layout: [d, b*l] viewed as [b, d, l]
        return t.to(dev, torch.bfloat16).reshape(d, b, L).permute(1, 0, 2)

    u, dt, z = (feature_major(torch.randn(d, b * L, generator=g) * s) for s in (1.0, 0.5, 1.0))
    # the same values time-major ([b*l, d] viewed as [b, d, l]): at one step a block of channels is contiguous
    ut, dtt, zt = (t.permute(0, 2, 1).contiguous().permute(0, 2, 1) for t in (u, dt, z))
    B, C = (torch.randn(b, n, L, generator=g).to(dev, torch.bfloat16) for _ in range(2))
    h0 = torch.randn(b, d, n, generator=g).to(dev) if from_state else None

    def mamba_ssm():
        return ops.selective_scan_from_zero_with_correction(ops._kernel_scan_fn, u, dt, A, B, C, D, z, bias, True,
                                                            h0, True)

    ref_out, ref_last = mamba_ssm()
    row = {"batch": b, "length": L, "from_state": from_state, "mamba_ssm_ms": round(cuda_ms(mamba_ssm, 5), 3),
           "triton_ms": {}}
    for layout, (uu, dd, zz) in (("feature-major", (u, dt, z)), ("time-major", (ut, dtt, zt))):
        for block_d, warps in TILES:
            def triton(uu=uu, dd=dd, zz=zz, block_d=block_d, warps=warps):
                return triton_scan.short_scan(uu, dd, A, B, C, D, zz, bias, True, h0, block_d=block_d,
                                              num_warps=warps)

            out, last = triton()
            row.setdefault("out_rel_diff", round((out.float() - ref_out.float()).abs().max().item()
                                                 / ref_out.float().abs().max().item(), 5))
            row.setdefault("last_rel_diff", round((last - ref_last).abs().max().item()
                                                  / ref_last.abs().max().item(), 6))
            row["triton_ms"][f"{layout} {block_d}x{warps}"] = round(cuda_ms(triton, 5), 3)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="scan_lengths.json")
    a = ap.parse_args()
    dev, d, n = torch.device("cuda"), 5120, 16
    g = torch.Generator(device="cpu").manual_seed(0)
    A = (-torch.rand(d, n, generator=g) * 4 - 0.5).to(dev)
    D, bias = torch.randn(d, generator=g).to(dev), (torch.randn(d, generator=g) * 0.5 - 2).to(dev)
    rows = []
    with torch.inference_mode():
        for b, L, from_state in SHAPES:
            rows.append(measure_shape(b, L, from_state, A, D, bias, g))
            print(rows[-1], flush=True)
    Path(a.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
