"""Which selective scan to use at which length (GPU, d_inner 5120, d_state 16, bf16 activations in
the mixer's feature-major layout): mamba_ssm's kernel (plus the initial-state correction when
continuing from a state) against the sequential Triton scan (triton_scan.py) at several tile
sizes, on the shapes of the fast path: image prefixes (from zero) and question suffixes (from a
cached state). Prints GPU ms per call and the largest difference between the two outputs.
B and C are views of one [(b l), R + 2N] projection, as the mixer passes them.

    python bench/scan_lengths.py --out scan_lengths.json [--baseline OTHER_triton_scan.py]

``--baseline`` times another version of triton_scan.py (a file, e.g. an earlier commit's) beside
this one, at its own default tile.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = [  # (batch, length, from a state)
    (29, 736, False), (4, 736, False), (1, 736, False), (29, 256, False), (64, 128, False),
    (512, 24, True), (64, 24, True), (512, 8, True),
]
TILES = [(32, 1), (64, 2), (128, 4)]  # (block_d, num_warps): one channel per thread (triton_scan.py)


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("baseline_triton_scan", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure_shape(b: int, L: int, from_state: bool, A, D, bias, g, baseline=None) -> dict:
    from mmeval.benchmark.timing import cuda_ms
    from mmeval.models.mamba import ops, triton_scan

    dev, (d, n) = A.device, A.shape

    def feature_major(t):  # the mixer's layout: [d, b*l] viewed as [b, d, l]
        return t.to(dev, torch.bfloat16).reshape(d, b, L).permute(1, 0, 2)

    u, dt, z = (feature_major(torch.randn(d, b * L, generator=g) * s) for s in (1.0, 0.5, 1.0))
    # the same values time-major ([b*l, d] viewed as [b, d, l]): at one step a block of channels is contiguous
    ut, dtt, zt = (t.permute(0, 2, 1).contiguous().permute(0, 2, 1) for t in (u, dt, z))
    x_dbl = torch.randn(b * L, 160 + 2 * n, generator=g).to(dev, torch.bfloat16)  # dt_rank 160 at d_inner 5120
    B, C = (x_dbl[:, 160 + i * n: 160 + (i + 1) * n].view(b, L, n).transpose(1, 2) for i in range(2))
    h0 = torch.randn(b, d, n, generator=g).to(dev) if from_state else None

    def mamba_ssm():
        return ops.selective_scan_from_zero_with_correction(ops._kernel_scan_fn, u, dt, A, B, C, D, z, bias, True,
                                                            h0, True)

    ref_out, ref_last = mamba_ssm()
    row = {"batch": b, "length": L, "from_state": from_state, "mamba_ssm_ms": round(cuda_ms(mamba_ssm, 5), 3),
           "triton_ms": {}}
    for layout, (uu, dd, zz) in (("feature-major", (u, dt, z)), ("time-major", (ut, dtt, zt))):
        variants = {f"{layout} {bd}x{w}": functools.partial(triton_scan.short_scan, block_d=bd, num_warps=w)
                    for bd, w in TILES}
        if baseline is not None:
            variants[f"{layout} baseline"] = baseline.short_scan
        for name, fn in variants.items():
            def triton(uu=uu, dd=dd, zz=zz, fn=fn):
                return fn(uu, dd, A, B, C, D, zz, bias, True, h0)

            out, last = triton()
            diff = row.setdefault("out_rel_diff", {})
            diff[name] = round((out.float() - ref_out.float()).abs().max().item()
                               / ref_out.float().abs().max().item(), 5)
            row.setdefault("last_rel_diff", {})[name] = round((last - ref_last).abs().max().item()
                                                              / ref_last.abs().max().item(), 6)
            row["triton_ms"][name] = round(cuda_ms(triton, 5), 3)
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="scan_lengths.json")
    ap.add_argument("--baseline", default=None, help="another triton_scan.py to time beside this one")
    a = ap.parse_args()
    baseline = load_module(a.baseline) if a.baseline else None
    dev, d, n = torch.device("cuda"), 5120, 16
    g = torch.Generator(device="cpu").manual_seed(0)
    A = (-torch.rand(d, n, generator=g) * 4 - 0.5).to(dev)
    D, bias = torch.randn(d, generator=g).to(dev), (torch.randn(d, generator=g) * 0.5 - 2).to(dev)
    rows = []
    with torch.inference_mode():
        for b, L, from_state in SHAPES:
            rows.append(measure_shape(b, L, from_state, A, D, bias, g, baseline))
            print(rows[-1], flush=True)
    Path(a.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
