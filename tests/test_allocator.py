"""A training process keeps freed memory for the next step instead of faulting in fresh pages each time."""

import subprocess
import sys

import pytest

pytest.importorskip("lightning")

STEPS = """
import resource, sys
import torch
from omniperceiver.train.allocator import keep_freed_memory
kept = keep_freed_memory()
for _ in range(3):  # the first steps place the block
    x = torch.ones(16 << 20)  # 64 MiB, as a step's large temporary
    del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    x = torch.ones(16 << 20)
    del x
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _page_faults(env: dict[str, str]) -> tuple[str, int]:
    result = subprocess.run([sys.executable, "-c", STEPS], capture_output=True, text=True, env=env, check=True)
    kept, faults = result.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_blocks_are_reused_and_the_setting_can_be_turned_off():
    import os

    kept, faults = _page_faults({**os.environ, "OMNIPERCEIVER_KEEP_FREED_MEMORY": "1"})
    assert kept == "True" and faults < 20_000  # five more 64 MiB blocks in kept pages (a stray print may move one)
    kept, faults = _page_faults({**os.environ, "OMNIPERCEIVER_KEEP_FREED_MEMORY": "0"})
    assert kept == "False" and faults > 5 * 15_000  # 16,384 fresh 4 KiB pages a block
