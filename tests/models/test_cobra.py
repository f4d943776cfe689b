import io
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mmeval.errors import CheckpointError, ModelArgsError, UnknownNameError
from mmeval.models.cobra import (
    IGNORE_INDEX,
    Cobra,
    CobraConfig,
    build_prompt,
    build_tiny_tokenizer,
    encode_prompt,
    lm_sizes_from_checkpoint,
    load_cobra,
    read_checkpoint,
    save_cobra,
)
from mmeval.models.vision_timm import save_vision_weights
from mmeval.models.vlm_runtime import PromptSplit
from mmeval.types import GenerationConfig, ImageRef, Request
from model_adapters.cobra import CobraAdapter

PROJECTORS = ["no-align+fused-gelu-mlp", "gelu-mlp", "linear", "fused-ldpnet", "ldpnet"]


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return Cobra(CobraConfig.tiny_config(vocab_size=len(tok))).eval()


def _png(color, size=(40, 30)):
    b = io.BytesIO()
    img = Image.new("RGB", size, color)
    for x in range(0, size[0], 3):  # some structure so patches differ
        img.putpixel((x, x % size[1]), (255 - color[0], color[1], 255 - color[2]))
    img.save(b, "PNG")
    return b.getvalue()


IMAGES = [ImageRef(source=f"img{i}", data=_png(c)) for i, c in enumerate([(250, 10, 10), (10, 250, 10), (5, 5, 200)])]
QUESTIONS = ["Is there a cat in the image?", "What color is the car?", "How many dog are there?",
             "Is this a red picture?", "Is there a person on the photo?"]


def _requests(max_new=8, candidates=("Yes", "No")):
    reqs = []
    for i, q in enumerate(QUESTIONS * 2):
        img = IMAGES[i % len(IMAGES)]
        reqs.append(Request(doc_id=str(i), prompt=q, images=(img,), group_key=img.source,
                            generation=GenerationConfig(max_new_tokens=max_new, candidates=candidates)))
    return reqs


# ---- prompt --------------------------------------------------------------------------------
def test_prompt_template_strings():
    # cobra/models/backbones/llm/prompting/zephyr_prompter.py (single human turn, no system prompt)
    assert build_prompt("  <image>\nIs there a cat?\n") == "<|user|>\nIs there a cat?<|endoftext|>\n<|assistant|>\n"
    # mamba_prompter.py, for the base-LLM ablations
    assert build_prompt("Is there a cat?", "mamba") == "In: Is there a cat?\nOut: "
    assert CobraConfig().prompt_style == "zephyr"
    assert CobraConfig(llm_backbone_id="mamba-2.8b-slimpj").prompt_style == "mamba"


def test_prompt_tokens_and_split(tok):
    ids = encode_prompt(tok, "Is there a cat?")
    tokens = ["<|user|>", "\n", "Is", "there", "a", "cat", "?", "<|endoftext|>", "\n", "<|assistant|>", "\n"]
    assert tok.convert_ids_to_tokens(ids) == tokens
    assert ids == [3, 5, 38, 11, 12, 21, 54, 0, 5, 4, 5]  # no BOS; <|endoftext|> is id 0 as in GPT-NeoX
    a = CobraAdapter.from_args({"tiny": "1"})
    assert a.split_prompt("Is there a cat?", True) == PromptSplit(before_image=[], after_image=ids)
    assert a.runtime.eos_token_id == 0


