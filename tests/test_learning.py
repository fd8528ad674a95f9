"""Every modality learns: the full demo (each shipped recipe trained to the end) beats the threshold the README
states and the simple baseline measured on the same split; the single-modality reference rows reach theirs, so
that fusion beating them means something. docs/demo-seeds.md gives each task's mean and spread over training
seeds. One training run per task, shared by the tests; the fortunes tasks need the Debian fortunes corpus."""

import pytest

pytest.importorskip("lightning")
from helpers import needs_fortunes

from omniperceiver.train.demo import DEMO, DemoResult, run_demo

pytestmark = needs_fortunes


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, DemoResult]:
    return {r.task: r for r in run_demo(tmp_path_factory.mktemp("demo"), progress=False)}


@pytest.mark.parametrize("demo", DEMO, ids=[d.recipe for d in DEMO])
def test_each_task_beats_its_threshold_and_its_baseline(results, demo):
    result = results[demo.recipe]
    assert result.passed, result


def test_fusion_beats_each_modality_alone(results):
    fused = results["audiovisual-digits"].result
    assert fused > results["audiovisual-image"].result and fused > results["audiovisual-audio"].result
