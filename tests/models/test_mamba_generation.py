"""greedy_generate on CPU: agrees with a hand-written loop, per-sequence EOS / stop_fn,
batched == one-by-one, prefix-state reuse."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from mamba_tiny import tiny_model

from mmeval.models.mamba import greedy_generate


def manual_greedy(m, ids, n):
    """Reference: recompute the full forward for every new token (no state at all)."""
    ids = ids.clone()
    out = []
    for _ in range(n):
        nxt = int(m(ids, logits="last").logits[0, :100].argmax())
        out.append(nxt)
        ids = torch.cat([ids, torch.tensor([[nxt]])], 1)
    return out


@torch.no_grad()
def test_greedy_matches_full_recomputation_and_batching():
    m = tiny_model(seed=7, noise=0.3)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 100, (1, n), generator=g) for n in (5, 9, 2)]
    expected = [manual_greedy(m, p, 6) for p in prompts]
    L = max(p.shape[1] for p in prompts)
    ids = torch.zeros(3, L, dtype=torch.long)
    for b, p in enumerate(prompts):
        ids[b, :p.shape[1]] = p[0]
    pre = m(ids, lengths=[p.shape[1] for p in prompts], return_state=True, logits="last")
    state_copy = pre.state.clone()
    got = greedy_generate(m, pre.logits, pre.state, max_new_tokens=6, eos_token_id=None)
    assert got == expected
    assert pre.state.equal(state_copy)  # not modified
    for b, p in enumerate(prompts):  # one by one
        o = m(p, return_state=True, logits="last")
        assert greedy_generate(m, o.logits, o.state, 6) == [expected[b]]
    assert len(set(map(tuple, expected))) > 1  # sequences differ: the test can tell them apart


@torch.no_grad()
def test_eos_stop_fn_and_max_tokens_are_per_sequence():
    m = tiny_model(seed=7, noise=0.3)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 100, (3, 4), generator=g)
    pre = m(ids, return_state=True, logits="last")
    free = greedy_generate(m, pre.logits, pre.state, 8)
    assert all(len(t) == 8 for t in free)
    # EOS = the 3rd token of sequence 0: sequence 0 stops before it, others unaffected up to their own EOS
    eos = free[0][2]
    got = greedy_generate(m, pre.logits, pre.state, 8, eos_token_id=eos)
    for b in range(3):
        exp = free[b][:free[b].index(eos)] if eos in free[b] else free[b]
        assert got[b] == exp
    assert got[0] == free[0][:2]
    # stop callback on sequence 1 after 3 tokens (token kept); calls see the tokens so far
    calls = []

    def stop(i, toks):
        calls.append((i, list(toks)))
        return i == 1 and len(toks) == 3
    got = greedy_generate(m, pre.logits, pre.state, 8, eos_token_id=[eos, 10**6], stop_fn=stop)
    assert got[1] == free[1][:3]
    assert all(toks == got[i][:len(toks)] for i, toks in calls)
    assert not any(i == 1 and len(t) > 3 for i, t in calls)  # a stopped sequence is not extended
    assert greedy_generate(m, pre.logits, pre.state, 0) == [[], [], []]
    assert greedy_generate(m, pre.logits, pre.state, 1) == [[t[0]] for t in free]


@torch.no_grad()
def test_prefix_reuse_generation_and_cuda_graph_fallback():
    m = tiny_model(seed=8, noise=0.3)
    g = torch.Generator().manual_seed(2)
    prefix = torch.randint(0, 100, (1, 6), generator=g)
    qs = [torch.randint(0, 100, (1, n), generator=g) for n in (3, 5)]
    pre = m(prefix, return_state=True, logits="none").state
    ids = torch.zeros(2, 5, dtype=torch.long)
    ids[0, :3], ids[1, :5] = qs[0][0], qs[1][0]
    out = m(ids, lengths=[3, 5], state=pre.repeat_interleave(2), return_state=True, logits="last")
    with pytest.warns(UserWarning):
        got = greedy_generate(m, out.logits, out.state, 5, use_cuda_graph=True)
    for b, q in enumerate(qs):
        assert got[b] == manual_greedy(m, torch.cat([prefix, q], 1), 5)


@pytest.mark.gpu
@torch.no_grad()
def test_cuda_graph_decoding_matches_eager():
    m = tiny_model(seed=9, noise=0.3).cuda()
    ids = torch.randint(0, 100, (4, 7), device="cuda")
    pre = m(ids, return_state=True, logits="last")
    eager = greedy_generate(m, pre.logits, pre.state, 10)
    graph = greedy_generate(m, pre.logits, pre.state, 10, use_cuda_graph=True)
    assert eager == graph
