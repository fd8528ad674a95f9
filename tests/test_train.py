"""The training engine: recipes are validated before anything runs; a recipe trains to a stated accuracy."""

import numpy as np
import pytest
import torch

pytest.importorskip("lightning")
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.train import evaluate, load_recipe, train
from omniperceiver.train.tasks.language import Tokenization

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
        (["input.patch_size=0"], r"patch_size=0 is invalid"),
        (["model.patch_size=4"], r"digits.yaml.model.patch_size: how the data is read moved to the input: section"),
        (["model.zoo=vision-perceiver"], r"digits.yaml.model.zoo='vision-perceiver' is invalid: expected one of"),
    ],
)
def test_bad_recipes_fail_before_training_naming_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(RECIPE, overrides)


def test_the_model_section_sets_the_latents_initial_spread_and_the_cross_attention_qk_gain():
    recipe = load_recipe("digits", ["model.latent_init_std=1.0", "model.cross_attention_qk_gain=3"])
    config = recipe.task.model_config(recipe.splits(), recipe.model, recipe.training)
    assert (config.encoder.latent_init_std, config.encoder.cross_attention_qk_gain) == (1.0, 3.0)
    encoder = config.build().encoder
    assert encoder.latents.std().item() > 0.5  # the published 0.02 otherwise
    key = encoder.cross_attentions[0].attention.key
    assert key.weight.abs().max() > 2 * key.in_features**-0.5  # PyTorch's bound 1/sqrt(fan_in) otherwise


def test_exponents_without_a_dot_are_floats():
    recipe = load_recipe("digits", ["training.learning_rate=3e-4", "training.checkpoint_every_minutes=1E1"])
    assert (recipe.training.learning_rate, recipe.training.checkpoint_every_minutes) == (3e-4, 10.0)


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


def test_a_recipe_trains_on_a_users_image_folder(tmp_path):
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for name, level in (("dark", 40), ("bright", 215)):  # two classes a model separates at once
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(20):
            pixels = (level + torch.randint(-30, 30, (8, 8, 3), generator=generator)).to(torch.uint8)
            Image.fromarray(pixels.numpy()).save(tmp_path / "photos" / name / f"{i}.png")
    recipe = tmp_path / "mine.yaml"
    training = "{epochs: 8, num_workers: 2}"  # the images are read in 2 worker processes
    recipe.write_text(f"dataset: image-folder\ndata_path: {tmp_path / 'photos'}\ntraining: {training}\n")
    metrics = train(load_recipe(recipe), tmp_path / "run", progress=False)
    assert metrics["test_accuracy"] == 1.0
    # images of another size join the folder: the recipe's data section resizes every image
    Image.fromarray(np.full((12, 9, 3), 215, dtype=np.uint8)).save(tmp_path / "photos" / "bright" / "big.png")
    with pytest.raises(ValueError, match=r"differ in size .* pass size"):
        load_recipe(recipe).splits()
    resized = load_recipe(recipe, ["data.size=[8, 8]", "training.epochs=1"])
    assert rows_of(resized.splits().train)[0].shape[1:] == (8, 8, 3) and resized.to_dict()["data"] == {"size": [8, 8]}
    options = r"\['crop', 'mean', 'size', 'std'\]"
    with pytest.raises(
        ValueError, match=rf"data.points: not an option of dataset 'image-folder'; its options: {options}"
    ):
        load_recipe(recipe, ["data.points=3"])
    with pytest.raises(ValueError, match=r"mine.yaml.data.size"):
        load_recipe(recipe, ["data.size=8"])
    with pytest.raises(ValueError, match=r"dataset='image-folder' takes a folder: set data_path; got data_path=None"):
        train(load_recipe(recipe, ["data_path=null"]), tmp_path / "run2")
    with pytest.raises(ValueError, match=r"dataset='mnist' takes no data_path"):
        train(load_recipe("mnist", [f"data_path={tmp_path}"]), tmp_path / "run3")
    with pytest.raises(ValueError, match=r"mine.yaml.data_path: expected str \| None, got 3"):
        load_recipe(recipe, ["data_path=3"])


def test_a_recipe_trains_on_a_users_csv_series(tmp_path):
    """csv-series: one series per row, the class in the column named label; rising against falling ramps that
    start anywhere (no single step separates them)."""
    generator = torch.Generator().manual_seed(0)
    steps = torch.linspace(0, 1, 24)
    rows = ["label," + ",".join(f"t{i}" for i in range(24))]
    for i in range(200):
        kind = ("rising", "falling")[i % 2]
        series = torch.rand(1, generator=generator) * 4 + (steps if kind == "rising" else -steps)
        series = series + 0.05 * torch.randn(24, generator=generator)
        rows.append(kind + "," + ",".join(f"{v:.4f}" for v in series.tolist()))
    (tmp_path / "ramps.csv").write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "ramps.yaml"
    recipe.write_text(f"dataset: csv-series\ndata_path: {tmp_path / 'ramps.csv'}\ntraining: {{epochs: 20}}\n")
    metrics = train(load_recipe(recipe), tmp_path / "run", progress=False)
    assert metrics["test_accuracy"] >= 0.95, metrics

    # the user's own test set: what training reports and what evaluate scores
    (tmp_path / "official.csv").write_text("\n".join(rows[:1] + rows[-8:]) + "\n")
    official = load_recipe(recipe, [f"test_path={tmp_path / 'official.csv'}", "training.epochs=2"])
    assert len(official.splits().test) == 8 and official.to_dict()["test_path"] == str(tmp_path / "official.csv")
    metrics = train(official, tmp_path / "official-run", progress=False)
    scored = evaluate(tmp_path / "official-run", progress=False)
    assert scored["test_accuracy"] == metrics["test_accuracy"] and scored["test_loss"] == metrics["test_loss"]
    with pytest.raises(
        ValueError, match=r"dataset='digits' ships its own splits: remove validation_path, test_path, data"
    ):
        load_recipe("digits", [f"test_path={tmp_path}"]).splits()


def test_a_language_model_recipe_has_its_own_trunk_and_a_tokenizer_for_input():
    recipe = load_recipe("fortunes-lm", ["model.num_layers=2"])
    assert recipe.model.num_layers == 2 and recipe.input == Tokenization()  # bytes
    assert load_recipe("fortunes-lm", ["input.vocab_size=4096"]).input == Tokenization(vocab_size=4096)
    with pytest.raises(ValueError, match=r"fortunes-lm.yaml.input.ngram: unknown key; valid keys: \['tokenizer', 'vo"):
        load_recipe("fortunes-lm", ["input.ngram=2"])
    with pytest.raises(ValueError, match=r"vocab_size=4096 is invalid: expected none when a tokenizer is given"):
        load_recipe("fortunes-lm", ["input.vocab_size=4096", "input.tokenizer=tok"])
    with pytest.raises(ValueError, match=r"vocab_size=100 is invalid: expected more than the 262 ids of bytes"):
        load_recipe("fortunes-lm", ["input.vocab_size=100"])
    with pytest.raises(ValueError, match=r"fortunes-lm.yaml.model.num_self_attends_per_block: unknown key"):
        load_recipe("fortunes-lm", ["model.num_self_attends_per_block=2"])
