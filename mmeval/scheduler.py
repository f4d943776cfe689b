"""Order and batch requests: requests on the same image stay together (so an adapter computes the
image's features and prefix state once), and similar lengths share a batch (less padding)."""

from __future__ import annotations

from typing import Sequence

from mmeval.types import Request


def schedule(requests: Sequence[Request], batch_size: int) -> list[list[int]]:
    """Batches of request indices. Groups (by `group_key`) are ordered longest prompt first, so a
    run that would run out of memory does so at once; within a group, longest first too. Groups
    are packed contiguously; a group larger than a batch spans consecutive batches."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    groups: dict[str, list[int]] = {}
    for i, req in enumerate(requests):
        key = req.group_key or f"__doc__{req.doc_id}"
        groups.setdefault(key, []).append(i)
    ordered_groups = sorted(groups.values(), key=lambda idx: -max(len(requests[i].prompt) for i in idx))
    order = [i for idx in ordered_groups for i in sorted(idx, key=lambda i: -len(requests[i].prompt))]
    return [order[s: s + batch_size] for s in range(0, len(order), batch_size)]
