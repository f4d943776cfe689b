"""Checkpoint IO: mamba_ssm and transformers layouts, parity with transformers'
MambaForCausalLM, strict key checks, vocab padding, hub-id errors, tokenizer loading."""
import json
import sys
from pathlib import Path

import pytest
import torch
import transformers

sys.path.insert(0, str(Path(__file__).parent))
from mamba_tiny import tiny_model
from tiny_tokenizer import build_tiny_tokenizer

from mmeval.models.mamba import (
    CheckpointError,
    load_mamba_lm,
    load_tokenizer,
    save_mamba_lm,
)


def hf_twin(model, **cfg_kw):
    """A transformers MambaForCausalLM with the same weights as our ``model``."""
    c = model.config
    hc = transformers.MambaConfig(
        vocab_size=c.padded_vocab_size, hidden_size=c.d_model, num_hidden_layers=c.n_layer,
        state_size=c.d_state, expand=c.expand, conv_kernel=c.d_conv, time_step_rank=c.dt_rank_value,
        use_bias=c.bias, use_conv_bias=c.conv_bias, layer_norm_epsilon=c.norm_epsilon,
        residual_in_fp32=c.residual_in_fp32, tie_word_embeddings=c.tie_embeddings, **cfg_kw)
    hf = transformers.MambaForCausalLM(hc).eval()
    sd = {k.replace("backbone.embedding.", "backbone.embeddings."): v for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    hf.tie_weights()
    return hf


@torch.no_grad()
def test_both_layouts_give_identical_logits(tmp_path):
    m = tiny_model(seed=11)
    save_mamba_lm(m, tmp_path / "ss")
    cfg = json.loads((tmp_path / "ss" / "config.json").read_text())
    assert cfg["d_model"] == 32 and cfg["vocab_size"] == 100 and "ssm_cfg" in cfg
    sd = torch.load(tmp_path / "ss" / "pytorch_model.bin", weights_only=True)
    assert set(sd) == set(m.state_dict())
    hf = hf_twin(m)
    hf.save_pretrained(tmp_path / "hf")
    hf.save_pretrained(tmp_path / "hf_sharded", max_shard_size="20KB")
    assert (tmp_path / "hf_sharded" / "model.safetensors.index.json").is_file()
    ids = torch.randint(0, 100, (2, 9))
    ref = m(ids).logits
    for sub in ("ss", "hf", "hf_sharded"):
        loaded = load_mamba_lm(tmp_path / sub, kernel="ref")
        assert loaded.lm_head.weight is loaded.backbone.embedding.weight
        assert torch.equal(loaded(ids).logits, ref), sub


@torch.no_grad()
def test_matches_transformers_mamba_on_random_weights(tmp_path):
    torch.manual_seed(0)
    hc = transformers.MambaConfig(vocab_size=96, hidden_size=48, num_hidden_layers=3, state_size=16,
                                  expand=2, conv_kernel=4, time_step_rank=5)
    hf = transformers.MambaForCausalLM(hc).eval()
    for p in hf.parameters():
        p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(tmp_path)
    ours = load_mamba_lm(tmp_path, kernel="ref")
    assert ours.config.dt_rank_value == 5 and ours.config.n_layer == 3
    ids = torch.randint(0, 96, (2, 13))
    a = hf(ids).logits
    b = ours(ids).logits[..., :96]
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    assert a.abs().max() > 0.1
    # and greedy decoding agrees with transformers' generate
    from mmeval.models.mamba import greedy_generate
    pre = ours(ids, return_state=True, logits="last")
    got = greedy_generate(ours, pre.logits, pre.state, 5)
    gen = hf.generate(ids, max_new_tokens=5, do_sample=False, eos_token_id=None, pad_token_id=0,
                      min_new_tokens=5)
    assert got == gen[:, 13:].tolist()


def test_missing_and_unexpected_keys_are_named(tmp_path):
    m = tiny_model()
    save_mamba_lm(m, tmp_path)
    path = tmp_path / "pytorch_model.bin"
    sd = torch.load(path, weights_only=True)
    del sd["backbone.layers.1.mixer.dt_proj.bias"]
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"missing keys: backbone\.layers\.1\.mixer\.dt_proj\.bias"):
        load_mamba_lm(tmp_path)
    sd["backbone.layers.1.mixer.dt_proj.bias"] = torch.zeros(64)
    sd["backbone.layers.1.mixer.extra"] = torch.zeros(3)
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match=r"unexpected keys: backbone\.layers\.1\.mixer\.extra"):
        load_mamba_lm(tmp_path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        load_mamba_lm(tmp_path)
    save_mamba_lm(tiny_model(), tmp_path)
    (tmp_path / "pytorch_model.bin").unlink()
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        load_mamba_lm(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_mamba_lm(tmp_path / "nope" / "deeper")
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        load_tokenizer(tmp_path)


@torch.no_grad()
def test_vocab_padding_dtype_and_device_on_load(tmp_path):
    m = tiny_model()
    save_mamba_lm(m, tmp_path)
    sd = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    sd["backbone.embedding.weight"] = sd["backbone.embedding.weight"][:100].clone()  # unpadded
    sd.pop("lm_head.weight")
    torch.save(sd, tmp_path / "pytorch_model.bin")
    loaded = load_mamba_lm(tmp_path, dtype=torch.bfloat16, device="cpu")
    emb = loaded.backbone.embedding.weight
    assert emb.shape == (104, 32) and emb.dtype == torch.bfloat16 and emb.device.type == "cpu"
    assert torch.equal(emb[100:], torch.zeros(4, 32, dtype=torch.bfloat16))
    assert torch.equal(emb[:100], m.backbone.embedding.weight[:100].bfloat16())
    assert loaded.backbone.layers[0].mixer.A_log.dtype == torch.float32
    assert loaded.backbone.layers[0].mixer.D.dtype == torch.float32


def test_one_checkpoint_error():
    """The engine raises the CheckpointError users see (the CLI prints it as one line, exit 2)."""
    import mmeval.errors

    assert CheckpointError is mmeval.errors.CheckpointError


def test_offline_hub_id_error_names_a_local_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MMEVAL_CHECKPOINTS", str(tmp_path / "ckpts"))
    with pytest.raises(CheckpointError) as ei:
        load_mamba_lm("state-spaces/mamba-2.8b-slimpj")
    msg = str(ei.value)
    expected_dir = tmp_path / "ckpts" / "state-spaces--mamba-2.8b-slimpj"
    assert "\n" not in msg and "state-spaces/mamba-2.8b-slimpj" in msg
    assert f"checkpoint={expected_dir}" in msg
    # putting the files in the named directory makes the same id load offline
    m = tiny_model()
    save_mamba_lm(m, expected_dir)
    build_tiny_tokenizer(expected_dir)
    loaded = load_mamba_lm("state-spaces/mamba-2.8b-slimpj")
    assert torch.equal(loaded.backbone.norm_f.weight, m.backbone.norm_f.weight)
    assert load_tokenizer("state-spaces/mamba-2.8b-slimpj").eos_token_id == 0


def test_tokenizer_from_checkpoint_dir(tmp_path):
    save_mamba_lm(tiny_model(), tmp_path)
    build_tiny_tokenizer(tmp_path)
    tok = load_tokenizer(tmp_path)
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 0 and tok.pad_token_id == 0
    ids = tok("a photo of a cat").input_ids
    assert len(ids) == 5 and max(ids) < 100 and tok.decode(ids) == "a photo of a cat"
