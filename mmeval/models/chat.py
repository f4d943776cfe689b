"""A model's chat template as *segments*, so one builder serves training and inference.

A template turns a conversation -- (user message, answer) turns, the last answer None when the
model is to answer -- into segments `(text | IMAGE, is_target)`. Each text segment is tokenised on
its own (no special tokens added; a literal EOS string becomes the EOS id) and the ids are
concatenated:

* training (`mmeval.finetune.collate.Formatter`): the labels are the ids of the target segments
  (the assistant replies and their end-of-turn token), -100 elsewhere;
* inference (`ChatTemplate.prompt_split`, what `VLMRuntime` caches on): the ids of a one-turn
  conversation without its answer, cut at the image.

So the ids a model is asked with are the training ids of the same conversation up to the answer.
`IMAGE` is the image's place: a placeholder id in the ids when the model splices the image into
the text (VL-Mamba), or the front of the sequence when the model puts the image before the first
text token (Cobra; `image_token_id` None).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


class _Image:
    def __repr__(self) -> str:
        return "IMAGE"


IMAGE: Any = _Image()  # segment sentinel: where the image goes
Turn = tuple[str, str | None]  # (user message, answer or None)
Segment = tuple[str | _Image, bool]  # (text or IMAGE, is_target)


def strip_image(text: str) -> str:
    """A message without the `<image>` placeholder and surrounding whitespace (LLaVA's preprocessing)."""
    return text.replace("<image>", "").strip()


def turns_of(conversation: Sequence[dict]) -> list[Turn]:
    """LLaVA-format turns ([{from, value}, ...], human and gpt alternating) -> (message, answer) pairs,
    `<image>` removed from every value; a trailing human turn gets answer None."""
    values = [strip_image(t["value"]) for t in conversation]
    return [(values[i], values[i + 1] if i + 1 < len(values) else None) for i in range(0, len(values), 2)]


def render(segments: Sequence[Segment], image: str = "<image>") -> str:
    """The segments as one text, `image` at the image's place."""
    return "".join(image if piece is IMAGE else piece for piece, _ in segments)


def encode_text(tokenizer, text: str) -> list[int]:
    """Token ids of `text` without added special tokens; each literal EOS string becomes the EOS id
    (the text around it is tokenised piece by piece, as a tokenizer with EOS as an added token does)."""
    if not text:
        return []
    eos = getattr(tokenizer, "eos_token", None)
    if eos and eos in text:
        out: list[int] = []
        for j, part in enumerate(text.split(eos)):
            if j:
                out.append(int(tokenizer.eos_token_id))
            out += encode_text(tokenizer, part)
        return out
    return list(tokenizer.encode(text, add_special_tokens=False))


@dataclass(frozen=True)
class ChatTemplate:
    """A model's prompt format bound to its tokenizer.

    `chat(turns, has_image)`: the chat template's segments (the model module writes it);
    `plain_terminator`: what ends a caption in the alignment stage's "plain" template
    ([BOS] IMAGE caption+terminator, the caption a target); `bos_id`: prepended to every sequence
    (None: nothing); `image_token_id`: the image placeholder's id in the text ids (None: the model
    puts the image before the first text token, so IMAGE may only open the segments)."""

    tokenizer: Any
    chat: Callable[[Sequence[Turn], bool], list[Segment]]
    plain_terminator: str
    bos_id: int | None = None
    image_token_id: int | None = None

    def plain(self, turns: Sequence[Turn]) -> list[Segment]:
        """LLaVA `--version plain` / Cobra's AlignDataset: the human prompt is dropped."""
        caption = turns[-1][1] if turns[-1][1] is not None else turns[-1][0]
        return [(IMAGE, False), (caption + self.plain_terminator, True)]

    def encode(self, segments: Sequence[Segment], has_image: bool) -> tuple[list[int], list[int]]:
        """(ids, labels): labels are the ids of target segments, IGNORE_INDEX elsewhere."""
        ids: list[int] = [] if self.bos_id is None else [self.bos_id]
        labels: list[int] = [IGNORE_INDEX] * len(ids)
        for k, (piece, target) in enumerate(segments):
            if piece is IMAGE:
                if not has_image:
                    continue
                if self.image_token_id is None:  # the model puts the image first: no id for it
                    if k:
                        raise ValueError("the template puts the image after text, but the model takes it first")
                    continue
                ids.append(self.image_token_id)
                labels.append(IGNORE_INDEX)
                continue
            toks = encode_text(self.tokenizer, piece)
            ids += toks
            labels += toks if target else [IGNORE_INDEX] * len(toks)
        return ids, labels

    def prompt_split(self, question: str, has_image: bool):
        """The inference prompt of `question`: the ids `encode` gives the conversation
        [(question, None)], cut at the image into (before it, after it). Without an image every id is
        before it; when the model puts the image first, every id is after it."""
        from mmeval.models.vlm_runtime import PromptSplit

        ids, _ = self.encode(self.chat([(question, None)], has_image), has_image)
        if not has_image:
            return PromptSplit(before_image=ids, after_image=[])
        if self.image_token_id is None:
            return PromptSplit(before_image=[], after_image=ids)
        k = ids.index(self.image_token_id)
        return PromptSplit(before_image=ids[:k], after_image=ids[k + 1:])
