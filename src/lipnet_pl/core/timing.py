"""Timing and memory of a callable on a device, measured the way GPUs need it.

* On CUDA every call is bracketed by CUDA events recorded on the benchmarked device's current
  stream and the device is synchronised (kernels run asynchronously: host timers would measure
  only the launch). On CPU ``time.perf_counter`` is exact.
* Variants compared with each other are timed in interleaved rounds (one call of each per
  round), so a burst of load from another process lands on all of them; medians come with a
  distribution-free 95 % confidence interval from order statistics.
* Peak memory is the increase over the memory in use when the block starts: CUDA
  ``max_memory_allocated`` minus the allocated baseline; on CPU the peak resident set size
  (Linux VmHWM, reset through /proc/self/clear_refs) minus the RSS before.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
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


def median_ci(values: list[float], z: float = 1.96) -> tuple[float, float, float]:
    """Median and its distribution-free 95 % confidence interval from order statistics.

    The ranks ``n/2 -+ z*sqrt(n)/2`` (binomial(n, 1/2), normal approximation) bound the
    median: no assumption about the shape of the timing distribution, which on a shared
    machine has a long tail. With fewer than 6 values the interval is the whole range.
    """
    ordered = sorted(values)
    n = len(ordered)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half))
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return statistics.median(ordered), ordered[lo], ordered[hi]


MIN_CI_VALUES = 6
"""Below this many values the median's interval is the whole range (zero-width for one value):
no convergence is claimed from it, whatever ``min_rounds`` says."""


def within(values: list[float], tolerance: float) -> bool:
    """Whether the 95 % interval of the median lies within +-``tolerance`` of it (never with
    fewer than :data:`MIN_CI_VALUES` values)."""
    if len(values) < MIN_CI_VALUES:
        return False
    med, lo, hi = median_ci(values)
    return lo >= med * (1 - tolerance) and hi <= med * (1 + tolerance)


@dataclass
class Rounds:
    """Per-callable times of interleaved rounds (ms; index i = round i), and why they stopped."""

    times: dict[str, list[float]]
    converged: bool
    seconds: float


def interleaved_rounds(
    fns: dict[str, Callable[[], object]],
    device: torch.device,
    min_rounds: int,
    max_rounds: int,
    tolerance: float,
    time_cap_s: float,
    devices: dict[str, torch.device] | None = None,
    rewarm: int = 0,
) -> Rounds:
    """Time every callable once per round, round after round, so all see the same machine load.

    ``rewarm`` untimed calls precede each timed call: where a much larger network runs between
    two calls of a small one, the small one's first call pays for the caches and sleeping
    thread pools the other left behind (a stream calling it back to back never does).

    Rounds go on until every median's 95 % interval is within +-``tolerance`` (after at least
    ``min_rounds``), or ``max_rounds`` / ``time_cap_s`` is reached (``converged`` False). Warm
    them up before: every call here is measured. ``devices`` names the device a callable runs
    on where it is not ``device`` (an ONNX Runtime CPU session on a GPU bench).
    """
    devices = devices or {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    start = time.perf_counter()
    converged = False
    for i in range(max_rounds):
        for name, fn in fns.items():
            times[name] += time_calls(fn, devices.get(name, device), rewarm, 1)
        if i + 1 >= min_rounds and all(within(t, tolerance) for t in times.values()):
            converged = True
            break
        if time.perf_counter() - start > time_cap_s:
            break
    return Rounds(times, converged, time.perf_counter() - start)


def paired_ratio(slow: list[float], fast: list[float]) -> tuple[float, float, float]:
    """``slow/fast`` per round (the same load in both), median and its 95 % interval."""
    return median_ci([s / f for s, f in zip(slow, fast, strict=False)])


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
