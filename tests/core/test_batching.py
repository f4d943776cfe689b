"""`--batch-size auto` and the out-of-memory fall-back (`mmeval.batching`), through the real runner
with adapters that behave like a GPU model: one that runs out of memory above a batch size, one
whose batches take memory in proportion to their size."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from mmeval import batching, environment
from mmeval.batching import AUTO_FIRST, AUTO_MAX, BatchSizes, fitting_batch_size, is_out_of_memory
from mmeval.cli import main, parse_batch_size
from mmeval.errors import RunError
from mmeval.runner import RunConfig, Runner
from model_adapters.mock import MockAdapter
from tests.conftest import pope_rows

GiB = 2**30


def test_parse_batch_size():
    assert parse_batch_size("auto") == "auto" and parse_batch_size(" AUTO ") == "auto"
    assert parse_batch_size("16") == 16 and parse_batch_size(3) == 3
    assert parse_batch_size("0") == 0  # parsed; its range is checked with the other options
    for bad in ("x", "2.5", ""):
        with pytest.raises(click.BadParameter, match="whole number or 'auto'"):
            parse_batch_size(bad)


@pytest.mark.parametrize("size", ["0", "-3"])
def test_cli_refuses_a_batch_size_below_one(pope_data, tmp_path, size):
    r = CliRunner().invoke(main, ["run", "--model", "mock", "--tasks", "pope", "--data", str(pope_data),
                                  "--output", str(tmp_path / "out"), "--batch-size", size, "--no-progress"])
    assert r.exit_code == 2 and f"--batch-size {size}: expected a positive integer or 'auto'" in r.output
    r = CliRunner().invoke(main, ["bench", "--tiny", "--device", "cpu", "--batch-size", size])
    assert r.exit_code == 2 and "--batch-size" in r.output


def test_fitting_batch_size_scales_the_measured_batch():
    # 64 requests took 6.4 GiB: 0.1 GiB each; 0.85 * 10 GiB / 0.1 GiB = 85 -> 80 (multiple of 8)
    assert fitting_batch_size(64, int(6.4 * GiB), 10 * GiB) == 80
    assert fitting_batch_size(64, int(6.4 * GiB), 100 * GiB) == AUTO_MAX  # 850, capped
    assert fitting_batch_size(64, int(6.4 * GiB), 100 * GiB, cap=10_000) == 848
    assert fitting_batch_size(64, int(6.4 * GiB), GiB // 2) == 4  # below 8: as computed
    assert fitting_batch_size(64, int(6.4 * GiB), 0) == 1  # never below one request
    assert fitting_batch_size(8, 0, GiB) == AUTO_MAX  # nothing measurable: the cap
    with pytest.raises(ValueError):
        fitting_batch_size(0, GiB, GiB)


def test_is_out_of_memory_follows_the_exception_chain():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    try:  # an OOM while a CUDA graph is captured surfaces as the capture's own error
        try:
            raise torch.cuda.OutOfMemoryError("Tried to allocate 1.00 GiB")
        except RuntimeError:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing") from None
    except RuntimeError as exc:
        assert exc.__cause__ is None and exc.__context__ is not None
        assert is_out_of_memory(exc)
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("x"))


class LimitedMock(MockAdapter):
    """A mock that runs out of GPU memory on batches larger than `fits` (as a CUDA model would)."""

    def __init__(self, fits: int, **kw):
        super().__init__(**kw)
        self.fits, self.sizes, self.freed = fits, [], 0

    def generate(self, requests):
        if len(requests) > self.fits:
            raise torch.cuda.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {len(requests) * 0.5:.2f} GiB. GPU 0 has a total capacity "
                "of 79.10 GiB of which 1.20 GiB is free.")
        self.sizes.append(len(requests))
        return super().generate(requests)

    def free_memory(self):
        self.freed += 1


def _run(tmp_path: Path, adapter, batch_size, name: str, n_images: int = 6, per_image: int = 3, device="cpu"):
    from tasks.pope import Pope

    data = tmp_path / f"data_{name}"
    Pope.write_layout(data / "pope", pope_rows(n_images=n_images, per_image=per_image))
    lines: list[str] = []
    cfg = RunConfig(model="mock", tasks=["pope"], data=data, batch_size=batch_size, device=device,
                    output=tmp_path / "out", run_name=name, n_boot=0, progress=False)
    runner = Runner(cfg, log=lines.append)
    plans = runner.plan(type(adapter))
    result = runner.run_plans(plans, type(adapter), adapter)["pope"]
    samples = [json.loads(x) for x in (tmp_path / "out" / name / "pope.samples.jsonl").read_text().splitlines()]
    return result, {s["doc_id"]: s["prediction"] for s in samples}, lines


def test_a_batch_that_does_not_fit_is_halved_and_the_run_goes_on(tmp_path):
    adapter = LimitedMock(fits=5)
    result, preds, lines = _run(tmp_path, adapter, 16, "oom")
    _, reference, _ = _run(tmp_path, MockAdapter(), 4, "ref")
    assert preds == reference and len(preds) == 18  # every sample answered, the same answers
    oom = [line for line in lines if "did not fit in GPU memory" in line]
    # 16 -> halves of 8 (too big) -> halves of 4; one line per failed size, naming it and the memory
    assert oom[0] == ("a batch of 16 did not fit in GPU memory (tried to allocate 8.00 GiB): going on with "
                      "batches of 8")
    assert oom[1].startswith("a batch of 8 did not fit") and oom[1].endswith("batches of 4")
    assert max(adapter.sizes) <= 5 and sum(adapter.sizes) == 18
    assert adapter.sizes[:4] == [4, 4, 4, 4] and adapter.freed == len(oom)
    assert result["timings"]["batch_size"] == 4 and result["n"] == 18


def test_a_single_request_that_does_not_fit_ends_the_run_with_one_line(tmp_path):
    with pytest.raises(RunError, match=r"one request does not fit in GPU memory \(tried to allocate 0.50 GiB\)"):
        _run(tmp_path, LimitedMock(fits=0), 2, "none")


def test_auto_on_the_cpu_is_the_cpu_default_and_says_so(tmp_path):
    adapter = LimitedMock(fits=100)
    result, _, lines = _run(tmp_path, adapter, "auto", "cpu_auto")
    assert lines.count(f"batch size auto: {batching.CPU_BATCH_SIZE} on the CPU (--batch-size N to choose)") == 1
    assert adapter.sizes == [8, 8, 2] and result["timings"]["batch_size"] == 8


class FakeEvent:
    """A CUDA event whose pair always measures 2 ms; `recorded` lists the events in record order."""

    recorded: list = []

    def __init__(self, enable_timing=False):
        assert enable_timing
        self.t = None

    def record(self):
        self.t = len(self.recorded)
        self.recorded.append(self)

    def elapsed_time(self, end):
        assert end.t == self.t + 1  # a start and its own end
        return 2.0  # milliseconds


class FakeGPU:
    """The memory counters of a GPU (what `mmeval.environment` reads), for an adapter whose batches
    take `per_request` bytes each while they run; CUDA events from `FakeEvent`."""

    def __init__(self, monkeypatch, total: int, weights: int):
        self.total, self.allocated, self.peak = total, weights, weights
        FakeEvent.recorded = []
        monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
        monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
        for name, fn in [("is_cuda", lambda d: True), ("memory_allocated", lambda d: self.allocated),
                         ("peak_memory_bytes", lambda d: self.peak), ("peak_memory_mb", lambda d: self.peak / 2**20),
                         ("reset_peak_memory", lambda d: setattr(self, "peak", self.allocated)),
                         ("memory_available", lambda d: self.total - self.allocated),
                         ("memory_free_total", lambda d: (self.total - self.allocated, self.total)),
                         ("empty_cache", lambda d: None)]:
            monkeypatch.setattr(environment, name, fn)


class MemoryMock(LimitedMock):
    def __init__(self, gpu: FakeGPU, per_request: int):
        super().__init__(fits=10**9)
        self.gpu, self.per_request = gpu, per_request

    def generate(self, requests):
        need = len(requests) * self.per_request
        if self.gpu.allocated + need > self.gpu.total:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        self.gpu.peak = max(self.gpu.peak, self.gpu.allocated + need)
        return super().generate(requests)


def test_auto_on_cuda_measures_the_first_batch_and_fills_the_memory(tmp_path, monkeypatch):
    gpu = FakeGPU(monkeypatch, total=40 * GiB, weights=8 * GiB)
    adapter = MemoryMock(gpu, per_request=GiB // 8)  # 64 requests: 8 GiB
    result, preds, lines = _run(tmp_path, adapter, "auto", "cuda_auto", n_images=20, per_image=18, device="cuda")
    expected = fitting_batch_size(AUTO_FIRST, 8 * GiB, 32 * GiB)  # 0.85 * 32 GiB / (1/8 GiB) = 217 -> 216
    assert expected == 216
    assert adapter.sizes[0] == AUTO_FIRST and adapter.sizes[1:] == [216, 80]  # 360 requests in all
    assert lines[-1] == "batch size auto: 216 (a batch of 64 took 8.00 GiB; 32.0 GiB free; at most 512)"
    assert result["timings"]["batch_size"] == 216 and len(preds) == 360
    t = result["timings"]
    assert t["steady_samples_per_s"] is None  # each of the three batches was the first at its size
    assert t["warmup_s"] == pytest.approx(t["wall_s"], abs=0.05)


def test_auto_size_is_found_once_per_model_and_shape(monkeypatch):
    gpu = FakeGPU(monkeypatch, total=40 * GiB, weights=8 * GiB)
    lines: list[str] = []
    sizes = BatchSizes("auto", "cuda", lines.append)
    first = sizes.sizer(("model", "pope"), pending=1000)
    assert (first.size, first.measure) == (AUTO_FIRST, True)
    gpu.peak = gpu.allocated + 4 * GiB
    monkeypatch.setattr(environment, "reset_peak_memory", lambda d: None)
    first.answer(lambda batch: list(batch), list(range(AUTO_FIRST)))
    again = sizes.sizer(("model", "pope"), pending=1000)
    assert again.size == first.size == fitting_batch_size(AUTO_FIRST, 4 * GiB, 32 * GiB) and not again.measure
    other = sizes.sizer(("model", "mmvet"), pending=1000)
    assert other.measure and other.size == AUTO_FIRST
    small = sizes.sizer(("model", "small"), pending=AUTO_FIRST)  # fits in the first batch: nothing to measure
    assert not small.measure
    fixed = BatchSizes(12, "cuda", lines.append).sizer(("model", "pope"), pending=1000)
    assert (fixed.size, fixed.measure) == (12, False)


def test_gpu_busy_sums_the_event_pairs_of_the_batches(tmp_path, monkeypatch):
    """On CUDA the runner brackets each batch with a CUDA-event pair and reports their summed time
    against the answering wall time (events faked here: each batch 'takes' 2 ms of GPU time)."""
    from mmeval import gpu_busy

    assert gpu_busy.GpuSpans("cpu").total_s() is None  # (this machine has no GPU)
    gpu = FakeGPU(monkeypatch, total=40 * GiB, weights=GiB)
    spans = gpu_busy.GpuSpans("cuda")
    with spans.span():
        pass
    assert spans.total_s() == 0.002
    FakeEvent.recorded.clear()
    adapter = MemoryMock(gpu, per_request=1)
    adapter.delay = 0.05  # each batch takes 50 ms of wall time: the rounding of wall_s stays small
    result, _, _ = _run(tmp_path, adapter, 4, "busy", device="cuda")
    t = result["timings"]
    n_batches = len(adapter.sizes)
    assert n_batches == 5 and len(FakeEvent.recorded) == 2 * n_batches  # 18 requests in batches of 4
    # (wall_s is rounded to the millisecond in the file)
    assert t["gpu_busy_pct"] == pytest.approx(100 * 0.002 * n_batches / t["wall_s"], rel=0.02, abs=0.1)
