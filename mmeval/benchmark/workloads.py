"""Synthetic evaluation workloads for `mmeval bench`, built in memory in the shapes of real ones.

- POPE-shaped: N photo-sized JPEG images x Q yes/no questions each, POPE's prompt. With random
  weights a model never says "Yes<eos>", so answers are capped at 2 new tokens (what a trained
  model's "Yes" + EOS costs); the prismatic variant asks only for next-token probabilities.
- Long answers (MM-Vet-like): one open question per image, a fixed number of new tokens.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from mmeval.task import Task
from mmeval.types import Doc, GenerationConfig, ImageRef, Prediction, Request

OBJECTS = ("person", "dog", "car", "chair", "bottle", "cup", "bicycle", "bird", "book", "clock",
           "umbrella", "bench", "truck", "boat", "cat", "horse", "kite", "laptop")


def jpeg_images(n: int, size: tuple[int, int] = (640, 480), seed: int = 0) -> list[bytes]:
    """COCO-sized JPEGs (smooth random colour fields, so decoding costs what a photo costs)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize(size, Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def pope_shaped_docs(n_images: int, questions: int, seed: int = 0) -> list[Doc]:
    docs = []
    for i, data in enumerate(jpeg_images(n_images, seed=seed)):
        ref = ImageRef(source=f"bench image {i}", data=data)
        for q in range(questions):
            docs.append(
                Doc(
                    doc_id=f"{i}/{q}",
                    fields={
                        "question": f"Is there a {OBJECTS[q % len(OBJECTS)]} in the image?",
                        "category": ("random", "popular", "adversarial")[q % 3],
                    },
                    target="yes" if (i + q) % 2 else "no",
                    images=(ref,),
                    group_key=f"img{i}",
                )
            )
    return docs


def cap_new_tokens(requests: Sequence[Request], n: int) -> list[Request]:
    return [replace(r, generation=replace(r.generation, max_new_tokens=min(r.generation.max_new_tokens, n)))
            for r in requests]


class LongAnswerTask(Task):
    """An MM-Vet-like open question per image; scoring only counts tokens (speed, not quality)."""

    name = "bench_long_answer"
    protocols = ("llava",)

    def __init__(self, new_tokens: int = 256, **options: str):
        super().__init__(**options)
        self.new_tokens = new_tokens

    def load_docs(self, data) -> list[Doc]:  # documents come from long_answer_docs
        raise NotImplementedError

    def request(self, doc: Doc, protocol: str) -> Request:
        return Request(doc_id=doc.doc_id, prompt=doc.fields["question"], images=doc.images, group_key=doc.group_key,
                       generation=GenerationConfig(max_new_tokens=self.new_tokens))

    def score(self, doc: Doc, prediction: Prediction, protocol: str) -> dict[str, Any]:
        return {"correct": 0.0, "tokens": prediction.n_tokens}

    def aggregate(self, scores, protocol) -> dict[str, float]:
        return {"mean_tokens": float(np.mean([s["tokens"] for s in scores])) if scores else 0.0}

    def headline(self, protocol: str) -> str:
        return "mean_tokens"

    def ci_metrics(self, protocol: str):
        return ()


def long_answer_docs(n: int, seed: int = 1) -> list[Doc]:
    return [
        Doc(
            doc_id=str(i),
            fields={"question": "Describe this image in detail, and explain what is unusual about it."},
            images=(ImageRef(source=f"bench image {i}", data=data),),
            group_key=f"img{i}",
        )
        for i, data in enumerate(jpeg_images(n, seed=seed))
    ]
