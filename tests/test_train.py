"""The training engine: recipes are validated before anything runs; a recipe trains to a stated accuracy."""

import pytest

pytest.importorskip("lightning")
from omniperceiver.train import load_recipe, train

RECIPE = "digits"  # a shipped recipe, by name


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.epoch=3"], r"digits.yaml.training.epoch: unknown key; valid keys: \['accumulate_grad_batches'"),
        (["model.num_latents=many"], r"digits.yaml.model.num_latents: expected int, got 'many'"),
        (["training.precision=16"], r"digits.yaml.training.precision: expected str, got 16"),
        (["training.precision=fp8"], r"precision='fp8' is invalid: expected '32-true' or 'bf16-mixed'"),
        (["epochs"], r"override 'epochs': expected section.key=value"),
        (["training.strategy=horovod"], r"strategy='horovod' is invalid: expected one of \('auto', 'ddp', 'fsdp'\)"),
        (["training.devices=3"], r"batch_size=32 is invalid: expected a multiple of devices x num_nodes \(3\)"),
        (["model.patch_size=0"], r"patch_size=0 is invalid"),
    ],
)
def test_bad_recipes_fail_before_training_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(RECIPE, overrides)


def test_unknown_recipes_and_datasets_fail_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no recipe file mnsit; the shipped recipes are \[.*'mnist'"):
        load_recipe("mnsit")
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("dataset: imagenet\n")
    with pytest.raises(ValueError, match=r"dataset='imagenet': expected one of \[.*'mnist'"):
        train(load_recipe(recipe), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cannot resume: .*checkpoints/last.ckpt does not exist"):
        train(load_recipe(RECIPE), tmp_path, resume=True)