# ---- training entry points -------------------------------------------------------------------
def test_patches_inserted_first(model, tok):
    imgs = [Image.open(io.BytesIO(r.data)) for r in IMAGES[:2]]
    pv = {k: torch.stack([model.image_transform(im)[k] for im in imgs]) for k in ("dino", "siglip")}
    seqs = [encode_prompt(tok, "Is there a cat?"), encode_prompt(tok, "What color is the car in the image?")]
    L = max(map(len, seqs))
    ids = torch.tensor([s + [1] * (L - len(s)) for s in seqs])
    lengths = torch.tensor([len(s) for s in seqs])
    labels = ids.clone()
    embeds, new_len, new_labels = model.prepare_inputs(ids, lengths, pv, labels)
    P = model.num_image_tokens
    assert P == 9
    patches = model.encode_images(pv)
    torch.testing.assert_close(embeds[:, :P], patches)
    torch.testing.assert_close(embeds[:, P:], model.lm.embed(ids))
    assert new_len.tolist() == [len(seqs[0]) + P, len(seqs[1]) + P]
    assert (new_labels[:, :P] == IGNORE_INDEX).all()
    assert new_labels[0, P:P + len(seqs[0])].tolist() == seqs[0]
    assert (new_labels[0, P + len(seqs[0]):] == IGNORE_INDEX).all()  # padding is not a target
    # a text-only row keeps its text at position 0 and its length (Cobra's unimodal rows)
    e2, l2, lab2 = model.prepare_inputs(ids, lengths, pv, labels, has_image=torch.tensor([True, False]))
    torch.testing.assert_close(e2[1, :L], model.lm.embed(ids[1]))
    assert l2.tolist() == [len(seqs[0]) + P, len(seqs[1])]
    assert lab2[1, :len(seqs[1])].tolist() == seqs[1]


def test_forward_logits_and_loss(model, tok):
    img = Image.open(io.BytesIO(IMAGES[0].data))
    pv = {k: v[None] for k, v in model.image_transform(img).items()}
    ids = torch.tensor([encode_prompt(tok, "Is there a cat?")])
    labels = ids.clone()
    labels[0, :3] = IGNORE_INDEX
    out = model(ids, torch.tensor([ids.shape[1]]), pv, labels=labels)
    P = model.num_image_tokens
    assert out.logits.shape == (1, P + ids.shape[1], model.lm.config.padded_vocab_size)
    # the same sequence run by hand through the LM
    embeds = torch.cat([model.encode_images(pv), model.lm.embed(ids)], 1)
    torch.testing.assert_close(out.logits, model.lm(inputs_embeds=embeds).logits)
    tgt = ids[0, 3:]
    ref = F.cross_entropy(out.logits[0, P + 2:-1].float(), tgt)  # position t predicts token t+1
    torch.testing.assert_close(out.loss, ref)
    out.loss.backward()
    assert model.projector.projector[0].weight.grad is not None
    assert model.lm.backbone.layers[0].mixer.in_proj.weight.grad is not None
    model.zero_grad(set_to_none=True)


# ---- generation through VLMRuntime ---------------------------------------------------------
@pytest.mark.parametrize("projector", PROJECTORS)
def test_generation_each_projector_prefix_cache_equal(projector):
    reqs = _requests()
    a = CobraAdapter.from_args({"tiny": "1", "projector": projector})
    assert a.model.projector.kind == projector.split("+")[-1]
    assert a.runtime.prefix_cache
    outs = {"true": a.generate(reqs)}
    a.runtime.prefix_cache = False  # the same weights, every request as one full sequence
    outs["false"] = a.generate(reqs)
    for p, q in zip(outs["true"], outs["false"], strict=True):
        assert p.error is None and p.n_tokens > 0
        assert (p.text, p.n_tokens) == (q.text, q.n_tokens)
        assert p.candidate_probs.keys() == {"Yes", "No"}
        for c in p.candidate_probs:
            assert abs(p.candidate_probs[c] - q.candidate_probs[c]) < 1e-4
    # the image matters: the same question on different images does not give identical probabilities
    probs = [outs["true"][i].candidate_probs["Yes"] for i in (0, 5)]  # same question, images 0 and 2
    assert probs[0] != probs[1]


def test_batched_equals_one_by_one():
    a = CobraAdapter.from_args({"tiny": "1", "prefix_cache": "false"})
    reqs = _requests(max_new=10)
    batched = a.generate(reqs)
    one = CobraAdapter.from_args({"tiny": "1"})  # same seed -> same weights; prefix cache on
    single = [one.generate([r])[0] for r in reqs[:4]]
    for b, s in zip(batched[:4], single, strict=True):
        assert (b.text, b.n_tokens) == (s.text, s.n_tokens)
        assert abs(b.candidate_probs["Yes"] - s.candidate_probs["Yes"]) < 1e-4
    # and the greedy tokens are what the model's own argmax loop gives
    m, tk = a.model, a.tokenizer
    r = reqs[1]
    pv = {k: v[None] for k, v in m.image_transform(r.images[0].load()).items()}
    ids = encode_prompt(tk, r.prompt)
    embeds = torch.cat([m.encode_images(pv), m.lm.embed(torch.tensor([ids]))], 1)
    toks = []
    with torch.no_grad():
        first = torch.softmax(m.lm(inputs_embeds=embeds).logits[0, -1].float(), -1)
        assert abs(float(first[tk.convert_tokens_to_ids("Yes")]) - batched[1].candidate_probs["Yes"]) < 1e-5
        for _ in range(10):
            nxt = int(m.lm(inputs_embeds=embeds).logits[0, -1, :m.lm.config.vocab_size].argmax())
            if nxt == tk.eos_token_id:
                break
            toks.append(nxt)
            embeds = torch.cat([embeds, m.lm.embed(torch.tensor([[nxt]]))], 1)
    assert batched[1].n_tokens == len(toks)
    assert batched[1].text == tk.decode(toks, skip_special_tokens=True).strip()


