"""Recipes that build any model: a converted transformers vision-perceiver-conv fine-tuned on an image folder
with its encoder frozen, then unfrozen from that run; heads replaced for new classes; learned positions resized;
weight decay only on layer weights; a published architecture by zoo name; a new task kind from a test file."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torchmetrics
from PIL import Image
from safetensors.torch import load_file

pytest.importorskip("lightning")

import omniperceiver as op
from omniperceiver import zoo
from omniperceiver.cli import main
from omniperceiver.core.position import resize_learned_positions
from omniperceiver.train import parse_recipe, register, train
from omniperceiver.train.initialize import build_model
from omniperceiver.train.inputs import ImageInput
from omniperceiver.train.sections import TrainingSettings
from omniperceiver.train.tasks.base import Task, TaskModule, parameter_groups

CLASSES = ("checks", "stripes", "dots")


def image_folder(root, size=(32, 32), per_class=40):
    """Noisy RGB patterns, one subfolder per class."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[: size[0], : size[1]]
    patterns = {
        "checks": ((rows // 4 + cols // 4) % 2).astype(float),
        "stripes": ((cols // 3) % 2).astype(float),
        "dots": (((rows % 6) < 2) & ((cols % 6) < 2)).astype(float),
    }
    for name, pattern in patterns.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            colour = rng.uniform(0.3, 1.0, 3)
            pixels = pattern[..., None] * colour + rng.normal(0, 0.15, (*size, 3))
            Image.fromarray((pixels.clip(0, 1) * 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A transformers PerceiverForImageClassificationConvProcessing at a reduced size with random weights,
    converted by `omniperceiver convert hf` (5 classes)."""
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("conv")
    config = transformers.PerceiverConfig(
        num_latents=8,
        d_latents=32,
        d_model=322,
        num_blocks=2,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
        num_cross_attention_heads=1,
        num_labels=5,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    transformers.PerceiverForImageClassificationConvProcessing(config).eval().save_pretrained(root / "hf")
    assert main(["convert", "hf", str(root / "hf"), str(root / "op")]) == 0
    return root / "op"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("images") / "patterns")


def recipe(folder, **sections):
    training = {"epochs": 2, "batch_size": 16, "learning_rate": 0.003, **sections.pop("training", {})}
    return parse_recipe({"dataset": "image-folder", "data_path": str(folder), **sections, "training": training}, "test")


def weights(directory):
    return load_file(directory / "model.safetensors")


def test_fine_tune_frozen_then_unfrozen_then_continued(converted, folder, tmp_path):
    frozen = recipe(folder, init_from=str(converted), training={"freeze": ["input_adapter", "encoder"], "epochs": 10})
    metrics = train(frozen, tmp_path / "frozen", progress=False)
    assert metrics["test_accuracy"] >= 0.5  # chance 1/3; a random encoder frozen: 0.61-0.67 over seeds 0-3
    source, after = weights(converted), weights(tmp_path / "frozen" / "model")
    body = [name for name in source if name.startswith(("input_adapter.", "encoder."))]
    assert body and all(torch.equal(source[name], after[name]) for name in body)  # byte-identical, BN stats too
    assert not torch.equal(
        source["decoder.cross_attention.attention.query.weight"],
        after["decoder.cross_attention.attention.query.weight"],
    )
    assert after["decoder.projection.weight"].shape == (3, source["decoder.projection.weight"].shape[1])
    log = (tmp_path / "frozen" / "logs" / "initialization.txt").read_text()
    assert f"weights from {converted}" in log and "not loaded (newly initialized): decoder.queries" in log
    assert "frozen: input_adapter, encoder" in log
    assert op.from_pretrained(tmp_path / "frozen").output_adapter.config.labels == tuple(sorted(CLASSES))

    unfrozen = recipe(folder, init_from=str(tmp_path / "frozen"))  # a run folder
    train(unfrozen, tmp_path / "unfrozen", progress=False)
    log = (tmp_path / "unfrozen" / "logs" / "initialization.txt").read_text()
    assert "not loaded" not in log  # same classes: nothing starts anew
    before, now = weights(tmp_path / "frozen" / "model"), weights(tmp_path / "unfrozen" / "model")
    assert not torch.equal(before["encoder.latents"], now["encoder.latents"])  # the encoder trains now


def test_loaded_weights_equal_the_source_and_a_new_head_starts_anew(converted, folder):
    splits_recipe = recipe(folder, init_from=str(converted))
    task = splits_recipe.task
    model, report = build_model(splits_recipe, task, task.splits(splits_recipe.data_path))
    source = weights(converted)
    fresh = ("decoder.queries.", "decoder.projection.")
    for name, value in model.state_dict().items():
        if name.startswith(fresh):
            assert value.shape != source[name].shape or not torch.equal(value, source[name]), name
        else:
            assert torch.equal(value, source[name]), name
    assert report[1] == f"loaded {len(source) - 3} of {len(source)} weights"
    from_transformers = recipe(folder, init_from=str(converted.parent / "hf"))  # converted on the fly
    again, _ = build_model(from_transformers, task, task.splits(from_transformers.data_path))
    kept = [name for name in source if not name.startswith(fresh)]
    assert all(torch.equal(again.state_dict()[name], source[name]) for name in kept)


def test_learned_positions_are_resized_and_equal_at_the_original_size(tmp_path):
    source = zoo.create("vision-perceiver-learned", reduced=True)  # 16x16 learned positions
    source.save_pretrained(tmp_path / "learned")
    table = source.state_dict()["input_adapter.array.position.encoding.embedding"]
    for size in ((16, 16), (24, 20)):
        folder = image_folder(tmp_path / f"images{size[0]}" / "patterns", size=size, per_class=4)
        built = recipe(folder, init_from=str(tmp_path / "learned"))
        task = built.task
        model, report = build_model(built, task, task.splits(built.data_path))
        resized = model.state_dict()["input_adapter.array.position.encoding.embedding"]
        assert torch.equal(resized, resize_learned_positions(table, (16, 16), size))
        if size == (16, 16):
            assert torch.equal(resized, table)
        else:
            assert any(
                "interpolated input_adapter.array.position.encoding.embedding 16x16 -> 24x20" in r for r in report
            )


def test_a_published_architecture_by_zoo_name_is_fitted_to_the_data(folder, tmp_path):
    built = recipe(folder, model={"zoo": "vision-perceiver-conv", "reduced": True, "num_latents": 12})
    assert built.to_dict()["model"] == {"zoo": "vision-perceiver-conv", "reduced": True, "num_latents": 12}
    model, _ = build_model(built, built.task, built.task.splits(built.data_path))
    assert model.config.encoder.num_latents == 12 and model.config.input.image_shape == (32, 32)
    assert model.config.output.labels == tuple(sorted(CLASSES))
    with pytest.raises(ValueError, match=r"model: vision-perceiver-conv takes no such argument .*num_latent"):
        recipe(folder, model={"zoo": "vision-perceiver-conv", "num_latent": 12})
    with pytest.raises(ValueError, match=r"give model .* or init_from .*not both"):
        recipe(folder, model={"zoo": "vision-perceiver-conv"}, init_from=str(tmp_path))
    with pytest.raises(ValueError, match=r"training.freeze: 'encoders' is no module of the model; its groups are"):
        bad = recipe(folder, training={"freeze": ["encoders"]})
        build_model(bad, bad.task, bad.task.splits(bad.data_path))


def test_weight_decay_skips_biases_norms_latents_positions_and_frozen_groups():
    model = zoo.create("vision-perceiver-learned", reduced=True)
    model.encoder.requires_grad_(False)
    settings = TrainingSettings(weight_decay=0.1, learning_rates={"decoder.queries": 0.5})
    groups = {group["name"]: group for group in parameter_groups(model, settings)}
    names = {id(p): n for n, p in model.named_parameters()}
    decaying = {names[id(p)] for g in groups.values() if g["weight_decay"] for p in g["params"]}
    resting = {names[id(p)] for g in groups.values() if not g["weight_decay"] for p in g["params"]}
    layers = {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)}
    assert decaying == {n for n in layers if not n.startswith("encoder.")}
    assert "input_adapter.array.position.encoding.embedding" in resting and "decoder.queries.queries" in resting
    assert not any(n.startswith("encoder.") for n in decaying | resting)  # frozen: in no group
    assert groups["decoder.queries (no decay)"]["lr"] == 0.5 and groups["rest"]["lr"] == settings.learning_rate


class MeanBrightness(TaskModule):
    """Regression of each image's mean brightness: squared error, mean absolute error."""

    def new_metric(self) -> torchmetrics.Metric:
        return torchmetrics.MeanAbsoluteError()

    def predict(self, batch):
        x, mask, _ = self.task.unpack(batch)
        return self.model(x, mask).float()[:, 0], x.mean(dim=(1, 2, 3))

    def loss(self, outputs, target):
        return torch.nn.functional.mse_loss(outputs, target)


@dataclasses.dataclass(frozen=True)
class BrightnessTask(Task):
    """A new kind, defined here: the engine trains it without knowing it."""

    metric = "mae"
    lower_is_better = True
    module = MeanBrightness

    def model_config(self, splits, trunk, settings):
        adapter = self.input.adapter(self.inputs(splits.train.tensors))
        fields = dataclasses.asdict(self.encoder(splits, trunk, settings))
        del fields["input_channels"]
        return op.PerceiverIOConfig.classifier(adapter, 1, **fields)

    def pictures(self, run_dir, module, splits):
        return []


def test_a_new_task_kind_trains_without_editing_the_engine(tmp_path):
    from omniperceiver import data

    register(BrightnessTask("digit-brightness", "image", data.digits, ImageInput(fourier_bands=4)))
    built = parse_recipe({"dataset": "digit-brightness", "training": {"epochs": 3, "learning_rate": 0.003}}, "test")
    metrics = train(built, tmp_path / "run", progress=False)
    assert metrics["test_mae"] < 0.03  # brightness spans about 0.1 to 0.4


def test_a_series_model_is_fitted_to_the_datasets_length_and_channels():
    from omniperceiver.train.inputs import SequenceInput

    section = SequenceInput(fourier_bands=4)
    model_adapter = section.adapter((torch.zeros(2, 50, 13), torch.ones(2, 50, dtype=torch.bool)))
    fitted = section.fit(model_adapter, (torch.zeros(2, 60, 13), torch.ones(2, 60, dtype=torch.bool)))
    assert fitted.index_shape == (60,) and fitted.in_channels == 13
    with pytest.raises(ValueError, match="the model reads series of 13 channels, the dataset's have 7"):
        section.fit(model_adapter, (torch.zeros(2, 60, 7), torch.ones(2, 60, dtype=torch.bool)))
    with pytest.raises(
        ValueError, match="the model reads ArrayInputConfig inputs; this dataset needs ImageInputConfig"
    ):
        ImageInput().fit(model_adapter, (torch.zeros(2, 8, 8, 1),))
