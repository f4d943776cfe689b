"""VL-Mamba: every ablation variant runs forward + greedy generation, image splicing and loss,
the checkpoint layout round trip and its strict key check, the bare-Mamba + mm_projector.bin
layout, the prompt template, and the adapter (prefix cache, batching, identity)."""
import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmeval.errors import CheckpointError, ModelArgsError
from mmeval.models.vl_mamba import (
    IMAGE_TOKEN_INDEX,
    SYSTEM_PROMPT,
    VLMamba,
    VLMambaConfig,
    build_prompt,
    build_tiny_tokenizer,
    conversation_text,
    split_prompt_ids,
    tokenize_with_image,
)
from mmeval.models.vlm_runtime import PromptSplit, VLMRuntime
from mmeval.types import GenerationConfig, ImageRef, Request

VARIANTS = [(e, m, s) for e in ("clip", "siglip") for m in ("mlp", "vss-mlp", "vss-l2") for s in ("bsm", "csm")]


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from tiny_tokenizer import build_tiny_tokenizer as build_word_tokenizer

    from mmeval.models.mamba import load_tokenizer

    return load_tokenizer(build_word_tokenizer(tmp_path_factory.mktemp("tok")))


def _model(encoder="siglip", mmc="vss-l2", scan="bsm", seed=0, vocab=None):
    torch.manual_seed(seed)
    cfg = VLMambaConfig(encoder=encoder, mmc=mmc, scan=scan, tiny=True)
    if vocab:
        cfg.lm_config["vocab_size"] = vocab
    m = VLMamba(cfg, kernel="ref")
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return m.eval()


def _png(seed, size=(40, 30)):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _runtime(model, tokenizer, prefix_cache=True):
    def split(prompt, has_image):
        b, a = split_prompt_ids(tokenizer, prompt, has_image)
        return PromptSplit(b, a)

    return VLMRuntime(model, tokenizer, model.preprocess, split, tokenizer.eos_token_id, prefix_cache=prefix_cache)


def _requests(n=4, max_new=4, candidates=()):
    imgs = [ImageRef(source=f"img{k}", data=_png(k)) for k in range(2)]
    return [Request(doc_id=str(i), prompt=f"what color is the car {i} ?", images=(imgs[i % 2],),
                    group_key=f"g{i % 2}", generation=GenerationConfig(max_new_tokens=max_new, candidates=candidates))
            for i in range(n)]


# ------------------------------------------------------------------------------ prompt
def test_prompt_template_and_split(tok):
    assert build_prompt("Q?") == SYSTEM_PROMPT + " USER: <image>\nQ? ASSISTANT:"
    assert build_prompt("Q?", has_image=False) == SYSTEM_PROMPT + " USER: Q? ASSISTANT:"
    before, after = split_prompt_ids(tok, "is there a cat ?", True)
    assert before[0] == tok.convert_tokens_to_ids("<|endoftext|>") == 0  # BOS = <|endoftext|>
    full = tokenize_with_image(build_prompt("is there a cat ?"), tok)
    assert full == before + [IMAGE_TOKEN_INDEX] + after
    assert conversation_text([("q1", "a1"), ("q2", None)]) == \
        SYSTEM_PROMPT + " USER: <image>\nq1 ASSISTANT: a1<|endoftext|>USER: q2 ASSISTANT:"
    ids = tokenize_with_image(conversation_text([("cat", "dog")]), tok)
    assert ids.count(IMAGE_TOKEN_INDEX) == 1 and ids[-1] == 0  # the answer ends with EOS


