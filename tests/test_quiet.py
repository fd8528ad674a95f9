"""`omniperceiver train` and `evaluate` print one progress bar and the results: no Lightning banners or tips, no
warnings (Lightning's own, the logging interval, matplotlib's layout)."""

import pytest
import torch

pytest.importorskip("lightning")
from omniperceiver.cli import main


def test_train_and_evaluate_print_the_progress_and_the_results_only(tmp_path, capfd, caplog, recwarn, single_thread):
    """A csv series: its attention picture is the sequence heat map, its classifier draws a confusion matrix."""
    generator = torch.Generator().manual_seed(0)
    rows = ["label," + ",".join(f"t{i}" for i in range(8))]
    rows += [f"{'ab'[i % 2]}," + ",".join(f"{v:.3f}" for v in torch.rand(8, generator=generator)) for i in range(40)]
    (tmp_path / "series.csv").write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "series.yaml"
    recipe.write_text(f"dataset: csv-series\ndata_path: {tmp_path / 'series.csv'}\ntraining: {{epochs: 1}}\n")
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output-dir", str(run)]) == 0
    assert main(["evaluate", str(run)]) == 0
    out, err = capfd.readouterr()
    assert [str(warning.message) for warning in recwarn] == []
    assert caplog.messages == []  # Lightning's info lines (printed, outside pytest, by Lightning's own handler)
    assert err == ""
    # one progress bar each (rich draws them once, at the end, into a pipe): train's training, evaluate's test
    assert out.count("Epoch 0/0") == 1 and out.count("Testing") == 1, out
    trained, evaluated = (line for line in out.splitlines() if "test_accuracy" in line)
    assert trained.startswith("csv-series: test_accuracy") and trained.endswith(f"; run folder {run}")
    assert evaluated.startswith(f"{run}: test_accuracy")
    for chatter in ("GPU available", "TPU available", "Tip", "LeafSpec", "log_every_n_steps", "Trainer.fit", "layout"):
        assert chatter not in out