# ---- checkpoints -------------------------------------------------------------------------------
def _save_run(tmp_path, projector="no-align+fused-gelu-mlp"):
    a = CobraAdapter.from_args({"tiny": "1", "projector": projector, "seed": "3"})
    run = save_cobra(a.model, tmp_path / "cobra-tiny+run")
    save_vision_weights(a.model.vision, tmp_path / "vision")
    a.tokenizer.save_pretrained(run)
    return a, run


def test_checkpoint_layout_and_roundtrip(tmp_path):
    a, run = _save_run(tmp_path)
    raw = json.loads((run / "config.json").read_text())
    assert raw["model"]["arch_specifier"] == "no-align+fused-gelu-mlp"
    assert raw["model"]["llm_backbone_id"] == "mamba-2.8b-zephyr"
    sd = torch.load(run / "checkpoints" / "latest-checkpoint.pt", weights_only=True)["model"]
    assert set(sd) == {"projector", "llm_backbone"}
    assert set(sd["projector"]) == {f"projector.{i}.{w}" for i in (0, 2, 4) for w in ("weight", "bias")}
    keys = set(sd["llm_backbone"])
    assert {"llm.backbone.embedding.weight", "llm.backbone.norm_f.weight", "llm.lm_head.weight",
            "llm.backbone.layers.1.mixer.A_log", "llm.backbone.layers.0.norm.weight"} <= keys
    assert all(k.startswith("llm.") for k in keys)
    assert lm_sizes_from_checkpoint(sd["llm_backbone"]) == dict(vocab_size=72, d_model=32, n_layer=2, d_state=4,
                                                                expand=2, d_conv=4)

    m2, _ = load_cobra(run, vision_weights=tmp_path / "vision")
    img = IMAGES[0].load()
    pv = {k: v[None] for k, v in a.model.image_transform(img).items()}
    ids = torch.tensor([encode_prompt(a.tokenizer, "Is there a cat?")])
    with torch.no_grad():
        ref = a.model(ids, torch.tensor([ids.shape[1]]), pv).logits
        got = m2(ids, torch.tensor([ids.shape[1]]), pv).logits
    assert torch.equal(ref, got)

    b = CobraAdapter.from_args({"checkpoint": str(run), "vision": str(tmp_path / "vision")})
    reqs = _requests(max_new=6)
    for p, q in zip(a.generate(reqs), b.generate(reqs), strict=True):
        assert (p.text, p.candidate_probs) == (q.text, q.candidate_probs)
    ident = b.identity()
    assert ident["name"] == "cobra" and ident["checkpoint"] == str(run)
    assert len(ident["checkpoint_sha256"]) == 64
    assert ident["config"]["prompt_template"] == "<|user|>\n{prompt}<|endoftext|>\n<|assistant|>\n"
    # the checkpoint's .pt file path resolves to its run dir as well
    c, _ = load_cobra(run / "checkpoints" / "latest-checkpoint.pt", vision_weights=tmp_path / "vision")
    assert c.cfg.arch_specifier == "no-align+fused-gelu-mlp"


def _edit_checkpoint(run, fn):
    f = run / "checkpoints" / "latest-checkpoint.pt"
    obj = torch.load(f, weights_only=True)
    fn(obj["model"])
    torch.save(obj, f)