def test_image_position_first_puts_the_image_before_the_whole_prompt(tok):
    """`first` (the paper's Eq. 7): [BOS] IMAGE then the whole text prompt; `llava`: after "USER: "."""
    assert build_prompt("Q?", image_position="first") == "<image>" + SYSTEM_PROMPT + " USER: Q? ASSISTANT:"
    assert build_prompt("Q?", has_image=False, image_position="first") == build_prompt("Q?", has_image=False)
    assert conversation_text([("q1", "a1"), ("q2", None)], image_position="first") == \
        "<image>" + SYSTEM_PROMPT + " USER: q1 ASSISTANT: a1<|endoftext|>USER: q2 ASSISTANT:"
    text_ids = tok.encode(SYSTEM_PROMPT + " USER: is there a cat ? ASSISTANT:", add_special_tokens=False)
    before, after = split_prompt_ids(tok, "is there a cat ?", True, image_position="first")
    assert (before, after) == ([0], text_ids)
    assert before + [IMAGE_TOKEN_INDEX] + after == \
        tokenize_with_image(build_prompt("is there a cat ?", image_position="first"), tok)
    lb, _ = split_prompt_ids(tok, "is there a cat ?", True)  # llava: the image after "USER: "
    assert lb == [0] + tok.encode(SYSTEM_PROMPT + " USER: ", add_special_tokens=False)
    assert split_prompt_ids(tok, "q", False, "first") == split_prompt_ids(tok, "q", False)
    with pytest.raises(ValueError, match="image_position must be one of llava, first, got 'last'"):
        build_prompt("Q?", image_position="last")
    with pytest.raises(ValueError, match="image_position"):
        VLMambaConfig(tiny=True, image_position="middle")


def test_tiny_tokenizer_round_trip():
    t = build_tiny_tokenizer()
    ids = t.encode("Is there a cat? é", add_special_tokens=False)
    assert max(ids) < 257 and t.decode(ids) == "Is there a cat? é"
    assert t.eos_token_id == 0


# ------------------------------------------------------------------------------ every variant
@pytest.mark.parametrize("encoder,mmc,scan", VARIANTS)
def test_variant_forward_and_generation(tok, encoder, mmc, scan):
    m = _model(encoder, mmc, scan)
    S = m.cfg.vision_config["image_size"]
    P = m.num_image_tokens
    ids = torch.tensor([tokenize_with_image(build_prompt("what color is the car ?"), tok)])
    px = torch.randn(1, 3, S, S)
    out = m(ids, None, px)
    assert out.logits.shape == (1, ids.shape[1] - 1 + P, m.lm.config.padded_vocab_size)
    assert torch.isfinite(out.logits).all()
    out2 = m(ids, None, px + 1.0)
    assert (out.logits[0, -1] - out2.logits[0, -1]).abs().max() > 1e-5  # the image reaches the answer
    preds = _runtime(m, tok).generate(_requests(2, max_new=3))
    assert len(preds) == 2 and all(p.error is None and 0 <= p.n_tokens <= 3 for p in preds)


def test_paper_default_full_size_builds_without_files():
    cfg = VLMambaConfig()
    assert (cfg.encoder, cfg.mmc, cfg.scan, cfg.llm) == ("siglip", "vss-l2", "bsm", "mamba-2.8b-slimpj")
    with torch.device("meta"):
        m = VLMamba(cfg, kernel="ref")
    assert m.num_image_tokens == 729 and m.lm.config.d_model == 2560 and m.lm.config.n_layer == 64
    assert m.mm_projector.vss.dim == 2560 and m.mm_projector.linear1.in_features == 1152
    n = sum(p.numel() for p in m.parameters())
    assert 3.2e9 < n < 3.4e9, n  # 2.77B LM + 0.41B SigLIP + connector


