"""What every performance benchmark shares: waiting for the GPU, best-of timing, and the label
of the hardware it ran on."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so wall-clock timings measure it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def timed(
    fn: Callable[[], object],
    device: torch.device | str,
    repeats: int = 1,
    warmup: Callable[[], object] | None = None,
) -> float:
    """Best wall time of ``repeats`` calls after a warm-up (``fn`` itself unless a smaller
    ``warmup`` that runs the same kernels is given) (seconds)."""
    (warmup or fn)()
    synchronize(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def wall_seconds(fn: Callable[[], object], device: torch.device | str) -> float:
    """One call's wall time, the GPU's queued work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def hardware(device: torch.device | str) -> dict[str, str | int]:
    """Where a benchmark ran: device type, hardware name, CPU threads, and a file-name label
    (``NVIDIA-H200``, ``cpu-x86_64-2threads``)."""
    kind = torch.device(device).type
    threads = torch.get_num_threads()
    if kind == "cuda":
        name = torch.cuda.get_device_name(torch.device(device))
        return {"device": "cuda", "hardware": name, "threads": threads,
                "label": name.replace(" ", "-")}
    name = platform.processor() or platform.machine()
    return {"device": "cpu", "hardware": name, "threads": threads,
            "label": f"cpu-{platform.machine()}-{threads}threads"}
