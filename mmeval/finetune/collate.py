"""Tokenisation with each model's chat template, assistant-only labels, and batch collation.

A conversation is turned into *segments* `(text | IMAGE, is_target)`; each text segment is tokenised
on its own (no special tokens added) and the ids concatenated, so the label mask is exactly the
tokens of the target segments -- the assistant replies and their end-of-turn token -- and -100
everywhere else (system prompt, user turns, role tags, image placeholder). This is how Cobra's
FinetuneDataset builds labels (one `add_turn` string per turn, tokenised separately, human turns
IGNORE); LLaVA's `preprocess_v1` gets the same mask by re-tokenising each round.

Templates (taken from the model modules where they exist):
* Cobra chat (`mmeval.models.cobra.build_prompt`, Cobra's ZephyrChatPromptBuilder): user turn
  ``"<|user|>\\n{msg}<|endoftext|>\\n<|assistant|>\\n"`` (turns after the first get a leading "\\n"),
  assistant turn ``"{reply}<|endoftext|>"``; ``<image>`` removed from the text, the patches go first.
* Cobra / VL-Mamba align ("plain", LLaVA `--version plain` / Cobra AlignDataset): the human prompt is
  dropped, the target is ``"{caption}" + terminator`` after the image.
* VL-Mamba chat (`mmeval.models.vl_mamba`: LLaVA-1.5's vicuna_v1 with GPT-NeoX): BOS <|endoftext|>,
  ``"{SYSTEM} USER: <image>\\n{msg} ASSISTANT:"`` then ``" {reply}<|endoftext|>"`` per round, rounds
  joined without separator; the image placeholder id (-200) is spliced by the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

IGNORE_INDEX = -100
IMAGE = object()  # segment sentinel: the model's image placeholder token goes here

def _strip_image(text: str) -> str:
    return text.replace("<image>", "").strip()


# ---- templates: conversation -> segments ---------------------------------------------------
def cobra_chat_segments(conv: Sequence[dict], eos: str, style: str = "zephyr") -> list[tuple[Any, bool]]:
    from mmeval.models.cobra import build_prompt

    segs: list[tuple[Any, bool]] = []
    for i, turn in enumerate(conv):
        if i % 2 == 0:
            segs.append((("" if i == 0 else "\n") + build_prompt(turn["value"], style), False))
        else:
            msg = _strip_image(turn["value"])
            segs.append(((msg if msg else " ") + eos, True))
    return segs


def plain_segments(conv: Sequence[dict], terminator: str, image_placeholder: bool) -> list[tuple[Any, bool]]:
    caption = _strip_image(conv[-1]["value"])
    segs: list[tuple[Any, bool]] = [(IMAGE, False)] if image_placeholder else []
    return segs + [(caption + terminator, True)]


def vl_mamba_chat_segments(conv: Sequence[dict], eos: str, has_image: bool) -> list[tuple[Any, bool]]:
    """VL-Mamba's LLaVA-v1 text (`mmeval.models.vl_mamba.conversation_text`), cut into segments:
    "{SYSTEM} USER: " [<image> "\n"]{msg} " ASSISTANT:" | target " {answer}<eos>" | "USER: ..." ..."""
    from mmeval.models.vl_mamba import SYSTEM_PROMPT

    segs: list[tuple[Any, bool]] = []
    for i, turn in enumerate(conv):
        if i % 2 == 0:
            msg = _strip_image(turn["value"])
            head = (SYSTEM_PROMPT + " ") if i == 0 else ""
            if i == 0 and has_image:  # LLaVA moves <image> to the front of the first message: "<image>\n{msg}"
                segs += [(head + "USER: ", False), (IMAGE, False), (f"\n{msg} ASSISTANT:", False)]
            else:
                segs.append((head + f"USER: {msg} ASSISTANT:", False))
        else:
            segs.append((" " + _strip_image(turn["value"]) + eos, True))
    return segs


@dataclass
class Formatter:
    """sample -> (input_ids, labels). `segments(conversation, has_image)` is the template."""

    tokenizer: Any
    segments: Callable[[Sequence[dict], bool], list]
    max_length: int = 2048
    image_token_id: Optional[int] = None
    bos_id: Optional[int] = None

    def encode(self, sample: dict) -> tuple[list[int], list[int]]:
        has_image = "image" in sample
        ids: list[int] = [] if self.bos_id is None else [self.bos_id]
        labels: list[int] = [IGNORE_INDEX] * len(ids)
        for seg, target in self.segments(sample["conversations"], has_image):
            if seg is IMAGE:
                if not has_image:
                    continue
                if self.image_token_id is None:
                    raise ValueError("template has an image placeholder but the model gave no image_token_id")
                toks = [self.image_token_id]
                target = False
            else:
                toks = self._tok(seg)
            ids += toks
            labels += toks if target else [IGNORE_INDEX] * len(toks)
        return ids[: self.max_length], labels[: self.max_length]

    __call__ = encode

    def _tok(self, text: str) -> list[int]:
        """Tokenise without added special tokens; a literal EOS string becomes the EOS id."""
        eos = getattr(self.tokenizer, "eos_token", None)
        if eos and eos in text:
            out: list[int] = []
            for j, part in enumerate(text.split(eos)):
                if j:
                    out.append(int(self.tokenizer.eos_token_id))
                if part:
                    out += self._tok(part)
            return out
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []


# ---- collation -------------------------------------------------------------------------------
def _stack_pixels(pvs: list):
    if not pvs:
        return None
    if isinstance(pvs[0], dict):
        return {k: torch.stack([p[k] for p in pvs]) for k in pvs[0]}
    return torch.stack(pvs)


@dataclass
class Collator:
    """Right-pads ids (pad id) and labels (-100); image rows' pixel values stacked in row order
    (text-only rows have none; `has_image` says which rows have one). `image_first`: the model puts
    the image before text position 0 (Cobra), so a label at text position 0 is still predicted.
    `n_targets`: labelled next-token positions of the batch (the loss's denominator share)."""

    pad_id: int
    image_first: bool = False

    def __call__(self, items: list[dict]) -> dict[str, Any]:
        B = len(items)
        L = max(1, max(len(it["input_ids"]) for it in items))
        ids = torch.full((B, L), self.pad_id, dtype=torch.long)
        labels = torch.full((B, L), IGNORE_INDEX, dtype=torch.long)
        lengths = torch.zeros(B, dtype=torch.long)
        for i, it in enumerate(items):
            n = len(it["input_ids"])
            ids[i, :n], labels[i, :n], lengths[i] = it["input_ids"], it["labels"], n
        has_image = torch.tensor([it["pixel_values"] is not None for it in items], dtype=torch.bool)
        first_counts = has_image if self.image_first else torch.zeros(B, dtype=torch.bool)
        n_targets = int((labels[:, 1:] != IGNORE_INDEX).sum()) + int(((labels[:, 0] != IGNORE_INDEX) & first_counts).sum())
        return dict(input_ids=ids, labels=labels, lengths=lengths, has_image=has_image,
                    pixel_values=_stack_pixels([it["pixel_values"] for it in items if it["pixel_values"] is not None]),
                    index=torch.tensor([it["index"] for it in items], dtype=torch.long), n_targets=n_targets)