def test_llm_presets_not_in_the_paper_are_marked(tmp_path):
    """mamba-790m and mamba-2.8b-zephyr are ours, not the paper's: the option help, `mmeval list models`,
    the config (checkpoint) and the identity say so; the paper's LLMs are those of its ablation table."""
    import csv
    from pathlib import Path

    from click.testing import CliRunner

    from mmeval.cli import main
    from mmeval.models.vl_mamba import LLM_PRESETS, llm_in_paper
    from model_adapters.vl_mamba import VLMambaAdapter

    table = Path(__file__).resolve().parents[2] / "results" / "published" / "vl_mamba_ablations.csv"
    paper = {r["llm"].replace("mamba-2.8b-pile", "mamba-2.8b") for r in csv.DictReader(table.open()) if r["llm"]}
    assert paper == {n for n in LLM_PRESETS if llm_in_paper(n)} == {"mamba-1.4b", "mamba-2.8b", "mamba-2.8b-slimpj"}
    assert not llm_in_paper("mamba-790m") and not llm_in_paper("zephyr") and llm_in_paper("mamba-2.8b-pile")
    help_text = VLMambaAdapter.options["llm"]
    for name in LLM_PRESETS:
        marked = f"{name} (" in help_text and help_text.split(f"{name} (")[1].split(")")[0].endswith(
            "not in the VL-Mamba paper")
        assert marked == (not llm_in_paper(name)), name
    listing = CliRunner().invoke(main, ["list", "models"]).output
    assert "mamba-790m (not in the VL-Mamba paper)" in listing and "Cobra's LM; not in the VL-Mamba paper" in listing
    assert VLMambaConfig(tiny=True, llm="mamba-2.8b-zephyr").to_json()["llm_in_paper"] is False
    with torch.device("meta"):
        m = VLMamba(VLMambaConfig(llm="mamba-790m", mmc="mlp"), kernel="ref")
    assert m.cfg.llava_config(False)["vl_mamba"]["llm_in_paper"] is False
    assert VLMambaConfig.from_json(m.cfg.to_json()) == m.cfg  # the derived key is not a field
    ident = VLMambaAdapter.from_args({"tiny": "1", "mmc": "mlp", "llm": "zephyr"}).identity()["config"]
    assert (ident["llm"], ident["llm_in_paper"]) == ("mamba-2.8b-zephyr", False)
    assert VLMambaAdapter.from_args({"tiny": "1", "mmc": "mlp"}).identity()["config"]["llm_in_paper"] is True


# ------------------------------------------------------------------------------ training entry
def test_prepare_inputs_splices_image_and_masks_labels(tok):
    m = _model("clip", "vss-mlp", "csm")
    P = m.num_image_tokens
    a = tokenize_with_image(conversation_text([("cat", "dog")]), tok)
    b = tokenize_with_image(conversation_text([("the red car", "yes")]), tok)
    L = max(len(a), len(b))
    ids = torch.zeros(2, L, dtype=torch.long)
    ids[0, : len(a)] = torch.tensor(a)
    ids[1, : len(b)] = torch.tensor(b)
    lengths = torch.tensor([len(a), len(b)])
    labels = ids.clone().clamp(min=0)
    px = torch.randn(2, 3, 28, 28)
    emb, lens, labs = m.prepare_inputs(ids, lengths, px, IMAGE_TOKEN_INDEX, labels)
    assert lens.tolist() == [len(a) - 1 + P, len(b) - 1 + P]
    pos = a.index(IMAGE_TOKEN_INDEX)
    feats = m.encode_images(px)
    torch.testing.assert_close(emb[0, pos: pos + P], feats[0])
    torch.testing.assert_close(emb[1, pos: pos + P], feats[1])
    torch.testing.assert_close(emb[0, :pos], m.lm.embed(ids[0, :pos]))
    torch.testing.assert_close(emb[0, pos + P: lens[0]], m.lm.embed(ids[0, pos + 1: len(a)]))
    assert (labs[0, pos: pos + P] == -100).all() and (labs[0, lens[0]:] == -100).all()
    assert labs[0, pos + P: lens[0]].tolist() == a[pos + 1:]
    out = m(ids, lengths, px, IMAGE_TOKEN_INDEX, labels)
    V = m.lm.config.vocab_size
    lg, lb = out.logits[:, :-1, :V], labs[:, 1:]
    keep = lb != -100
    ref = F.cross_entropy(lg[keep].float(), lb[keep])
    torch.testing.assert_close(out.loss, ref)
    out.loss.backward()  # differentiable through the connector
    assert any(p.grad is not None for p in m.mm_projector.parameters())
    # padding changes nothing for the shorter row
    alone = m(ids[1:, : len(b)], None, px[1:])
    torch.testing.assert_close(alone.logits[0], out.logits[1, : lens[1]], rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------ checkpoints
def _logits(m, tok, seed=3):
    torch.manual_seed(seed)
    S = m.cfg.vision_config["image_size"]
    ids = torch.tensor([tokenize_with_image(build_prompt("is there a cat ?"), tok)])
    with torch.no_grad():
        return m(ids, None, torch.randn(1, 3, S, S)).logits


@pytest.mark.parametrize("mmc,scan", [("vss-l2", "bsm"), ("mlp", "csm")])
def test_checkpoint_round_trip(tmp_path, tok, mmc, scan):
    m = _model("siglip", mmc, scan)
    m.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    for k in ("mm_vision_tower", "mm_projector_type", "mm_hidden_size", "mm_vision_select_layer",
              "mm_vision_select_feature", "image_aspect_ratio", "d_model", "n_layer"):
        assert k in cfg
    assert cfg["mm_projector_type"] == {"vss-l2": "vss_l2", "mlp": "mlp2x_gelu"}[mmc]
    assert cfg["mm_vision_select_layer"] == -2 and cfg["mm_vss_scan"] == scan
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "model.safetensors")))
    assert "backbone.embedding.weight" in keys and "backbone.layers.0.mixer.A_log" in keys
    assert any(k.startswith("mm_projector.") for k in keys)
    assert any(k.startswith("vision_tower.vision_model.") for k in keys)
    loaded = VLMamba.from_pretrained(tmp_path, kernel="ref")
    assert (loaded.cfg.mmc, loaded.cfg.scan, loaded.cfg.encoder) == (mmc, scan, "siglip")
    assert torch.equal(_logits(loaded, tok), _logits(m, tok))