def test_strict_key_check_names_the_key(tmp_path):
    _, run = _save_run(tmp_path)
    vision = tmp_path / "vision"
    _edit_checkpoint(run, lambda m: m["llm_backbone"].pop("llm.backbone.layers.1.mixer.dt_proj.bias"))
    with pytest.raises(CheckpointError, match=r"missing keys: llm\.backbone\.layers\.1\.mixer\.dt_proj\.bias") as e:
        load_cobra(run, vision_weights=vision)
    assert "\n" not in str(e.value)

    _, run = _save_run(tmp_path / "b")
    _edit_checkpoint(run, lambda m: m["projector"].__setitem__("projector.6.weight", torch.zeros(1)))
    with pytest.raises(CheckpointError, match=r"unexpected keys: projector\.6\.weight"):
        load_cobra(run, vision_weights=vision)

    _, run = _save_run(tmp_path / "c")
    _edit_checkpoint(run, lambda m: m["llm_backbone"].__setitem__(
        "llm.backbone.norm_f.weight", torch.ones(7)))
    with pytest.raises(CheckpointError, match=r"llm\.backbone\.norm_f\.weight \(7,\)"):
        load_cobra(run, vision_weights=vision)

    _, run = _save_run(tmp_path / "d")
    _edit_checkpoint(run, lambda m: m.pop("llm_backbone"))
    with pytest.raises(CheckpointError, match="llm_backbone"):
        read_checkpoint(run) and load_cobra(run, vision_weights=vision)

    # a projector that does not match the config is reported, not silently rebuilt
    _, run = _save_run(tmp_path / "e")
    with pytest.raises(CheckpointError, match="arch_specifier"):
        load_cobra(run, vision_weights=vision, overrides={"arch_specifier": "gelu-mlp"})


# ---- adapter construction ------------------------------------------------------------------------
def test_adapter_args():
    with pytest.raises(UnknownNameError, match="checkpoint"):
        CobraAdapter.from_args({"tiny": "1", "bogus": "2"})
    with pytest.raises(ModelArgsError, match="exactly one"):
        CobraAdapter.from_args({"tiny": "1", "random_init": "1"})
    with pytest.raises(ModelArgsError, match="exactly one"):
        CobraAdapter.from_args({})
    assert CobraAdapter.preferred_protocol == "prismatic" and CobraAdapter.name == "cobra"


def test_random_init_full_size_builds_without_files():
    a = CobraAdapter.from_args({"random_init": "1", "device": "meta"})
    m = a.model
    assert m.vision.embed_dim == 2176 and m.num_image_tokens == 729
    assert (m.lm.config.d_model, m.lm.config.n_layer, m.lm.config.padded_vocab_size) == (2560, 64, 50280)
    assert [tuple(layer.weight.shape) for layer in m.projector.projector if isinstance(layer, torch.nn.Linear)] == \
        [(8704, 2176), (2560, 8704), (2560, 2560)]
    assert m.image_transform(Image.new("RGB", (500, 300)))["siglip"].shape == (3, 384, 384)
    n = sum(p.numel() for p in m.parameters())
    assert 3.4e9 < n < 3.7e9  # "Cobra-3.5B"


# ---- one template --------------------------------------------------------------------------
@pytest.mark.parametrize("llm", ["mamba-2.8b-zephyr", "mamba-2.8b-slimpj"])
def test_inference_prompt_is_the_training_prompt(llm):
    """The ids the adapter asks a question with (after the patches; no BOS) are the finetune
    formatter's ids of the same conversation up to the answer, for the zephyr and the base-LLM template."""
    from tests.finetune.helpers import training_prompt_ids

    a = CobraAdapter.from_args({"tiny": "1", "llm": llm})
    style = "zephyr" if llm.endswith("zephyr") else "mamba"
    assert a.model.cfg.prompt_style == style
    for question in ("Is there a cat?", "What color is the car?\nAnswer the question using a single word or phrase."):
        split = a.split_prompt(question, True)
        assert split.before_image == []  # the image comes first
        assert split.after_image == training_prompt_ids("cobra", a.model, a.tokenizer, question, True)
        assert split.after_image == encode_prompt(a.tokenizer, question, style)
        text_only = a.split_prompt(question, False)
        assert text_only.before_image + text_only.after_image == \
            training_prompt_ids("cobra", a.model, a.tokenizer, question, False)
