"""Timing and memory of a callable on a device, measured the way GPUs need it.

* On CUDA every call is bracketed by CUDA events recorded on the benchmarked device's current
  stream and the device is synchronised (kernels run asynchronously: host timers would measure
  only the launch). On CPU ``time.perf_counter`` is exact.
* Peak memory is the increase over the memory in use when the block starts: CUDA
  ``max_memory_allocated`` minus the allocated baseline; on CPU the peak resident set size
  (Linux VmHWM, reset through /proc/self/clear_refs) minus the RSS before.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def time_calls(
    fn: Callable[[], object], device: torch.device, warmup: int, repeats: int
) -> list[float]:
    """Wall time in ms of each of ``repeats`` calls of ``fn``, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    if device.type != "cuda":
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return times
    times = []
    with torch.cuda.device(device):
        torch.cuda.synchronize(device)
        for _ in range(repeats):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record(torch.cuda.current_stream(device))
            fn()
            end.record(torch.cuda.current_stream(device))
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
    return times


def interleaved_ratio(
    slow: Callable[[], object], fast: Callable[[], object], device: torch.device, pairs: int
) -> dict[str, float]:
    """Median latency of ``slow`` and ``fast`` from alternating calls (slow, fast, slow, ...).

    On a shared machine the load changes during a run; alternating makes both see the same
    conditions, so their ratio is far more stable than two separate series.
    """
    times: dict[str, list[float]] = {"slow": [], "fast": []}
    for i in range(pairs + 1):  # the first pair is a warm-up
        for name, fn in (("slow", slow), ("fast", fast)):
            t = time_calls(fn, device, 0, 1)
            if i:
                times[name] += t
    slow_ms, fast_ms = statistics.median(times["slow"]), statistics.median(times["fast"])
    return {"slow_ms": slow_ms, "fast_ms": fast_ms, "speedup": slow_ms / fast_ms, "pairs": pairs}


def _proc_status(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class PeakMemory:
    """Context manager: ``mib`` = peak memory increase during the block (see module doc)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.kind = "CUDA max allocated" if device.type == "cuda" else "CPU peak RSS increase"
        self.mib: float | None = None
        self._base: int | None = None

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._base = _proc_status("VmRSS")
        except OSError:
            self._base = None
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.mib = max(0, peak - (self._base or 0)) / 2**20
        elif self._base is not None:
            peak = _proc_status("VmHWM")
            self.mib = None if peak is None else max(0, peak - self._base) / 2**20
