"""Measuring one computation in its own process: peak memory of its first run, median time of the next ones.

Shared by the benchmark scripts, each of which runs every measurement in a fresh worker process so that the
peak is not polluted by earlier measurements. On the CPU the peak is the RSS high-water mark (VmHWM, reset
through /proc/self/clear_refs), and the allocated peak is the most tensor memory live at once (summed from the
profiler's allocation events: what the computation needs, whatever the C allocator keeps mapped); on CUDA both
are the caching allocator's peak. Times are wall times of
runs during which other processes used < 10% of a core (read from /proc/stat): on 2 cores another busy
process slows the OpenMP kernels many-fold.
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from omniperceiver.memory import allocated_peak_mb


def peak_rss_mb() -> float:
    """This process's RSS high-water mark: VmHWM, which :func:`reset_peak_rss` resets. (ru_maxrss is not reset
    with it: it never drops below the parent's RSS when it forked this process, which it keeps across exec.)"""
    try:
        return int(re.search(r"VmHWM:\s*(\d+) kB", Path("/proc/self/status").read_text()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def synchronized(step: Callable[[], object], device: torch.device) -> Callable[[], object]:
    """``step`` followed by a wait for the accelerator, so that wall time covers the work."""
    if device.type != "cuda":
        return step

    def run() -> None:
        step()
        torch.cuda.synchronize(device)

    return run


def reset_peak_rss() -> bool:
    """Reset the RSS high-water mark (VmHWM) to the current RSS; Linux >= 4.0 only."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def busy_cpu_s() -> float:
    """CPU seconds used by the whole machine so far (user, nice, system, irq, softirq, steal)."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields[:3]) + sum(fields[5:8])) / os.sysconf("SC_CLK_TCK")


def timed(step: Callable[[], object]) -> tuple[float, float]:
    """Run ``step``; return its wall time and the CPU seconds other processes used meanwhile."""
    own, busy, start = sum(os.times()[:2]), busy_cpu_s(), time.perf_counter()
    step()
    wall = time.perf_counter() - start
    return wall, max(0.0, busy_cpu_s() - busy - (sum(os.times()[:2]) - own))


def measure(
    step: Callable[[], object],
    device: torch.device,
    *,
    repeats: int,
    budget_s: float,
    min_runs: int = 1,
    allocated: bool = False,
) -> dict:
    """Peak memory of the first run of ``step`` above what was in use before it (MB = MiB), then timed runs.

    With ``allocated``, the first run on the CPU runs under the profiler and also gives ``allocated_peak_mb``
    (:func:`allocated_peak_mb`).

    The timed runs go on until ``repeats`` clean ones (other processes used < 10% of a core) and 1 s in all,
    or until ``budget_s`` of runs or 50 runs are spent, and never stop before ``min_runs``. ``time_s`` is the
    median of the clean runs (of all runs, with ``contended`` set, when none was clean), ``cpu_s`` the median CPU
    time (user + system, all threads) that this process spent in them.
    """
    result: dict = {}
    if device.type == "cuda":  # accelerator memory: the allocator's peak beyond what is allocated now
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) / 2**20
        result["first_s"] = timed(step)[0]
        result["peak_mb"] = torch.cuda.max_memory_allocated(device) / 2**20 - before
        result["allocated_peak_mb"] = result["peak_mb"]
    else:
        result["hwm_reset"] = reset_peak_rss()
        before = peak_rss_mb()
        first = (lambda: result.update(allocated_peak_mb=allocated_peak_mb(step))) if allocated else step
        result["first_s"] = timed(first)[0]
        result["peak_mb"] = peak_rss_mb() - before
    runs: list[tuple[float, float, float]] = []  # wall, others' CPU, own CPU (user + system) seconds
    while True:
        own = sum(os.times()[:2])
        wall, foreign = timed(step)
        runs.append((wall, foreign, sum(os.times()[:2]) - own))
        clean = [run for run in runs if run[1] <= 0.05 + 0.1 * run[0]]
        spent = sum(run[0] for run in runs)
        enough = spent > budget_s or len(runs) >= 50 or (len(clean) >= repeats and spent >= 1.0)
        if enough and len(runs) >= min_runs:
            break
    chosen = clean or runs
    result.update(
        time_s=statistics.median(run[0] for run in chosen),
        cpu_s=statistics.median(run[2] for run in chosen),
        contended=not clean,
        runs=[{"wall_s": wall, "foreign_cpu_s": foreign, "cpu_s": cpu} for wall, foreign, cpu in runs],
        rss_before_mb=before,
    )
    return result
