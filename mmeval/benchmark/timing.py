"""GPU time of a piece of work, from CUDA events (the bench scripts' micro-measurements)."""
from __future__ import annotations

from collections.abc import Callable

import torch


def cuda_ms(fn: Callable[[], object], reps: int = 10) -> float:
    """GPU milliseconds per call of fn: one call to warm up, then reps calls between two events."""
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps
