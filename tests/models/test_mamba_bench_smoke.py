"""Smoke test of bench/mamba_kernel_check.py --tiny (CPU, reference path)."""
import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "mamba_kernel_check.py"


def test_bench_tiny_runs_and_writes_json(tmp_path):
    spec = importlib.util.spec_from_file_location("mamba_kernel_check", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "r.json"
    mod.main(["--tiny", "--out", str(out), "--dtypes", "fp32", "--decode-tokens", "2", "--new-tokens", "3",
              "--check-batch", "2", "--check-len", "10", "--prefill-len", "8"])
    rep = json.loads(out.read_text())
    assert rep["model"]["d_model"] == 64 and rep["kernels_available"] is False
    assert rep["a"]["fp32"]["ref_prefix_reuse_rel_err"] < 1e-5
    assert rep["a"]["fp32"]["ref_step_vs_forward_rel_err"] < 1e-5
    assert rep["b"]["fp32"]["greedy_tokens_agree"] is True
    assert rep["c"]["prefill"]["seq_per_s"] > 0 and rep["c"]["decode"][0]["tok_per_s"] > 0
