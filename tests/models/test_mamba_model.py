"""MambaLM on CPU (reference path): names, init, exact batching, prefix reuse, decoding, grads."""
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from mamba_tiny import tiny_config, tiny_model

from mmeval.models.mamba import MambaConfig, MambaLM, MambaOutput, MambaState


def test_parameter_names_shapes_and_init_follow_mamba_ssm():
    cfg = tiny_config(n_layer=2, d_model=32)
    torch.manual_seed(0)
    m = MambaLM(cfg)
    di, R, N, W = 64, math.ceil(32 / 16), 8, 4
    expected = {"backbone.embedding.weight": (104, 32), "backbone.norm_f.weight": (32,), "lm_head.weight": (104, 32)}
    for i in range(2):
        p = f"backbone.layers.{i}."
        expected.update({
            p + "norm.weight": (32,), p + "mixer.in_proj.weight": (2 * di, 32), p + "mixer.conv1d.weight": (di, 1, W),
            p + "mixer.conv1d.bias": (di,), p + "mixer.x_proj.weight": (R + 2 * N, di),
            p + "mixer.dt_proj.weight": (di, R), p + "mixer.dt_proj.bias": (di,), p + "mixer.A_log": (di, N),
            p + "mixer.D": (di,), p + "mixer.out_proj.weight": (32, di)})
    sd = m.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert m.lm_head.weight is m.backbone.embedding.weight  # tied
    mix = m.backbone.layers[0].mixer
    torch.testing.assert_close(mix.A_log, torch.log(torch.arange(1, N + 1.0)).expand(di, N))
    assert torch.equal(mix.D, torch.ones(di))
    dt = torch.nn.functional.softplus(mix.dt_proj.bias)
    assert dt.min() >= 1e-4 * 0.999 and dt.max() <= 0.1 * 1.001
    assert mix.dt_proj.weight.abs().max() <= R ** -0.5
    assert abs(m.backbone.embedding.weight.std().item() - 0.02) < 0.005
    # bf16 construction keeps A_log and D in fp32 (as mamba_ssm)
    mb = MambaLM(cfg, dtype=torch.bfloat16)
    assert mb.backbone.layers[0].mixer.A_log.dtype == torch.float32
    assert mb.backbone.layers[0].mixer.in_proj.weight.dtype == torch.bfloat16


