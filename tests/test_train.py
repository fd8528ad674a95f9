"""The training engine: recipes are validated before anything runs; a recipe trains to a stated accuracy."""

import pytest

from omniperceiver.cli import main

pytest.importorskip("lightning")
from omniperceiver.train import load_recipe

RECIPE = "recipes/digits.yaml"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.epoch=3"], r"digits.yaml.training.epoch: unknown key; valid keys: \['accumulate_grad_batches'"),
        (["model.num_latents=many"], r"digits.yaml.model.num_latents: expected int, got 'many'"),
        (["training.precision=16"], r"digits.yaml.training.precision: expected str, got 16"),
        (["training.precision=fp8"], r"precision='fp8' is invalid: expected '32-true' or 'bf16-mixed'"),
        (["epochs"], r"override 'epochs': expected section.key=value"),
    ],
)
def test_bad_recipes_fail_before_training_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(RECIPE, overrides)


def test_the_digits_recipe_learns(tmp_path, capsys):
    overrides = ["training.epochs=30", "training.learning_rate=0.002"]  # a shorter run of the recipe
    assert main(["train", RECIPE, *overrides, "--output-dir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("test_accuracy ")[1].split(",")[0].split(";")[0])
    assert accuracy >= 0.9, out
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert main(["info", str(tmp_path / "model")]) == 0
