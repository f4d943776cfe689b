"""How long the GPU had work of the run in flight, from CUDA events: one pair per answered batch
(recorded on the current stream before the batch's first launch and after its last), read once at
the end of the task (one synchronisation, none per batch).

What it measures: the sum over batches of the GPU time between the batch's first and last piece of
work, against the wall time of answering. Gaps between batches (scoring, logging, waiting for
images, the host's work before a batch's first launch) count as idle; a gap inside a batch, where
the GPU waits for the host to launch the next kernel, counts as busy. It is therefore an upper
bound of the kernels' own busy time; `bench/profile_paths.py` gives the kernel time per piece.
"""

from __future__ import annotations

import contextlib

from mmeval import environment


class GpuSpans:
    """CUDA-event pairs around pieces of GPU work on one device; nothing on the CPU."""

    def __init__(self, device: str):
        self.device = device
        self.enabled = environment.is_cuda(device)
        self._pairs: list = []

    @contextlib.contextmanager
    def span(self):
        if not self.enabled:
            yield
            return
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        try:
            yield
        finally:
            end.record()
            self._pairs.append((start, end))

    def total_s(self) -> float | None:
        """Seconds of GPU time inside the spans so far (synchronises once); None on the CPU."""
        if not self.enabled:
            return None
        import torch

        torch.cuda.synchronize(torch.device(self.device))
        return sum(start.elapsed_time(end) for start, end in self._pairs) / 1000.0
