"""`omniperceiver demo --quick`: every modality trains end to end and the table, models and pictures appear."""

import pytest
from helpers import needs_espeak_ng, needs_fortunes

pytest.importorskip("lightning")
from omniperceiver.cli import main
from omniperceiver.train.demo import DEMO


@needs_fortunes
@needs_espeak_ng
def test_quick_demo_prints_the_table_and_writes_every_run(tmp_path, capsys):
    assert main(["demo", "--quick", "--quiet", "--output-dir", str(tmp_path)]) == 0
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
