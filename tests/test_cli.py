import subprocess
import sys

import pytest
from helpers import small_classifier

from omniperceiver.cli import main


def test_info_describes_a_model_directory(tmp_path, capsys):
    model = small_classifier()
    model.save_pretrained(tmp_path)
    assert main(["info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    total = sum(p.numel() for p in model.parameters())
    assert f"PerceiverIO, {total:,} parameters" in out
    assert "EncoderConfig(input_channels=21, num_latents=8, latent_channels=16" in out
    assert "position=FourierPositionConfig(num_bands=4)" in out


def test_info_and_predict_take_a_training_run_folder(tmp_path, capsys):
    small_classifier().save_pretrained(tmp_path / "run" / "model")
    (tmp_path / "run" / "recipe.yaml").write_text("dataset: digits\n")
    assert main(["info", str(tmp_path / "run")]) == 0
    assert "PerceiverIO" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "run"), "x.png", "--quiet"]) == 1
    assert "the model reads ArrayInputConfig inputs; this dataset needs ImageInputConfig" in capsys.readouterr().err


def test_info_reports_a_missing_directory(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 1
    assert "missing does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["info", str(tmp_path / "empty")]) == 1
    assert "is not an omniperceiver model directory: config.json is missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "example"),
    [
        (["--help"], "omniperceiver info runs/digits"),
        (["info", "--help"], "omniperceiver info runs/digits"),
        (["convert", "--help"], "omniperceiver convert hf ./vision-perceiver-conv models/conv"),
        (["predict", "--help"], "omniperceiver predict models/conv cat.jpg dog.png"),
        (["shards", "--help"], "omniperceiver shards my_images.yaml shards/my_images --per-shard 1000"),
        (["train", "--help"], "omniperceiver train mnist training.epochs=10"),
        (["reproduce", "--help"], "omniperceiver reproduce fusion --jobs 2"),
        (["tokenizer", "--help"], "omniperceiver tokenizer corpus/train/ --vocab-size 4096 --output tokenizers/bpe-4k"),
    ],
)
def test_every_command_has_help_with_an_example(args, example):
    result = subprocess.run([sys.executable, "-m", "omniperceiver.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0
    assert "example" in result.stdout and example in result.stdout
