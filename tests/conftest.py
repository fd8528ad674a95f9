import os

import pytest
import torch

# The compute policy's documented default, no calibration timed inside tests (tests of the policy give it tables).
os.environ["OMNIPERCEIVER_CALIBRATION"] = "off"

# OMNIPERCEIVER_TEST_DEVICE=cuda runs the suite with tensors and modules created on that device.
DEVICE = os.environ.get("OMNIPERCEIVER_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True)
def _seed_and_device():
    torch.manual_seed(0)
    with torch.device(DEVICE):
        yield


@pytest.fixture
def single_thread():
    """Run a test of tiny models on one CPU thread: OpenMP's fork/join costs more than such kernels gain from
    a second thread, and on a shared 2-core machine a contended thread slows every op many-fold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="session")
def demo_results(demo_dir):
    """The full demo, every shipped recipe of it trained to the end once per session, two at a time (about half
    the time): {task: DemoResult}, the runs in ``demo_dir``/TASK. The learning tests read its results, the
    language model's engine test its fortunes-lm run."""
    pytest.importorskip("lightning")
    from omniperceiver.train.demo import run_demo

    return {r.task: r for r in run_demo(demo_dir, progress=False, jobs=2)}
