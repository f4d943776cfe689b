"""The label mask is exactly the assistant spans (expected token lists written out)."""
import torch

from mmeval.finetune.collate import IGNORE_INDEX, Collator
from mmeval.finetune.specs import get_spec

ONE = {"id": "a", "image": "x.png", "conversations": [
    {"from": "human", "value": "<image>\nWhat color is the cat ?"}, {"from": "gpt", "value": "red"}]}
MULTI = {"id": "b", "image": "x.png", "conversations": [
    {"from": "human", "value": "What color is the cat ?\n<image>"}, {"from": "gpt", "value": "blue cat"},
    {"from": "human", "value": "Is this a dog ?"}, {"from": "gpt", "value": "no"}]}
TEXT = {"id": "c", "conversations": [{"from": "human", "value": "Is this a dog ?"}, {"from": "gpt", "value": "yes"}]}


class _Cfg:
    prompt_style = "zephyr"


class _CobraStub:
    cfg = _Cfg()


def _split(tok, ids, labels):
    toks = [("<IMG>" if i < 0 else tok.convert_ids_to_tokens(i)) for i in ids]
    return toks, [t for t, lab in zip(toks, labels, strict=True) if lab != IGNORE_INDEX]


def test_cobra_chat_mask_single_and_multi_turn():
    from mmeval.models.cobra import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    fmt = get_spec("cobra").formatter(_CobraStub(), tok, "chat", 2048)
    ids, labels = fmt(ONE)
    toks, targets = _split(tok, ids, labels)
    assert toks == ["<|user|>", "\n", "What", "color", "is", "the", "cat", "?", "<|endoftext|>", "\n",
                    "<|assistant|>", "\n", "red", "<|endoftext|>"]
    assert targets == ["red", "<|endoftext|>"]
    assert labels[-2:] == ids[-2:] and set(labels[:-2]) == {IGNORE_INDEX}

    ids, labels = fmt(MULTI)
    toks, targets = _split(tok, ids, labels)
    assert toks == ["<|user|>", "\n", "What", "color", "is", "the", "cat", "?", "<|endoftext|>", "\n",
                    "<|assistant|>", "\n", "blue", "cat", "<|endoftext|>",
                    "\n", "<|user|>", "\n", "Is", "this", "a", "dog", "?", "<|endoftext|>", "\n",
                    "<|assistant|>", "\n", "no", "<|endoftext|>"]
    assert targets == ["blue", "cat", "<|endoftext|>", "no", "<|endoftext|>"]
    mask = [lab != IGNORE_INDEX for lab in labels]
    assert mask == [False] * 12 + [True] * 3 + [False] * 12 + [True] * 2

    ids, labels = fmt(TEXT)
    assert _split(tok, ids, labels)[1] == ["yes", "<|endoftext|>"]


def test_cobra_plain_align_targets_caption_and_eos():
    from mmeval.models.cobra import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    fmt = get_spec("cobra").formatter(_CobraStub(), tok, "plain", 2048)
    ids, labels = fmt({"image": "x", "conversations": [{"from": "human", "value": "Render a photo .\n<image>"},
                                                        {"from": "gpt", "value": "a red car"}]})
    toks, targets = _split(tok, ids, labels)
    assert toks == targets == ["a", "red", "car", "<|endoftext|>"]  # prompt dropped; the patches come first


def test_vl_mamba_chat_mask_single_and_multi_turn():
    from mmeval.models.vl_mamba import (
        IMAGE_TOKEN_INDEX,
        SYSTEM_PROMPT,
        conversation_text,
        tokenize_with_image,
    )
    from tests.finetune.helpers import vl_mamba_word_tokenizer

    tok = vl_mamba_word_tokenizer()
    fmt = get_spec("vl-mamba").formatter(None, tok, "chat", 2048)
    sys_toks = tok.convert_ids_to_tokens(tok.encode(SYSTEM_PROMPT, add_special_tokens=False))
    ids, labels = fmt(ONE)
    toks, targets = _split(tok, ids, labels)
    assert toks == ["<|endoftext|>"] + sys_toks + ["USER", ":", "<IMG>", "\n", "What", "color", "is", "the", "cat",
                                                   "?", "ASSISTANT", ":", "red", "<|endoftext|>"]
    assert targets == ["red", "<|endoftext|>"]
    # the same ids as the model module's own LLaVA-v1 text + tokenizer_image_token
    assert ids == tokenize_with_image(conversation_text([("What color is the cat ?", "red")]), tok, IMAGE_TOKEN_INDEX)

    ids, labels = fmt(MULTI)
    toks, targets = _split(tok, ids, labels)
    n_head = 1 + len(sys_toks) + 2
    assert toks[n_head:] == ["<IMG>", "\n", "What", "color", "is", "the", "cat", "?", "ASSISTANT", ":", "blue", "cat",
                             "<|endoftext|>", "USER", ":", "Is", "this", "a", "dog", "?", "ASSISTANT", ":", "no",
                             "<|endoftext|>"]
    assert targets == ["blue", "cat", "<|endoftext|>", "no", "<|endoftext|>"]
    assert ids == tokenize_with_image(conversation_text([("What color is the cat ?", "blue cat"),
                                                         ("Is this a dog ?", "no")]), tok, IMAGE_TOKEN_INDEX)
    ids, labels = fmt(TEXT)
    assert IMAGE_TOKEN_INDEX not in ids and _split(tok, ids, labels)[1] == ["yes", "<|endoftext|>"]


def test_vl_mamba_plain_align():
    from tests.finetune.helpers import vl_mamba_word_tokenizer

    tok = vl_mamba_word_tokenizer()
    fmt = get_spec("vl-mamba").formatter(None, tok, "plain", 2048)
    ids, labels = fmt({"image": "x", "conversations": [{"from": "human", "value": "<image>\nWhat ?"},
                                                        {"from": "gpt", "value": "a red cat"}]})
    toks, targets = _split(tok, ids, labels)
    assert toks == ["<|endoftext|>", "<IMG>", "a", "red", "cat", "\n"] and targets == ["a", "red", "cat", "\n"]


def test_collator_pads_and_counts_targets():
    items = [dict(index=0, input_ids=torch.tensor([5, 6, 7]), labels=torch.tensor([5, IGNORE_INDEX, 7]),
                  pixel_values=torch.zeros(3, 2, 2)),
             dict(index=1, input_ids=torch.tensor([8]), labels=torch.tensor([8]), pixel_values=None)]
    b = Collator(pad_id=1, image_first=True)(items)
    assert b["input_ids"].tolist() == [[5, 6, 7], [8, 1, 1]]
    assert b["labels"].tolist() == [[5, -100, 7], [8, -100, -100]]
    assert b["has_image"].tolist() == [True, False] and b["pixel_values"].shape == (1, 3, 2, 2)
    assert b["n_targets"] == 2  # row 0: 7 and (image first) 5; row 1: position 0 has nothing before it
    assert Collator(pad_id=1, image_first=False)(items)["n_targets"] == 1