def _ssm_fp32(m):
    """(name, dtype) of every A_log / D in the model (connector and LM)."""
    return {n: p.dtype for n, p in m.named_parameters() if n.endswith((".A_log", ".D"))}


def test_bf16_model_keeps_a_log_and_d_fp32_and_loads_bf16_checkpoints(tmp_path):
    """Built, cast or loaded in bf16, the connector's (and the LM's) A_log and D are fp32 (mamba_ssm);
    a checkpoint written before, with them in bf16, still loads: the values are upcast exactly."""
    from safetensors.torch import load_file, save_file

    torch.manual_seed(0)
    m = VLMamba(VLMambaConfig(tiny=True, mmc="vss-mlp", scan="csm"), kernel="ref", dtype=torch.bfloat16)
    fp32 = _ssm_fp32(m)
    assert "mm_projector.vss.A_log" in fp32 and "lm.backbone.layers.0.mixer.D" in fp32
    assert set(fp32.values()) == {torch.float32}
    assert m.mm_projector.vss.dt_proj_bias.dtype == m.mm_projector.mlp[0].weight.dtype == torch.bfloat16
    m.save_pretrained(tmp_path / "new")
    assert load_file(str(tmp_path / "new" / "model.safetensors"))["mm_projector.vss.D"].dtype == torch.float32
    # a checkpoint of the earlier format: every tensor bf16
    m.save_pretrained(tmp_path / "old")
    f = tmp_path / "old" / "model.safetensors"
    sd = {k: v.to(torch.bfloat16) for k, v in load_file(str(f)).items()}
    with torch.no_grad():
        sd["mm_projector.vss.A_log"] += 0.25  # make the loaded value observable
    save_file(sd, str(f))
    loaded = VLMamba.from_pretrained(tmp_path / "old", kernel="ref", dtype=torch.bfloat16)
    assert set(_ssm_fp32(loaded).values()) == {torch.float32}
    assert torch.equal(loaded.mm_projector.vss.A_log, sd["mm_projector.vss.A_log"].float())
    loaded.to(torch.bfloat16)
    assert set(_ssm_fp32(loaded).values()) == {torch.float32}
    S = loaded.cfg.vision_config["image_size"]
    assert torch.isfinite(loaded.encode_images(torch.randn(1, 3, S, S))).all()


