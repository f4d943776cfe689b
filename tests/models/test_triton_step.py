"""The fused decoding step (mmeval/models/mamba/triton_step.py) against the unfused reference ops,
run on the CPU through Triton's interpreter (TRITON_INTERPRET=1 must be set before triton is
imported, hence a subprocess): the two kernels alone, then inside a tiny LM's greedy decoding.
On the GPU, bench/mamba_kernel_check.py checks the compiled kernels (step vs forward)."""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import torch
    from mmeval.models.mamba import greedy_generate, triton_step
    from tests.models.mamba_tiny import tiny_model

    torch.manual_seed(0)
    worst = 0.0
    # d not a multiple of either kernel's channel block; R not a multiple of the column chunk;
    # batch 3 reads x and z as strided halves of in_proj's output
    for bsz, d, n, r, with_bias in ((1, 200, 16, 13, True), (3, 72, 8, 5, False)):
        xz = torch.randn(bsz, 2 * d)
        conv, ssm = torch.randn(bsz, d, 4), torch.randn(bsz, d, n)
        args = (torch.randn(d, 4) * 0.5, torch.randn(d) if with_bias else None, torch.randn(r + 2 * n, d) / d ** 0.5,
                torch.randn(d, r) / r ** 0.5, torch.randn(d) * 0.5, -torch.rand(d, n) * 2, torch.randn(d))
        c1, s1, c2, s2 = conv.clone(), ssm.clone(), conv.clone(), ssm.clone()
        counters = torch.zeros(bsz, dtype=torch.int32)
        y = triton_step.fused_step(xz, c1, s1, *args, counters)
        assert not counters.any(), "the arrival counters must be back at zero"
        y2 = triton_step.fused_step(xz, conv.clone(), ssm.clone(), *args, counters)  # counters reused
        ref = triton_step.fused_step_ref(xz, c2, s2, *args)
        assert torch.equal(c1, c2), "conv state"
        assert torch.equal(y2, y), "a second step with the same inputs and counters"
        worst = max(worst, (y - ref).abs().max().item(), (s1 - s2).abs().max().item())

    # inside the model: greedy tokens and logits with the fused step against the reference step
    model = tiny_model(seed=3)
    prompt = torch.randint(0, 100, (2, 6))
    out = model(input_ids=prompt, return_state=True, logits="last")
    ref_tokens = greedy_generate(model, out.logits, out.state, 12)
    ref_logits, _ = model.step(prompt[:, 0], state=out.state)
    triton_step.applies = lambda *a: True  # the kernels on CPU tensors, through the interpreter
    calls = []
    real = triton_step.fused_step
    triton_step.fused_step = lambda *a: calls.append(1) or real(*a)
    fused_tokens = greedy_generate(model, out.logits, out.state, 12)
    fused_logits, _ = model.step(prompt[:, 0], state=out.state)
    assert calls, "the mixer did not take the fused step"
    assert fused_tokens == ref_tokens, (fused_tokens, ref_tokens)
    worst = max(worst, (fused_logits - ref_logits).abs().max().item())
    print(worst)
""")


def test_fused_step_matches_reference_in_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600,
                         cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    # float32 throughout (the interpreter truncates float32 -> bfloat16 casts where the GPU rounds
    # to nearest, so bfloat16 is checked on the GPU only): only summation orders differ
    assert float(res.stdout.split()[-1]) < 2e-5
