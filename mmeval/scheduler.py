"""Order and batch requests: requests on the same image stay together (so an adapter computes the
image's features and prefix state once), and similar lengths share a batch (less padding)."""

from __future__ import annotations

from collections.abc import Sequence

from mmeval.types import Request


def schedule_order(requests: Sequence[Request]) -> list[int]:
    """Request indices in answering order. Groups (by `group_key`) are ordered longest prompt first,
    so a run that would run out of memory does so at once; within a group, longest first too.
    Groups are contiguous; the order does not depend on the batch size, so a run may cut it into
    batches of a size that changes on the way (`mmeval.batching`)."""
    groups: dict[str, list[int]] = {}
    for i, req in enumerate(requests):
        key = req.group_key or f"__doc__{req.doc_id}"
        groups.setdefault(key, []).append(i)
    ordered_groups = sorted(groups.values(), key=lambda idx: -max(len(requests[i].prompt) for i in idx))
    return [i for idx in ordered_groups for i in sorted(idx, key=lambda i: -len(requests[i].prompt))]


def schedule(requests: Sequence[Request], batch_size: int) -> list[list[int]]:
    """Batches of request indices: `schedule_order` cut every `batch_size`; a group larger than a
    batch spans consecutive batches."""
    if batch_size < 1:
        raise ValueError("batch size must be at least 1")
    order = schedule_order(requests)
    return [order[s: s + batch_size] for s in range(0, len(order), batch_size)]
