"""LLaVA-format conversation data and the global-batch plan.

A data file is LLaVA's JSON list (or JSONL) of
    {"id": ..., "image": "relative/path.jpg" (optional: text-only sample without it),
     "conversations": [{"from": "human", "value": "<image>\\nWhat is ...?"}, {"from": "gpt", "value": "..."}, ...]}
Samples are tokenised and their image decoded + transformed in `__getitem__`, i.e. inside the
DataLoader's worker processes (num_workers > 0), never in the training process.

Batching follows LLaVA's `group_by_modality_length` idea (llava/train/llava_trainer.py: image and
text-only samples never share a batch; within a shuffled mega-batch samples are sorted by length so
padding is small) with one change: the mega-batch is the *global* batch of an optimizer step, and its
split over processes and accumulation micro-batches is contiguous. The samples of every optimizer
step therefore depend only on (seed, epoch, global batch size), not on the number of processes or the
per-device batch size -- what makes a 2-process run reproduce a 1-process run, and resume exact.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

IGNORE_INDEX = -100


def load_conversations(path_or_rows) -> list[dict[str, Any]]:
    if isinstance(path_or_rows, (list, tuple)):
        rows = list(path_or_rows)
    else:
        p = Path(path_or_rows)
        text = p.read_text(encoding="utf-8")
        if p.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = json.loads(text)
    for i, r in enumerate(rows):
        conv = r.get("conversations")
        if not isinstance(conv, list) or not conv:
            raise ValueError(f"sample {i} ({r.get('id')!r}) has no 'conversations' list")
        for j, turn in enumerate(conv):
            want = "human" if j % 2 == 0 else "gpt"
            if turn.get("from") != want:
                raise ValueError(
                    f"sample {i} ({r.get('id')!r}) turn {j}: expected from={want!r}, got {turn.get('from')!r}"
                )
    return rows


def modality_length(sample: dict[str, Any]) -> int:
    """LLaVA's `modality_lengths`: word count, positive for image samples, negative for text-only."""
    n = sum(len(t["value"].split()) for t in sample["conversations"])
    n = max(n, 1)
    return n if "image" in sample else -n


class ConversationDataset(Dataset):
    """`encode(sample) -> (input_ids, labels)` is the model's formatter (see collate.py);
    `image_transform(PIL image) -> tensor | {tower: tensor}`."""

    def __init__(self, rows, image_dir: str | os.PathLike | None, encode: Callable, image_transform: Callable):
        self.rows = load_conversations(rows)
        self.image_dir = Path(image_dir) if image_dir is not None else None
        self.encode, self.image_transform = encode, image_transform

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lengths(self) -> list[int]:
        return [modality_length(r) for r in self.rows]

    def load_image(self, rel: str):
        from PIL import Image

        path = Path(rel) if self.image_dir is None else self.image_dir / rel
        with Image.open(path) as im:
            return im.convert("RGB")

    def __getitem__(self, idx: int) -> dict[str, Any]:
        row = self.rows[idx]
        input_ids, labels = self.encode(row)
        item = dict(index=idx, input_ids=torch.tensor(input_ids, dtype=torch.long),
                    labels=torch.tensor(labels, dtype=torch.long), pixel_values=None)
        if "image" in row:
            item["pixel_values"] = self.image_transform(self.load_image(row["image"]))
        return item


# ---- the global-batch plan ------------------------------------------------------------------
def _length_grouped(indices: list[int], lengths: Sequence[int], group: int, g: torch.Generator) -> list[list[int]]:
    perm = [indices[i] for i in torch.randperm(len(indices), generator=g).tolist()]
    chunks = [perm[i:i + group] for i in range(0, len(perm), group)]
    return [sorted(c, key=lambda i: -abs(lengths[i])) for c in chunks]


class BatchPlan:
    """Deterministic list of global batches (each `global_batch_size` dataset indices) per epoch."""

    def __init__(self, lengths: Sequence[int], global_batch_size: int, seed: int = 0, group_by_modality: bool = True,
                 shuffle: bool = True):
        if not lengths:
            raise ValueError("empty dataset")
        self.lengths, self.G, self.seed = list(lengths), int(global_batch_size), int(seed)
        self.group_by_modality, self.shuffle = group_by_modality, shuffle

    def __len__(self) -> int:  # global batches per epoch
        return -(-len(self.lengths) // self.G)

    def epoch(self, epoch: int) -> list[list[int]]:
        n, G = len(self.lengths), self.G
        g = torch.Generator().manual_seed(self.seed + 1000003 * epoch)
        if not self.shuffle:
            order = list(range(n))
            batches = [order[i:i + G] for i in range(0, n, G)]
        elif self.group_by_modality:
            mm = [i for i in range(n) if self.lengths[i] > 0]
            lang = [i for i in range(n) if self.lengths[i] < 0]
            groups = _length_grouped(mm, self.lengths, G, g) + _length_grouped(lang, self.lengths, G, g)
            full = [b for b in groups if len(b) == G]
            rest = [i for b in groups if len(b) < G for i in b]  # LLaVA's mixed "additional batch"
            full = [full[i] for i in torch.randperm(len(full), generator=g).tolist()]
            batches = full + [rest[i:i + G] for i in range(0, len(rest), G)]
        else:
            perm = torch.randperm(n, generator=g).tolist()
            batches = [perm[i:i + G] for i in range(0, n, G)]
        if batches and len(batches[-1]) < G:  # pad the last batch by wrapping (as DistributedSampler pads)
            last, k = batches[-1], 0
            while len(last) < G:
                last.append(batches[0][k % len(batches[0])] if batches[0] is not last else last[k % len(last)])
                k += 1
            batches[-1] = sorted(last, key=lambda i: -abs(self.lengths[i]))
        return batches

    @staticmethod
    def split(batch: Sequence[int], rank: int, world_size: int, micro: int) -> list[list[int]]:
        """This process's micro-batches of one global batch (contiguous slice, then chunks of `micro`)."""
        per_rank = len(batch) // world_size
        mine = list(batch[rank * per_rank:(rank + 1) * per_rank])
        return [mine[i:i + micro] for i in range(0, len(mine), micro)]
