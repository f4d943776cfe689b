"""Data-parallel evaluation under torchrun: which requests each rank answers, and the barrier.

Requests are sharded by image group, so the prefix state of an image is computed on one rank
only; each rank appends to its own samples file and rank 0 merges them into the task's samples
file and writes the results, which therefore equal a single-process run's.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from mmeval.types import Request


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def sum(self, values: Sequence[float], device: str = "cpu") -> list[float]:
        """Element-wise sum over ranks (counts of samples and tokens for the timings)."""
        if self.world_size == 1:
            return list(values)
        import torch
        import torch.distributed as dist

        dev = f"cuda:{self.local_rank}" if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor(list(values), dtype=torch.float64, device=dev)
        dist.all_reduce(t)
        return t.tolist()

    def device(self, device: str) -> str:
        """`cuda` means this rank's own GPU under torchrun."""
        return f"cuda:{self.local_rank}" if device == "cuda" and self.world_size > 1 else device


def init_from_env(device: str) -> DistContext:
    """Join the process group torchrun set up (gloo on CPU, NCCL on GPUs); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    import torch
    import torch.distributed as dist

    ctx = DistContext(rank=int(os.environ["RANK"]), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        use_nccl = device.startswith("cuda") and torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return ctx


def shard_by_group(requests: Sequence[Request], world_size: int, rank: int) -> list[int]:
    """Indices of the requests this rank answers: whole image groups, balanced by request count
    (largest groups placed first, each on the least-loaded rank; ties to the lowest rank)."""
    if world_size <= 1:
        return list(range(len(requests)))
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(r.group_key or f"__doc__{r.doc_id}", []).append(i)
    load = [0] * world_size
    mine: list[int] = []
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        target = min(range(world_size), key=lambda r: (load[r], r))
        load[target] += len(groups[key])
        if target == rank:
            mine.extend(groups[key])
    return sorted(mine)
