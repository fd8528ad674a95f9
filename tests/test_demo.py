"""`omniperceiver demo --quick`: every modality trains end to end and the table, models and pictures appear."""

import dataclasses

import pytest
from helpers import needs_espeak_ng, needs_fortunes

pytest.importorskip("lightning")
from omniperceiver.cli import main
from omniperceiver.train.demo import DEMO, DemoResult


@needs_fortunes
@needs_espeak_ng
def test_quick_demo_prints_the_table_and_writes_every_run(tmp_path, capsys):
    assert main(["demo", "--quick", "--quiet", "--jobs", "2", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    header = "| task | modality | inputs per example | metric | baseline | result | threshold | train time |"
    assert header in out
    for demo in DEMO:
        assert f"| {demo.recipe} |" in out
        run = tmp_path / demo.recipe
        assert (run / "model" / "model.safetensors").is_file()
        seen = "samples.txt" if demo.recipe == "fortunes-lm" else "attention.png"  # a language model writes text
        assert (run / "curves.png").is_file() and (run / seen).is_file()
    assert (tmp_path / "flow-pairs" / "flow.png").is_file()
    assert (tmp_path / "mnist" / "confusion.png").is_file()


def test_a_reference_row_must_reach_its_threshold_but_not_its_baseline():
    def reference(result: float) -> DemoResult:
        return DemoResult("audiovisual-image", "image", 49, "accuracy", 0.66, result, 0.5, 1.0, reference=True)

    assert reference(0.55).passed and not reference(0.45).passed
    assert not dataclasses.replace(reference(0.55), reference=False).passed  # a task must beat its baseline too
    assert all(d.threshold is not None for d in DEMO)  # no row asserts nothing
