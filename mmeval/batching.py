"""How many requests one batch holds: `--batch-size auto`, and what happens when a batch does not fit.

- `auto` on the CPU is `CPU_BATCH_SIZE`, said in one line.
- `auto` on CUDA: the first batch of a workload runs at `AUTO_FIRST` requests; the memory it took
  above what was allocated before it (activations, states, CUDA-graph pools: everything a batch
  holds) sets the size of the rest, the largest that fits in `HEADROOM` of the memory still free,
  up to `AUTO_MAX`. Memory grows linearly with the batch here (per question: its recurrent states;
  per new image: its vision and prefix activations), so one measured batch predicts the others.
  The size is found once per (model, workload shape) and kept for the run (`BatchSizes`).
- A batch that runs out of GPU memory (at any size, auto or not): one line with the size tried and
  the memory it needed, then its two halves are answered and the run goes on at half the size.
  A single request that does not fit ends the run with that line (`RunError`).

The runner's pending requests come in schedule order (`mmeval.scheduler.schedule_order`), which
does not depend on the batch size, so `Batches` can cut them at a size that changes mid-run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mmeval import environment
from mmeval.errors import RunError

AUTO = "auto"
CPU_BATCH_SIZE = 8  # auto on the CPU: small batches keep the first answers quick on a laptop
AUTO_FIRST = 64  # auto on CUDA: the measured first batch (the size of the earlier fixed default)
# Beyond ~512 POPE questions (~28 images, ~20k prefix tokens) a batch no longer shortens the GPU's
# work per question (the GEMMs are saturated) and the host's launches per batch are already spread
# thin; every extra question costs ~70 MB of recurrent states (input, output and decoding copies).
AUTO_MAX = 512
HEADROOM = 0.85  # share of the free memory the predicted batch may use (fragmentation, other shapes)


def fitting_batch_size(measured: int, used_bytes: int, available_bytes: int, cap: int = AUTO_MAX,
                       headroom: float = HEADROOM) -> int:
    """The largest batch whose memory, scaled from a batch of `measured` requests that took
    `used_bytes`, fits in `headroom` of `available_bytes`; at most `cap`, at least 1, a multiple of
    8 from 8 on (the LM pads batch x tokens to a multiple of 8 anyway)."""
    if measured < 1:
        raise ValueError(f"measured batch size must be at least 1, got {measured}")
    per_request = max(used_bytes, 1) / measured
    n = min(cap, int(headroom * max(available_bytes, 0) / per_request))
    return max(1, n - n % 8 if n >= 8 else n)


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA out-of-memory error, also when it surfaced as another error: an allocation that fails
    while a CUDA graph is being captured ends the capture with an error whose context is the OOM."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def oom_detail(exc: BaseException, device: str) -> str:
    """What the failed allocation needed and what the device had: 'tried to allocate 2.00 GiB;
    1.10 GiB free of 79.10 GiB' (the parts that are known)."""
    parts = []
    m = re.search(r"[Tt]ried to allocate ([\d.]+ ?[KMGT]i?B)", str(exc))
    if m:
        parts.append(f"tried to allocate {m.group(1)}")
    free_total = environment.memory_free_total(device)
    if free_total is not None:
        parts.append(f"{free_total[0] / 2**30:.2f} GiB free of {free_total[1] / 2**30:.2f} GiB")
    return "; ".join(parts) or str(exc).strip().splitlines()[0][:200]


@dataclass
class Batches:
    """Pending request indices in schedule order, handed out `size` at a time (the size may change)."""

    order: list[int]
    size: int
    pos: int = 0

    def peek(self) -> list[int]:
        return self.order[self.pos: self.pos + self.size]

    def take(self) -> list[int]:
        batch = self.peek()
        self.pos += len(batch)
        return batch


@dataclass
class BatchSizer:
    """The batch size of one workload: fixed, or auto (measured on the first batch on CUDA); shrinks
    when a batch runs out of memory. `answer` runs one batch through `generate` with both rules."""

    size: int
    device: str
    log: Callable[[str], None]
    measure: bool = False  # auto on CUDA, not measured yet: the next completed batch sets `size`
    auto: bool = False
    on_decided: Callable[[int], None] | None = None  # remembers an auto size (BatchSizes)
    free_memory: Callable[[], None] | None = None  # drops the model's rebuildable caches after an OOM
    sizes_run: list[int] = field(default_factory=list)

    def answer(self, generate: Callable[[Sequence[Any]], list], batch: Sequence[Any]) -> list:
        """generate(batch), measured when auto still has to decide; on OOM the halves, one by one."""
        if not self.measure:
            return self._answer_fitting(generate, list(batch))
        before = environment.memory_allocated(self.device)
        environment.reset_peak_memory(self.device)
        preds = self._answer_fitting(generate, list(batch))
        if self.measure:  # not decided by an OOM meanwhile
            used = environment.peak_memory_bytes(self.device) - before
            available = environment.memory_available(self.device)
            self.measure = False
            measured = len(batch)
            self.size = fitting_batch_size(measured, used, available)
            self.log(f"batch size auto: {self.size} (a batch of {measured} took {used / 2**30:.2f} GiB; "
                     f"{available / 2**30:.1f} GiB free; at most {AUTO_MAX})")
            if self.on_decided is not None:
                self.on_decided(self.size)
        return preds

    def _answer_fitting(self, generate, batch: list) -> list:
        try:
            preds = generate(batch)
            self.sizes_run.append(len(batch))
            return preds
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled here
            if not is_out_of_memory(exc):
                raise
            detail = oom_detail(exc, self.device)
        # out of the except block: the exception (and its frames' tensors) is gone before freeing
        if self.free_memory is not None:
            self.free_memory()
        environment.empty_cache(self.device)
        if len(batch) == 1:
            raise RunError(f"one request does not fit in GPU memory ({detail}); free memory on the device or "
                           "use a smaller model or dtype")
        half = (len(batch) + 1) // 2
        self.log(f"a batch of {len(batch)} did not fit in GPU memory ({detail}): going on with batches of {half}")
        self.size, self.measure = min(self.size, half), False
        if self.on_decided is not None and self.auto:
            self.on_decided(self.size)
        return self._answer_fitting(generate, batch[:half]) + self._answer_fitting(generate, batch[half:])


@dataclass
class BatchSizes:
    """The run's batch sizes: the given one, or auto's per (model, workload shape), found once."""

    asked: int | str
    device: str
    log: Callable[[str], None]
    found: dict[Any, int] = field(default_factory=dict)
    _said_cpu: bool = False

    def sizer(self, shape: Any, pending: int, free_memory: Callable[[], None] | None = None) -> BatchSizer:
        """The sizer of one workload (`shape`: a hashable key of the model and the workload) with
        `pending` requests to answer."""
        if self.asked != AUTO:
            return BatchSizer(int(self.asked), self.device, self.log, free_memory=free_memory)
        if not environment.is_cuda(self.device):
            if not self._said_cpu:
                self.log(f"batch size auto: {CPU_BATCH_SIZE} on the CPU (--batch-size N to choose)")
                self._said_cpu = True
            return BatchSizer(CPU_BATCH_SIZE, self.device, self.log, auto=True, free_memory=free_memory)

        def remember(n: int) -> None:
            self.found[shape] = n

        if shape in self.found:
            return BatchSizer(self.found[shape], self.device, self.log, auto=True, on_decided=remember,
                              free_memory=free_memory)
        # a workload that fits in the first batch needs no measurement
        return BatchSizer(AUTO_FIRST, self.device, self.log, measure=pending > AUTO_FIRST, auto=True,
                          on_decided=remember, free_memory=free_memory)
