"""What a results file records of the machine: library versions, the device, peak memory."""

from __future__ import annotations

import platform
import resource
import sys
from importlib import metadata

LIBRARIES = ("mmeval", "torch", "transformers", "timm", "datasets", "numpy", "mamba-ssm", "causal-conv1d", "lmms-eval")


def library_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu: {platform.processor() or platform.machine()}"


def is_cuda(device: str) -> bool:
    """A CUDA device that torch can use."""
    import torch

    return str(device).startswith("cuda") and torch.cuda.is_available()


def reset_peak_memory(device: str) -> None:
    import torch

    if is_cuda(device):
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def memory_allocated(device: str) -> int:
    """Bytes of GPU memory torch has allocated now (0 on the CPU)."""
    import torch

    return torch.cuda.memory_allocated(torch.device(device)) if is_cuda(device) else 0


def peak_memory_bytes(device: str) -> int:
    """Peak bytes of GPU memory torch allocated since the last reset (0 on the CPU)."""
    import torch

    return torch.cuda.max_memory_allocated(torch.device(device)) if is_cuda(device) else 0


def memory_free_total(device: str) -> tuple[int, int] | None:
    """(free, total) bytes of the GPU as the driver sees them; None on the CPU."""
    import torch

    return tuple(torch.cuda.mem_get_info(torch.device(device))) if is_cuda(device) else None


def memory_available(device: str) -> int:
    """Bytes a new allocation can still get: free on the GPU plus what torch holds cached but unused."""
    import torch

    if not is_cuda(device):
        return 0
    dev = torch.device(device)
    return torch.cuda.mem_get_info(dev)[0] + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)


def empty_cache(device: str) -> None:
    """Give torch's cached, unused GPU blocks back (after an out-of-memory error)."""
    import gc

    import torch

    gc.collect()
    if is_cuda(device):
        torch.cuda.empty_cache()


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated by torch on CUDA; on the CPU the process's peak resident size."""
    import torch

    if is_cuda(device):
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc: the command's own start, imports included);
    None where /proc is not there."""
    import os

    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))  # field 22: starttime in ticks
    except (OSError, ValueError, IndexError):
        return None
