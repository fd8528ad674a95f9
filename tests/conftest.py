import os

import pytest
import torch

# OMNIPERCEIVER_TEST_DEVICE=cuda runs the suite with tensors and modules created on that device.
DEVICE = os.environ.get("OMNIPERCEIVER_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def _seed_and_device():
    torch.manual_seed(0)
    with torch.device(DEVICE):
        yield
