"""Language-model-only comparison paths at the same size, measured in the same run: mamba_ssm's
own MambaLMHeadModel (forward and generate with CUDA graphs), transformers' MambaForCausalLM,
a transformer of the same size (Phi-2's config through transformers), and our engine."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int = 3) -> float:
    """Median seconds of fn() after one warm-up call, synchronising around each call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _peak(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def measure(name: str, model_fn: Callable[[], Any], forward: Callable[[Any, torch.Tensor], Any],
            generate: Callable[[Any, torch.Tensor, int], Any] | None, device: torch.device, vocab: int,
            batch: int, seqlen: int, new_tokens: int, repeats: int) -> dict[str, Any]:
    """Forward of batch x seqlen prompts (last-token logits) and batch-1 generation of new_tokens."""
    out: dict[str, Any] = {"path": name}
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model = model_fn()
        g = torch.Generator(device="cpu").manual_seed(0)
        ids = torch.randint(0, vocab, (batch, seqlen), generator=g).to(device)
        with torch.inference_mode():
            s = _timed(lambda: forward(model, ids), device, repeats)
            out["forward_seq_per_s"] = round(batch / s, 2)
            if generate is not None:
                one = ids[:1]
                s = _timed(lambda: generate(model, one, new_tokens), device, max(1, repeats - 1))
                out["generate_b1_tok_per_s"] = round(new_tokens / s, 1)
        out["peak_gib"] = _peak(device)
        model = None  # free it before the next path
    except Exception as exc:  # a missing optional package or an API change: report, don't abort
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    _free()
    return out


def mamba_ssm_path(d_model: int, n_layer: int, vocab: int, device, dtype):
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    cfg = MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=vocab, ssm_cfg={"layer": "Mamba1"},
                      rms_norm=True, residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=8)
    return (lambda: MambaLMHeadModel(cfg, device=device, dtype=dtype).eval(),
            lambda m, ids: m(ids, num_last_tokens=1).logits,
            lambda m, ids, n: m.generate(ids, max_length=ids.shape[1] + n, cg=True))


def hf_mamba_path(d_model: int, n_layer: int, vocab: int, device, dtype):
    from transformers import MambaConfig, MambaForCausalLM

    cfg = MambaConfig(hidden_size=d_model, num_hidden_layers=n_layer, vocab_size=vocab, state_size=16, expand=2,
                      conv_kernel=4, residual_in_fp32=True)

    def build():
        with torch.device(device):
            return MambaForCausalLM(cfg).to(dtype).eval()

    return (build, lambda m, ids: m(ids, logits_to_keep=1).logits,
            lambda m, ids, n: m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False))


def phi2_path(device, dtype):
    from transformers import PhiConfig, PhiForCausalLM

    cfg = PhiConfig()  # the defaults are Phi-2's shape: 2560 wide, 32 layers, 2.78B parameters

    def build():
        with torch.device(device):
            return PhiForCausalLM(cfg).to(dtype).eval()

    return (build, lambda m, ids: m(ids, logits_to_keep=1).logits,
            lambda m, ids, n: m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False))


def ours_path(d_model: int, n_layer: int, vocab: int, device, dtype):
    from mmeval.models.mamba import MambaConfig, MambaLM, greedy_generate

    cfg = MambaConfig(d_model=d_model, n_layer=n_layer, vocab_size=vocab)

    def gen(m, ids, n):
        out = m(input_ids=ids, return_state=True, logits="last")
        return greedy_generate(m, out.logits, out.state, max_new_tokens=n, use_cuda_graph=ids.is_cuda)

    return (
        lambda: MambaLM(cfg, device=device, dtype=dtype).eval(),
        lambda m, ids: m(input_ids=ids, logits="last").logits,
        gen,
    )


def run_all(device: torch.device, dtype: torch.dtype, d_model: int = 2560, n_layer: int = 64, vocab: int = 50280,
            batch: int = 32, seqlen: int = 800, new_tokens: int = 256, repeats: int = 3,
            paths: tuple[str, ...] = ("ours", "mamba_ssm", "transformers_mamba", "phi2")) -> list[dict[str, Any]]:
    builders = {
        "ours": lambda: ours_path(d_model, n_layer, vocab, device, dtype),
        "mamba_ssm": lambda: mamba_ssm_path(d_model, n_layer, vocab, device, dtype),
        "transformers_mamba": lambda: hf_mamba_path(d_model, n_layer, vocab, device, dtype),
        "phi2": lambda: phi2_path(device, dtype),
    }
    results = []
    for name in paths:
        try:
            build, fwd, gen = builders[name]()
        except Exception as exc:
            results.append({"path": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
            continue
        v = 51200 if name == "phi2" else vocab
        results.append(measure(name, build, fwd, gen, device, v, batch, seqlen, new_tokens, repeats))
    return results