def test_strict_key_check_names_the_key(tmp_path):
    from safetensors.torch import load_file, save_file

    m = _model("clip", "vss-mlp", "bsm")
    m.save_pretrained(tmp_path)
    f = tmp_path / "model.safetensors"
    sd = load_file(str(f))
    sd["mm_projector.extra.weight"] = torch.zeros(2)
    save_file(sd, str(f))
    with pytest.raises(CheckpointError, match="unexpected keys: mm_projector.extra.weight") as e:
        VLMamba.from_pretrained(tmp_path, kernel="ref")
    assert "\n" not in str(e.value)
    del sd["mm_projector.extra.weight"]
    del sd["mm_projector.vss.A_log"]
    save_file(sd, str(f))
    with pytest.raises(CheckpointError, match="missing keys: mm_projector.vss.A_log"):
        VLMamba.from_pretrained(tmp_path, kernel="ref")


def test_tower_not_included_loads_from_published_folder(tmp_path, tok):
    from safetensors.torch import save_file

    m = _model("clip", "mlp", "bsm")
    tower_dir = tmp_path / "clip"
    tower_dir.mkdir()
    (tower_dir / "config.json").write_text(json.dumps(m.vision_tower.config_dict))
    save_file({k: v.contiguous() for k, v in m.vision_tower.published_state_dict().items()},
              str(tower_dir / "model.safetensors"))
    ck = tmp_path / "ck"
    m.save_pretrained(ck, include_vision_tower=False)
    cfg = json.loads((ck / "config.json").read_text())
    assert cfg["mm_vision_tower_included"] is False
    with pytest.raises(CheckpointError, match="vision_tower=PATH"):
        VLMamba.from_pretrained(ck, kernel="ref")  # tiny config names no tower
    loaded = VLMamba.from_pretrained(ck, kernel="ref", vision_tower=str(tower_dir))
    assert torch.equal(_logits(loaded, tok), _logits(m, tok))


def test_bare_mamba_plus_mm_projector_bin(tmp_path, tok):
    from mmeval.models.mamba import save_mamba_lm

    m = _model("siglip", "mlp", "bsm")
    save_mamba_lm(m.lm, tmp_path)
    torch.save({"model.mm_projector." + k: v for k, v in m.mm_projector.state_dict().items()},
               tmp_path / "mm_projector.bin")  # as LLaVA's stage-1 writes it
    cfg = VLMambaConfig(encoder="siglip", mmc="mlp", tiny=True)
    loaded = VLMamba.from_pretrained(tmp_path, kernel="ref", config=cfg, allow_random_vision_tower=True)
    loaded.vision_tower.load_state_dict(m.vision_tower.state_dict())
    assert torch.equal(_logits(loaded, tok), _logits(m, tok))
    (tmp_path / "mm_projector.bin").unlink()
    with pytest.raises(CheckpointError, match="mm_projector.bin"):
        VLMamba.from_pretrained(tmp_path, kernel="ref", config=cfg, allow_random_vision_tower=True)
    torch.save({"model.mm_projector.0.weight": torch.zeros(1)}, tmp_path / "p.bin")
    with pytest.raises(CheckpointError, match="missing keys: 0.bias"):
        VLMamba.from_pretrained(tmp_path, kernel="ref", config=cfg, projector=str(tmp_path / "p.bin"),
                                allow_random_vision_tower=True)


