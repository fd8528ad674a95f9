"""The tensor memory a computation needs, measured in the process that runs it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send what C++ code writes to standard error to /dev/null (the profiler's own start and stop lines,
    which no log level silences)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def allocated_peak_mb(step: Callable[[], object]) -> float:
    """Run ``step`` under the profiler; the most CPU tensor memory it held at once beyond what was live before,
    in MiB (every allocation and free through PyTorch's CPU allocator, in order): what the computation needs,
    whatever the C allocator keeps mapped, the same on every run."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = prof.profiler.kineto_results.events()
    changes = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    live = peak = 0
    for _, change in changes:
        live += change
        peak = max(peak, live)
    return peak / 2**20
