"""Tokenisation with each model's chat template, assistant-only labels, and batch collation.

The template is the model's `mmeval.models.chat.ChatTemplate` (its finetune spec hands it over),
the same one its adapter builds the inference prompt with: a conversation becomes segments
`(text | IMAGE, is_target)`, each text segment is tokenised on its own (no special tokens added)
and the ids concatenated, so the label mask is exactly the tokens of the target segments -- the
assistant replies and their end-of-turn token -- and -100 everywhere else (system prompt, user
turns, role tags, image placeholder). This is how Cobra's FinetuneDataset builds labels (one
`add_turn` string per turn, tokenised separately, human turns IGNORE); LLaVA's `preprocess_v1`
gets the same mask by re-tokenising each round.

Templates ("chat" is the model's own, written in its model module):
* Cobra chat (`mmeval.models.cobra.chat_segments`, Cobra's ZephyrChatPromptBuilder): user turn
  ``"<|user|>\\n{msg}<|endoftext|>\\n<|assistant|>\\n"`` (turns after the first get a leading "\\n"),
  assistant turn ``"{reply}<|endoftext|>"``; ``<image>`` removed from the text, the patches go first.
* Cobra / VL-Mamba align ("plain", LLaVA `--version plain` / Cobra AlignDataset): the human prompt is
  dropped, the target is ``"{caption}" + terminator`` after the image.
* VL-Mamba chat (`mmeval.models.vl_mamba.chat_segments`: LLaVA-1.5's vicuna_v1 with GPT-NeoX): BOS
  <|endoftext|>, ``"{SYSTEM} USER: <image>\\n{msg} ASSISTANT:"`` then ``" {reply}<|endoftext|>"`` per
  round, rounds joined without separator; the image placeholder id (-200) is spliced by the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mmeval.models.chat import IGNORE_INDEX, ChatTemplate, turns_of

__all__ = ["IGNORE_INDEX", "Collator", "Formatter"]


@dataclass
class Formatter:
    """sample -> (input_ids, labels) under `template`'s chat segments, or its "plain" (align) ones."""

    template: ChatTemplate
    plain: bool = False
    max_length: int = 2048

    def encode(self, sample: dict) -> tuple[list[int], list[int]]:
        has_image = "image" in sample
        turns = turns_of(sample["conversations"])
        segments = self.template.plain(turns) if self.plain else self.template.chat(turns, has_image)
        ids, labels = self.template.encode(segments, has_image)
        return ids[: self.max_length], labels[: self.max_length]

    __call__ = encode


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
        n_targets = int((labels[:, 1:] != IGNORE_INDEX).sum()) \
            + int(((labels[:, 0] != IGNORE_INDEX) & first_counts).sum())
        return dict(input_ids=ids, labels=labels, lengths=lengths, has_image=has_image,
                    pixel_values=_stack_pixels([it["pixel_values"] for it in items if it["pixel_values"] is not None]),
                    index=torch.tensor([it["index"] for it in items], dtype=torch.long), n_targets=n_targets)