# ------------------------------------------------------------------------------ runtime / adapter
def test_prefix_cache_and_batching_give_the_same_tokens(tok):
    m = _model("clip", "vss-l2", "csm")
    reqs = _requests(3, max_new=4, candidates=("yes", "no"))
    cached = _runtime(m, tok, True).generate(reqs)
    full = _runtime(m, tok, False).generate(reqs)
    single = [_runtime(m, tok, True).generate([r])[0] for r in reqs]
    for a, b, c in zip(cached, full, single, strict=True):
        assert a.error is None and a.n_tokens > 0
        assert a.text == b.text == c.text and a.n_tokens == b.n_tokens == c.n_tokens
        for k in ("yes", "no"):
            assert abs(a.candidate_probs[k] - b.candidate_probs[k]) < 1e-5
            assert abs(a.candidate_probs[k] - c.candidate_probs[k]) < 1e-5
    # different images give different answers' probabilities
    assert abs(cached[0].candidate_probs["yes"] - cached[1].candidate_probs["yes"]) > 1e-7


@pytest.fixture(scope="module")
def tok_file(tmp_path_factory):
    from tiny_tokenizer import build_tiny_tokenizer as build_word_tokenizer

    return str(build_word_tokenizer(tmp_path_factory.mktemp("tokfile")))


def test_adapter_tiny(tmp_path, tok_file):
    from mmeval.errors import UnknownNameError
    from model_adapters.vl_mamba import VLMambaAdapter

    with pytest.raises(UnknownNameError, match="known: encoder"):
        VLMambaAdapter.from_args({"tiny": "1", "bogus": "1"})
    args = {"tiny": "1", "encoder": "clip", "mmc": "vss-mlp", "scan": "csm", "tokenizer": tok_file}
    a = VLMambaAdapter.from_args(args)
    b = VLMambaAdapter.from_args(dict(args, prefix_cache="false"))
    reqs = _requests(3, max_new=3, candidates=("yes", "no"))
    pa, pb = a.generate(reqs), b.generate(reqs)
    assert [p.text for p in pa] == [p.text for p in pb]
    assert all(abs(x.candidate_probs["yes"] - y.candidate_probs["yes"]) < 1e-5 for x, y in zip(pa, pb, strict=True))
    ident = a.identity()
    assert ident["name"] == "vl-mamba" and ident["checkpoint"] is None and ident["checkpoint_sha256"] is None
    assert ident["config"]["mmc"] == "vss-mlp" and ident["config"]["scan"] == "csm"
    assert "{prompt} ASSISTANT:" in ident["config"]["prompt_template"]
    # a checkpoint saved from the tiny model loads through the adapter with identical answers
    a.model.save_pretrained(tmp_path / "ck")
    c = VLMambaAdapter.from_args({"tiny": "1", "checkpoint": str(tmp_path / "ck"), "tokenizer": tok_file})
    pc = c.generate(reqs)
    assert [p.text for p in pc] == [p.text for p in pa]
    with pytest.raises(ModelArgsError, match="mmc=mlp but checkpoint"):
        VLMambaAdapter.from_args({"tiny": "1", "checkpoint": str(tmp_path / "ck"), "mmc": "mlp"})
    ident = c.identity()
    assert ident["checkpoint"] == str(tmp_path / "ck") and len(ident["checkpoint_sha256"]) == 64


