"""Decoding and preprocessing images in worker processes, for the GPU fast path.

In one process the JPEG decode, the resizes and the normalisation of every image share the GIL
with the thread that launches the GPU's kernels; at ~1,000 POPE questions/s that is ~55 images/s
(Cobra: two 384-px transforms each), i.e. most of a core taken from the launching thread. Workers
(spawned: a fork of a process holding CUDA state is not safe) receive the encoded bytes or the file
path, run exactly the same code as the in-process path (`ImageRef.load`, then the model's transform)
and send back float32 arrays, which the runtime stacks into a pinned buffer for the copy to the GPU.

A broken image fails its own requests only: the worker returns None and the runtime reports the
image's own error, as without workers. If the pool breaks (a worker killed), the runtime says so
once and goes on with threads.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import torch

from mmeval.types import ImageError, ImageRef

# The worker process's transform, set once by `_start_worker` (a per-process constant: passing it
# with every job would pickle the transform ~55 times a second).
_TRANSFORM: Callable[[Any], Any] | None = None


def _start_worker(transform: Callable[[Any], Any]) -> None:
    global _TRANSFORM
    _TRANSFORM = transform
    torch.set_num_threads(1)  # several workers share the machine's cores


def _ready() -> bool:
    return True


def _preprocess(source: str, data: bytes | None, path: str | None):
    """One image in a worker: what `VLMRuntime.prepare` does in-process, as numpy arrays (or None)."""
    try:
        image = ImageRef(source=source, data=data, path=path).load()
    except ImageError:
        return None
    out = _TRANSFORM(image)
    if isinstance(out, dict):
        return {k: v.numpy() for k, v in out.items()}
    return out.numpy()


def _as_tensors(out):
    if out is None:
        return None
    if isinstance(out, dict):
        return {k: torch.from_numpy(v) for k, v in out.items()}
    return torch.from_numpy(out)


def default_workers() -> int:
    """Half of this process's share of the cores (the rest: the launching thread, the prefetch
    thread, the OS), 2..8; under torchrun the processes of this machine share them."""
    share = (os.cpu_count() or 2) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    return max(2, min(8, share // 2))


class ImageProcesses:
    """A pool of spawned workers running `transform(ImageRef.load())`. Starting takes seconds (each
    worker imports torch): until the first job has come back, `ready` is False and callers use
    their threads instead."""

    def __init__(self, transform: Callable[[Any], Any], workers: int | None = None):
        self.workers = workers or default_workers()
        ctx = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_start_worker,
                                         initargs=(transform,))
        self._started: Future = self._pool.submit(_ready)
        self._lock = threading.Lock()
        self.broken: str | None = None  # why the pool stopped serving, once it has

    @property
    def ready(self) -> bool:
        return self.broken is None and self._started.done() and self._started.exception() is None

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the workers serve (tests; a caller that prefers waiting to threads)."""
        try:
            self._started.result(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a pool that cannot start is reported as broken
            self.broken = f"{type(exc).__name__}: {exc}"
        return self.ready

    def preprocess(self, refs: Sequence[ImageRef]) -> list[Any]:
        """Each image's preprocessed tensor(s), or None where it cannot be decoded. Raises
        BrokenProcessPool (and marks the pool broken) if a worker died."""
        try:
            futures = [self._pool.submit(_preprocess, r.source, r.data, r.path) for r in refs]
            return [_as_tensors(f.result()) for f in futures]
        except BrokenProcessPool as exc:
            with self._lock:
                self.broken = self.broken or f"{type(exc).__name__}: {exc}"
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
