"""Check and time the mmeval Mamba-1 engine: kernel path (mamba_ssm + causal_conv1d) vs the
pure-PyTorch reference on the same weights, GPU batch invariance, prefill/decode throughput.

On an H100 with mamba-ssm and causal-conv1d installed (random-weight 2.8B-size model):

    python bench/mamba_kernel_check.py --out mamba_kernel_check.json
    python bench/mamba_kernel_check.py --checkpoint /path/to/mamba-2.8b-slimpj --out real.json

CPU smoke test (tiny model, reference path only):

    python bench/mamba_kernel_check.py --tiny --out /tmp/mamba_tiny.json

Model size comes from the flags: --d-model/--n-layer/--vocab-size/--d-state/--d-conv/--expand
(defaults: mamba-2.8b, d_model 2560, 64 layers, vocab 50280 padded to a multiple of 8),
--tiny overrides them with a small model, --checkpoint reads them from config.json.

Reports
 (a) per dtype (fp32, bf16): max relative error of last-token logits kernel vs reference
     (max|k - r| / max|r|), whether 32 greedy tokens agree, plus per path: prefix-state
     reuse vs full recomputation and step-wise decoding vs full forward;
 (b) batch invariance on the device: batched right-padded prefill vs one sequence at a time
     (logits, states, greedy tokens);
 (c) prefill throughput (batch 32 x 800 tokens, last-token logits, sequences/s), decode
     throughput (batch 1 and 64, tokens/s, eager and CUDA graphs, graph tokens == eager
     tokens) and peak memory.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmeval.models.mamba import (
    MambaConfig,
    MambaLM,
    greedy_generate,
    kernels_available,
    load_mamba_lm,
)
from mmeval.models.mamba.checkpoint import load_state_into

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


# ----------------------------------------------------------------------------- helpers
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="mamba_kernel_check.json", help="JSON results path")
    p.add_argument("--tiny", action="store_true", help="tiny model on CPU, reference path only (smoke test)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--checkpoint", default=None, help="load real weights (directory or hub id) instead of random")
    p.add_argument("--d-model", type=int, default=2560)
    p.add_argument("--n-layer", type=int, default=64)
    p.add_argument("--vocab-size", type=int, default=50280)
    p.add_argument("--pad-multiple", type=int, default=8)
    p.add_argument("--d-state", type=int, default=16)
    p.add_argument("--d-conv", type=int, default=4)
    p.add_argument("--expand", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtypes", default="fp32,bf16", help="dtypes for (a)/(b)")
    p.add_argument("--check-batch", type=int, default=4, help="(a)/(b): number of prompts")
    p.add_argument("--check-len", type=int, default=96, help="(a)/(b): longest prompt (others shorter)")
    p.add_argument("--new-tokens", type=int, default=32, help="(a)/(b): greedy tokens compared")
    p.add_argument("--prefill-batch", type=int, default=32)
    p.add_argument("--prefill-len", type=int, default=800)
    p.add_argument("--decode-batches", default="1,64")
    p.add_argument("--decode-tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", default="", help="comma list of sections to skip: a,b,c")
    a = p.parse_args(argv)
    if a.tiny:
        a.device = a.device or "cpu"
        a.d_model, a.n_layer, a.vocab_size, a.d_state = 64, 3, 100, 16
        a.check_len, a.new_tokens = min(a.check_len, 24), min(a.new_tokens, 8)
        a.prefill_batch, a.prefill_len = min(a.prefill_batch, 4), min(a.prefill_len, 32)
        a.decode_tokens, a.repeats = min(a.decode_tokens, 8), 1
        a.decode_batches = "1,4"
    a.device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return a


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device):
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def rel_err(a, b) -> float:
    a, b = a.float(), b.float()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def first_mismatch(x, y):
    for i, (p, q) in enumerate(zip(x, y, strict=False)):
        if p != q:
            return i
    return None if len(x) == len(y) else min(len(x), len(y))


def make_prompts(args, vocab, n, max_len, seed):
    g = torch.Generator().manual_seed(seed)
    lengths = [max(2, max_len - (i * max_len) // (2 * max(1, n))) for i in range(n)]
    ids = torch.zeros(n, max_len, dtype=torch.long)
    for i, L in enumerate(lengths):
        ids[i, :L] = torch.randint(0, vocab, (L,), generator=g)
    return ids.to(args.device), torch.tensor(lengths, device=args.device)


def build_models(args):
    """{dtype name: model} on args.device sharing the same weights (bf16 made from fp32)."""
    names = [d for d in args.dtypes.split(",") if d]
    if args.checkpoint:
        base = load_mamba_lm(args.checkpoint, device=args.device, dtype=torch.float32)
    else:
        cfg = MambaConfig(d_model=args.d_model, n_layer=args.n_layer, vocab_size=args.vocab_size,
                          d_state=args.d_state, d_conv=args.d_conv, expand=args.expand,
                          pad_vocab_size_multiple=args.pad_multiple)
        torch.manual_seed(args.seed)
        base = MambaLM(cfg, device=args.device, dtype=torch.float32).eval()
    models = {}
    for name in names:
        if DTYPES[name] == torch.float32:
            models[name] = base
        else:
            with torch.device("meta"):
                m = MambaLM(base.config, dtype=DTYPES[name])
            m = m.to_empty(device=args.device)
            m.tie_weights()
            models[name] = load_state_into(m, base.state_dict()).eval()
    if "fp32" not in names:
        del base
    return models


# ----------------------------------------------------------------------------- sections
@torch.no_grad()
def run_path(model, kernel, ids, lengths, new_tokens):
    model.kernel = kernel
    out = model(ids, lengths=lengths, return_state=True, logits="last")
    toks = greedy_generate(model, out.logits, out.state, new_tokens)
    # prefix reuse: first half as prefix (shortest prompt decides), rest with lengths
    split = int(lengths.min()) // 2
    pre = model(ids[:, :split], return_state=True, logits="none").state
    suf = model(ids[:, split:], lengths=lengths - split, state=pre, logits="last").logits
    # step-wise decoding vs forward: feed the next 4 prompt tokens of the longest sequence
    L = int(lengths.max())
    i = int(lengths.argmax())
    k = min(4, L - 1)
    full = model(ids[i:i + 1, :L], logits="all").logits[0]
    st = model(ids[i:i + 1, :L - k], return_state=True, logits="none").state
    step_err = 0.0
    for t in range(L - k, L):
        lg, st = model.step(ids[i:i + 1, t], state=st, inplace=True)
        step_err = max(step_err, rel_err(lg[0], full[t]))
    return {"logits": out.logits, "tokens": toks, "prefix_reuse_rel_err": rel_err(suf, out.logits),
            "step_vs_forward_rel_err": step_err}


def section_a(args, models, kernel_ok):
    res = {}
    for name, model in models.items():
        ids, lengths = make_prompts(args, model.config.vocab_size, args.check_batch, args.check_len, args.seed + 1)
        r = {"ref": run_path(model, "ref", ids, lengths, args.new_tokens)}
        if kernel_ok:
            r["cuda"] = run_path(model, "cuda", ids, lengths, args.new_tokens)
        row = {f"{p}_{k}": v[k] for p, v in r.items() for k in ("prefix_reuse_rel_err", "step_vs_forward_rel_err")}
        if kernel_ok:
            row["kernel_vs_ref_logits_rel_err"] = rel_err(r["cuda"]["logits"], r["ref"]["logits"])
            row["greedy_tokens_agree"] = r["cuda"]["tokens"] == r["ref"]["tokens"]
            row["greedy_first_mismatch"] = [
                first_mismatch(a, b) for a, b in zip(r["cuda"]["tokens"], r["ref"]["tokens"], strict=True)
            ]
        else:
            row["kernel_vs_ref"] = "skipped: CUDA kernels unavailable"
        res[name] = row
    return res


@torch.no_grad()
def section_b(args, models, kernel_ok):
    res = {}
    for name, model in models.items():
        model.kernel = "cuda" if kernel_ok else "ref"
        ids, lengths = make_prompts(args, model.config.vocab_size, args.check_batch, args.check_len, args.seed + 2)
        out = model(ids, lengths=lengths, return_state=True, logits="last")
        batched = greedy_generate(model, out.logits, out.state, args.new_tokens)
        lg_err, st_err, bitwise, single = 0.0, 0.0, True, []
        for i in range(ids.shape[0]):
            o = model(ids[i:i + 1, :int(lengths[i])], return_state=True, logits="last")
            lg_err = max(lg_err, rel_err(out.logits[i], o.logits[0]))
            st_err = max(st_err, out.state[i].max_abs_diff(o.state))
            bitwise &= bool(torch.equal(out.logits[i], o.logits[0])) and out.state[i].equal(o.state)
            single += greedy_generate(model, o.logits, o.state, args.new_tokens)
        res[name] = {"path": model.kernel, "logits_rel_err": lg_err, "state_max_abs_diff": st_err,
                     "bitwise_equal": bitwise, "greedy_tokens_agree": batched == single}
    return res


@torch.no_grad()
def section_c(args, model, kernel_ok):
    dev = args.device
    model.kernel = "cuda" if kernel_ok else "ref"
    V = model.config.vocab_size
    res = {"path": model.kernel, "dtype": str(model.dtype).replace("torch.", "")}
    g = torch.Generator().manual_seed(args.seed + 3)
    ids = torch.randint(0, V, (args.prefill_batch, args.prefill_len), generator=g).to(dev)
    model(ids[:, :16], logits="last")  # warm-up (kernel compilation / autotune)
    reset_peak(dev)
    times = []
    for _ in range(args.repeats):
        sync(dev)
        t0 = time.perf_counter()
        model(ids, logits="last")
        sync(dev)
        times.append(time.perf_counter() - t0)
    t = sorted(times)[len(times) // 2]
    res["prefill"] = {"batch": args.prefill_batch, "len": args.prefill_len, "seconds": round(t, 4),
                      "seq_per_s": round(args.prefill_batch / t, 2),
                      "tok_per_s": round(args.prefill_batch * args.prefill_len / t, 1), "peak_gib": peak_gib(dev)}
    del ids
    res["decode"] = []
    T = args.decode_tokens
    for B in [int(b) for b in args.decode_batches.split(",") if b]:
        prompt = torch.randint(0, V, (B, 16), generator=g).to(dev)
        out = model(prompt, return_state=True, logits="last")
        modes = [False, True] if dev.type == "cuda" else [False]
        toks = {}
        for graph in modes:
            greedy_generate(model, out.logits, out.state, 4, use_cuda_graph=graph)  # warm-up / capture
            reset_peak(dev)
            times = []
            for _ in range(args.repeats):
                sync(dev)
                t0 = time.perf_counter()
                toks[graph] = greedy_generate(model, out.logits, out.state, T, use_cuda_graph=graph)
                sync(dev)
                times.append(time.perf_counter() - t0)
            t = sorted(times)[len(times) // 2]
            res["decode"].append({"batch": B, "cuda_graph": graph, "new_tokens": T, "seconds": round(t, 4),
                                  "tok_per_s": round(B * T / t, 1), "peak_gib": peak_gib(dev)})
        if len(toks) == 2:
            res["decode"][-1]["graph_tokens_equal_eager"] = toks[True] == toks[False]
    return res


# ----------------------------------------------------------------------------- report
def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def print_table(report):
    print("\n==== mamba kernel check ====")
    print(f"device: {report['device']}  kernels: {report['kernels_available']}  model: {report['model']}")
    for name, row in report.get("a", {}).items():
        print(f"(a) {name:5s} " + "  ".join(f"{k}={fmt(v)}" for k, v in row.items()))
    for name, row in report.get("b", {}).items():
        print(f"(b) {name:5s} " + "  ".join(f"{k}={fmt(v)}" for k, v in row.items()))
    c = report.get("c")
    if c:
        p = c["prefill"]
        print(f"(c) prefill [{c['dtype']}, {c['path']}] {p['batch']}x{p['len']}: {p['seq_per_s']} seq/s "
              f"({p['tok_per_s']} tok/s), peak {p['peak_gib']} GiB")
        print(f"(c) {'batch':>5} {'graph':>5} {'tok/s':>10} {'peak GiB':>9} {'graph==eager':>12}")
        for d in c["decode"]:
            print(f"(c) {d['batch']:>5} {d['cuda_graph']!s:>5} {d['tok_per_s']:>10} {fmt(d['peak_gib']):>9} "
                  f"{fmt(d.get('graph_tokens_equal_eager', '')):>12}")


def main(argv=None):
    args = parse_args(argv)
    kernel_ok = (not args.tiny) and args.device.type == "cuda" and kernels_available()
    t0 = time.time()
    models = build_models(args)
    any_model = next(iter(models.values()))
    cfg = any_model.config
    n_params = sum(p.numel() for p in any_model.parameters())
    report = {
        "device": torch.cuda.get_device_name(args.device)
        if args.device.type == "cuda"
        else platform.processor() or "cpu",
        "torch": torch.__version__,
        "kernels_available": kernel_ok,
        "model": {
            "d_model": cfg.d_model,
            "n_layer": cfg.n_layer,
            "vocab_size": cfg.vocab_size,
            "padded_vocab": cfg.padded_vocab_size,
            "d_state": cfg.d_state,
            "params": n_params,
            "weights": "checkpoint " + args.checkpoint if args.checkpoint else f"random (seed {args.seed})",
        },
        "args": {k: (str(v) if isinstance(v, torch.device) else v) for k, v in vars(args).items()},
    }
    skip = set(args.skip.split(","))
    if "a" not in skip:
        report["a"] = section_a(args, models, kernel_ok)
    if "b" not in skip:
        report["b"] = section_b(args, models, kernel_ok)
    if "c" not in skip:
        model = models.get("bf16") or next(iter(models.values()))
        for k in list(models):
            if models[k] is not model:
                del models[k]
        gc.collect()
        if args.device.type == "cuda":
            torch.cuda.empty_cache()
        report["c"] = section_c(args, model, kernel_ok)
    report["wall_s"] = round(time.time() - t0, 1)
    print_table(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