def test_image_position_is_recorded_in_identity_and_checkpoint(tmp_path):
    """The position is in the identity and the checkpoint config; a checkpoint is evaluated with its own
    position unless image_position= overrides it (then the identity records both); old configs mean llava."""
    from model_adapters.vl_mamba import VLMambaAdapter

    d = VLMambaAdapter.from_args({"tiny": "1", "mmc": "mlp"}).identity()["config"]
    assert d["image_position"] == "llava" and "checkpoint_image_position" not in d
    assert "USER: <image>\n{prompt}" in d["prompt_template"] and "LLaVA-1.5" in d["image_placement"]
    a = VLMambaAdapter.from_args({"tiny": "1", "mmc": "mlp", "image_position": "first"})
    f = a.identity()["config"]
    assert f["image_position"] == "first" and f["prompt_template"].startswith("<image>" + SYSTEM_PROMPT)
    assert "Eq. 7" in f["image_placement"]
    a.model.save_pretrained(tmp_path / "ck")
    cfg_file = tmp_path / "ck" / "config.json"
    assert json.loads(cfg_file.read_text())["vl_mamba"]["image_position"] == "first"
    b = VLMambaAdapter.from_args({"tiny": "1", "checkpoint": str(tmp_path / "ck")})
    assert b.model.cfg.image_position == "first" and b.split_prompt("q", True).before_image == [0]
    ib = b.identity()["config"]
    assert (ib["image_position"], ib["checkpoint_image_position"]) == ("first", "first")
    c = VLMambaAdapter.from_args({"tiny": "1", "checkpoint": str(tmp_path / "ck"), "image_position": "llava"})
    ic = c.identity()["config"]
    assert (ic["image_position"], ic["checkpoint_image_position"]) == ("llava", "first")
    assert len(c.split_prompt("q", True).before_image) > 1
    with pytest.raises(ModelArgsError, match="model vl-mamba: image_position must be one of llava, first"):
        VLMambaAdapter.from_args({"tiny": "1", "checkpoint": str(tmp_path / "ck"), "image_position": "last"})
    # a config.json written before the option existed: LLaVA's position
    raw = json.loads(cfg_file.read_text())
    del raw["vl_mamba"]["image_position"]
    cfg_file.write_text(json.dumps(raw))
    old = VLMambaAdapter.from_args({"tiny": "1", "checkpoint": str(tmp_path / "ck")})
    assert old.model.cfg.image_position == old.identity()["config"]["checkpoint_image_position"] == "llava"


def test_adapter_default_tiny_tokenizer_and_unreadable_image():
    from model_adapters.vl_mamba import VLMambaAdapter

    a = VLMambaAdapter.from_args({"tiny": "1", "mmc": "mlp"})  # in-memory byte-level tokenizer
    reqs = _requests(2, max_new=2)
    reqs[1] = Request(doc_id="bad", prompt="q", images=(ImageRef(source="broken", data=b"notapng"),),
                      group_key="bad", generation=GenerationConfig(max_new_tokens=2))
    p = a.generate(reqs)
    assert p[0].error is None and p[1].error and "broken" in p[1].error


# ------------------------------------------------------------------------------ one template
@pytest.mark.parametrize("tokenizer,position", [("word", "llava"), ("byte", "llava"), ("word", "first"),
                                                ("byte", "first")])
def test_inference_prompt_is_the_training_prompt(tokenizer, position, tok_file):
    """The ids the adapter asks a question with (BOS + before the image, the image placeholder, after
    it) are the finetune formatter's ids of the same conversation up to the answer, for both image positions."""
    from model_adapters.vl_mamba import VLMambaAdapter
    from tests.finetune.helpers import training_prompt_ids

    args = {"tiny": "1", "mmc": "mlp", "image_position": position} | \
        ({"tokenizer": tok_file} if tokenizer == "word" else {})
    a = VLMambaAdapter.from_args(args)
    assert a.model.cfg.image_position == position
    for question in ("what color is the car ?", "is there a cat ?\nanswer the question using a single word ."):
        for has_image in (True, False):
            split = a.split_prompt(question, has_image)
            asked = split.before_image + ([IMAGE_TOKEN_INDEX] if has_image else []) + split.after_image
            assert asked == training_prompt_ids("vl-mamba", a.model, a.tokenizer, question, has_image)
            assert asked[0] == 0 and asked.count(IMAGE_TOKEN_INDEX) == int(has_image)
    # and both are the template's text tokenised as LLaVA does
    split = a.split_prompt("what color is the car ?", True)
    assert split.before_image + [IMAGE_TOKEN_INDEX] + split.after_image == \
        tokenize_with_image(build_prompt("what color is the car ?", image_position=position), a.tokenizer)
    assert (split.before_image == [0]) == (position == "first")
