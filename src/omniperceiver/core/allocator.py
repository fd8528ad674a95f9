"""The C allocator of a process that computes on the CPU: glibc hands every block above 32 MiB back to the system
when it is freed, so a tensor of that size made anew each step or forward pass costs fresh pages: a
4k-vocabulary model's logits (34 MB at batch 32) 39,000 page faults and 63 ms of system time a training step on a
2-core AMD EPYC (a 22% slower step); the vision model's forward at batch 8 under bf16 autocast 580,000 faults
(4.1-4.6 s against 3.5-3.6 s, an AMX Xeon). :func:`keep_freed_memory` makes such blocks come from the heap and
stay there for the next step, as PyTorch's GPU caching allocator does; the process then holds up to its peak.
The process's compute policy applies it on first use on the CPU, and training before anything else.
``OMNIPERCEIVER_KEEP_FREED_MEMORY=0`` leaves the allocator as it is."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
KEEP_BELOW = 1 << 30  # blocks up to 1 GiB come from the heap ...
TRIM_ABOVE = (1 << 31) - 1  # ... and the heap keeps up to 2 GiB of freed memory


@functools.cache
def keep_freed_memory() -> bool:
    """Keep freed blocks of up to 1 GiB for reuse (glibc only, once per process); returns whether it did."""
    if os.environ.get("OMNIPERCEIVER_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl): nothing to set
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_BELOW)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_ABOVE))
