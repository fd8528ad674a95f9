"""A process computing on the CPU keeps freed memory for the next step instead of faulting in fresh pages each
time: training sets it up, and so does the compute policy on first use."""

import subprocess
import sys

import pytest

pytest.importorskip("lightning")

STEPS = """
import resource, sys
import torch
{setup}
for _ in range(3):  # the first steps place the block
    x = torch.ones(16 << 20)  # 64 MiB, as a step's large temporary
    del x
faults = []
for _ in range(3):  # the fewest of three rounds (the host may reclaim idle pages now and then)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        x = torch.ones(16 << 20)
        del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, min(faults))
"""


TRAINING = """
from omniperceiver.core.allocator import keep_freed_memory
kept = keep_freed_memory()
"""
# the first attention on the CPU makes the process's compute policy (no calibration: the documented default)
POLICY = """
import os
from omniperceiver.core import attend
os.environ["OMNIPERCEIVER_CALIBRATION"] = "off"
attend(*torch.ones(3, 1, 1, 2, 4))
from omniperceiver.core.allocator import keep_freed_memory
kept = keep_freed_memory.cache_info().currsize == 1 and keep_freed_memory()  # what the policy did
"""


def _page_faults(env: dict[str, str], setup: str = TRAINING) -> tuple[str, int]:
    steps = STEPS.replace("{setup}", setup)
    result = subprocess.run([sys.executable, "-c", steps], capture_output=True, text=True, env=env, check=True)
    kept, faults = result.stdout.split()
    return kept, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_blocks_are_reused_and_the_setting_can_be_turned_off():
    import os

    kept, faults = _page_faults({**os.environ, "OMNIPERCEIVER_KEEP_FREED_MEMORY": "1"})
    assert kept == "True" and faults < 20_000  # five more 64 MiB blocks in kept pages (a stray print may move one)
    kept, faults = _page_faults({**os.environ, "OMNIPERCEIVER_KEEP_FREED_MEMORY": "0"})
    assert kept == "False" and faults > 5 * 15_000  # 16,384 fresh 4 KiB pages a block


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_compute_policy_keeps_freed_memory_on_first_use():
    import os

    kept, faults = _page_faults({**os.environ, "OMNIPERCEIVER_KEEP_FREED_MEMORY": "1"}, POLICY)
    assert kept == "True" and faults < 20_000
    kept, faults = _page_faults({**os.environ, "OMNIPERCEIVER_KEEP_FREED_MEMORY": "0"}, POLICY)
    assert kept == "False" and faults > 5 * 15_000