def test_config_from_state_spaces_and_hf_json(tmp_path):
    import json
    ss = {"d_model": 2560, "n_layer": 64, "vocab_size": 50277, "ssm_cfg": {}, "rms_norm": True,
          "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8}
    (tmp_path / "a.json").write_text(json.dumps(ss))
    c = MambaConfig.from_json_file(tmp_path / "a.json")
    assert (c.d_model, c.n_layer, c.d_inner, c.dt_rank_value, c.padded_vocab_size, c.tie_embeddings) == \
        (2560, 64, 5120, 160, 50280, True)
    hf = {"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 24, "state_size": 16, "expand": 2,
          "conv_kernel": 4, "time_step_rank": 48, "use_bias": False, "use_conv_bias": True, "vocab_size": 50280,
          "layer_norm_epsilon": 1e-5, "residual_in_fp32": True, "tie_word_embeddings": True}
    (tmp_path / "b.json").write_text(json.dumps(hf))
    c = MambaConfig.from_json_file(tmp_path / "b.json")
    assert (c.d_model, c.n_layer, c.d_state, c.dt_rank_value, c.vocab_size) == (768, 24, 16, 48, 50280)
    assert MambaConfig.from_dict(c.to_state_spaces_dict()) == c
    with pytest.raises(ValueError, match="Mamba-1"):
        MambaConfig.from_dict({**ss, "ssm_cfg": {"layer": "Mamba2"}})


def _ragged_batch(lengths, vocab=100, seed=1):
    g = torch.Generator().manual_seed(seed)
    L = max(lengths)
    ids = torch.randint(0, vocab, (len(lengths), L), generator=g)
    for b, n in enumerate(lengths):
        ids[b, n:] = 0  # right padding
    return ids, torch.tensor(lengths)


@torch.no_grad()
@pytest.mark.parametrize("lengths, width", [
    ([11, 4, 1, 7], 11),  # rows shorter than the conv width: their conv state starts in the zero state
    ([9, 6, 5], 9),  # every row at least the conv width: the conv state is gathered from the inputs
    ([9, 9, 9], 12),  # equal lengths and padding (alignment): the pad steps are masked as one slice
])
def test_batched_padded_prefill_equals_one_by_one(lengths, width):
    m = tiny_model()
    ids, lens = _ragged_batch(lengths)
    ids = torch.nn.functional.pad(ids, (0, width - ids.shape[1]))
    out = m(ids, lengths=lens, return_state=True, logits="last")
    full = m(ids, lengths=lens, logits="all")
    assert out.logits.shape == (len(lengths), 104)
    for b, n in enumerate(lengths):
        alone = m(ids[b:b + 1, :n], return_state=True, logits="all")
        torch.testing.assert_close(out.logits[b], alone.logits[0, -1], rtol=0, atol=1e-5)
        torch.testing.assert_close(full.logits[b, :n], alone.logits[0], rtol=0, atol=1e-5)
        assert out.state[b].max_abs_diff(alone.state) < 1e-5
    # the pads really are in the input: without lengths, the short rows change
    no_len = m(ids, logits="last")
    assert (no_len.logits[1] - out.logits[1]).abs().max() > 1e-3


@torch.no_grad()
def test_inputs_embeds_equal_input_ids():
    m = tiny_model()
    ids, lens = _ragged_batch([6, 3])
    a = m(ids, lengths=lens, return_state=True, logits="last")
    b = m(inputs_embeds=m.embed(ids), lengths=lens, return_state=True, logits="last")
    assert torch.equal(a.logits, b.logits) and a.state.equal(b.state)
    assert isinstance(a, MambaOutput) and a.hidden_states.shape == (2, 6, 32)
    with pytest.raises(ValueError):
        m(ids, inputs_embeds=m.embed(ids))


@torch.no_grad()
def test_prefix_state_reuse_equals_full_recomputation():
    m = tiny_model(seed=3)
    g = torch.Generator().manual_seed(5)
    prefix = torch.randint(0, 100, (1, 9), generator=g)
    prefix_embeds = m.embed(prefix) + 0.1 * torch.randn(1, 9, 32, generator=g)  # e.g. spliced image tokens
    pre = m(inputs_embeds=prefix_embeds, return_state=True, logits="none")
    assert pre.logits is None
    suffix_lens = [5, 2, 3]
    suffix, lens = _ragged_batch(suffix_lens, seed=6)
    state = pre.state.repeat_interleave(3)
    state_before = state.clone()
    out = m(suffix, lengths=lens, state=state, return_state=True, logits="last")
    assert state.equal(state_before)  # the given state is not modified
    for b, n in enumerate(suffix_lens):
        emb = torch.cat([prefix_embeds, m.embed(suffix[b:b + 1, :n])], 1)
        ref = m(inputs_embeds=emb, return_state=True, logits="last")
        torch.testing.assert_close(out.logits[b], ref.logits[0], rtol=0, atol=1e-5)
        assert out.state[b].max_abs_diff(ref.state) < 1e-5
    # suffix shorter than d_conv - 1 uses the prefix's conv inputs: compare a 1-token suffix too
    one = m(suffix[:1, :1], state=pre.state, logits="last")
    ref = m(inputs_embeds=torch.cat([prefix_embeds, m.embed(suffix[:1, :1])], 1), logits="last")
    torch.testing.assert_close(one.logits, ref.logits, rtol=0, atol=1e-5)
    # and the prefix matters
    assert (m(suffix, lengths=lens, logits="last").logits - out.logits).abs().max() > 1e-3


@torch.no_grad()
def test_stepwise_decoding_equals_full_forward():
    m = tiny_model(seed=4)
    ids, _ = _ragged_batch([10, 10])
    full = m(ids, return_state=True)
    # from scratch, token by token
    st = m.empty_state(2)
    for t in range(10):
        logits, st = m.step(ids[:, t], state=st)
        torch.testing.assert_close(logits, full.logits[:, t], rtol=0, atol=1e-5)
    assert st.max_abs_diff(full.state) < 1e-5
    # prefill 6 then decode 4
    pre = m(ids[:, :6], return_state=True, logits="last")
    st = pre.state
    for t in range(6, 10):
        before = st.clone()
        logits, st2 = m.step(ids[:, t], state=st)
        assert st.equal(before)  # inplace=False leaves it alone
        st = st2
        torch.testing.assert_close(logits, full.logits[:, t], rtol=0, atol=1e-5)
    emb_logits, _ = m.step(inputs_embeds=m.embed(ids[:, 9]), state=pre.state)
    ids_logits, _ = m.step(ids[:, 9], state=pre.state)
    assert torch.equal(emb_logits, ids_logits)


def test_gradients_reach_every_parameter():
    m = tiny_model(seed=5).train()
    ids, lens = _ragged_batch([7, 4])
    with torch.no_grad():
        pre = m(ids[:, :3], return_state=True, logits="none").state
    out = m(ids, lengths=lens, state=pre, return_state=True, logits="all")
    loss = out.logits.float().square().mean() + sum(s.sum() for s in out.state.ssm_states) * 1e-3
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@torch.no_grad()
def test_state_batch_operations():
    m = tiny_model()
    ids, _ = _ragged_batch([5, 5, 5])
    s = m(ids, return_state=True, logits="none").state
    assert s.batch_size == 3 and len(s) == 2
    assert s.ssm_states[0].dtype == torch.float32 and s.conv_states[0].shape == (3, 64, 4)
    sel = s.index_select(torch.tensor([2, 0]))
    assert torch.equal(sel.ssm_states[1][0], s.ssm_states[1][2])
    cat = MambaState.cat([s[0], s[1], s[2]])
    assert cat.equal(s)
    rep = s.repeat_interleave(2)
    assert rep.batch_size == 6 and torch.equal(rep.conv_states[0][3], s.conv_states[0][1])
    ex = s[1].expand(4)
    assert ex.batch_size == 4 and torch.equal(ex.ssm_states[0][3], s.ssm_states[0][1])
    ex.ssm_states[0].add_(1)  # expanded copies are independent of the source
    assert not torch.equal(ex.ssm_states[0][0], s.ssm_states[0][1])
    c = s.clone()
    c.conv_states[0].zero_()
    assert not c.equal(s)
    with pytest.raises(ValueError):
        m(ids[:2], state=s)


@torch.no_grad()
def test_gather_is_cat_with_shared_states():
    """`MambaState.gather` (what the suffix prefill uses: the questions on one image share a state
    object) gives exactly `cat`'s values, into new tensors or into given ones."""
    m = tiny_model()
    ids, _ = _ragged_batch([5, 5, 5])
    s = m(ids, return_state=True, logits="none").state
    a, b, pair = s[0], s[1], s[1:]  # two batch-1 states and a batch-2 one
    entries = [b, a, a, pair, b, a]
    want = MambaState.cat(entries)
    got = MambaState.gather(entries)
    assert got.batch_size == 7 and got.equal(want)
    out = MambaState.cat(entries).clone()
    for t in out.conv_states + out.ssm_states:
        t.fill_(-1)
    assert MambaState.gather(entries, out=out) is out and out.equal(want)  # written in place
    distinct = [a, b, pair]
    assert MambaState.gather(distinct).equal(MambaState.cat(distinct))
    out = MambaState.cat(distinct).clone()
    out.ssm_states[0].zero_()
    MambaState.gather(distinct, out=out)
    assert out.equal(MambaState.cat(distinct))
    got.ssm_states[0].add_(1)  # new tensors: the sources are untouched
    assert a.equal(s[0])


@torch.no_grad()
def test_bf16_and_layernorm_variants_run():
    m = tiny_model()
    ids, lens = _ragged_batch([6, 3])
    ref = m(ids, lengths=lens, logits="last").logits
    mb = tiny_model().to(torch.bfloat16)
    out = mb(ids, lengths=lens, return_state=True, logits="last")
    assert out.logits.dtype == torch.bfloat16 and out.state.ssm_states[0].dtype == torch.float32
    assert (out.logits.float() - ref).abs().max() < 0.1 * ref.abs().max()
    ml = tiny_model(rms_norm=False)
    assert "backbone.layers.0.norm.bias" in ml.state_dict()
    a = ml(ids, lengths=lens, logits="last").logits
    b = ml(ids[1:, :3], logits="last").logits
    torch.testing.assert_close(a[1:], b, rtol=0, atol=1e-5)


def test_inference_cache_of_A_and_dt_bias_follows_weight_updates():
    """Without autograd the mixer reuses -exp(A_log) and the fp32 step bias; an in-place update of
    the weights (load_state_dict, an optimizer step) must be seen by the next forward."""
    torch.manual_seed(0)
    m = tiny_model()
    ids = torch.randint(0, m.config.vocab_size, (2, 7))
    with torch.no_grad():
        before = m(input_ids=ids).logits
        assert torch.equal(m(input_ids=ids).logits, before)  # cached values give the same result
        sd = {k: v.clone() for k, v in m.state_dict().items()}
        for i in range(m.config.n_layer):
            sd[f"backbone.layers.{i}.mixer.A_log"] += 0.5
            sd[f"backbone.layers.{i}.mixer.dt_proj.bias"] += 0.5
        m.load_state_dict(sd)
        after = m(input_ids=ids).logits
    fresh = tiny_model()
    fresh.load_state_dict(sd)
    with torch.no_grad():
        expected = fresh(input_ids=ids).logits
    assert (after - before).abs().max() > 1e-3
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


@torch.no_grad()
def test_time_major_layout_gives_the_feature_major_results(monkeypatch):
    """The mixer's two activation layouts (feature-major for mamba_ssm's scan, time-major for the
    Triton scan on CUDA) compute the same thing: here both on the reference ops, from a state and
    from zero, with ragged lengths."""
    from mmeval.models.mamba import mixer

    m = tiny_model(seed=4)
    ids, lens = _ragged_batch([9, 5, 7])
    pre = m(ids[:, :3], return_state=True, logits="none").state
    runs = {}
    for layout in ("feature", "time"):
        monkeypatch.setattr(mixer, "time_major_applies", lambda *args, t=layout == "time": t)
        runs[layout] = (m(ids, lengths=lens, return_state=True, logits="all"),
                        m(ids, lengths=lens, state=pre, return_state=True, logits="last"))
    for a, b in zip(runs["feature"], runs["time"], strict=True):
        torch.testing.assert_close(a.logits, b.logits, rtol=0, atol=1e-5)
        assert a.state.max_abs_diff(b.state) < 1e-5
