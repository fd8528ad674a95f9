"""Learning from few labels: a seeded fraction of each class's training examples (``training.label_fraction``),
and any Perceiver IO (the language Perceiver, a masked language model) fine-tuned into a classifier with its
encoder kept."""

import dataclasses

import pytest
import torch
from torch.utils.data import TensorDataset

pytest.importorskip("lightning")
from helpers import needs_fortunes

from omniperceiver import zoo
from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.data.splits import label_fraction, stratified_split
from omniperceiver.train.initialize import transfer
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.run import train
from omniperceiver.train.sections import TrainingSettings


def test_a_fraction_of_the_labels_is_kept_per_class_with_the_held_out_parts_whole():
    labels = torch.arange(400) % 4
    splits = stratified_split("toy", (torch.randn(400, 3), labels), ("a", "b", "c", "d"), "toy")
    few = label_fraction(splits, 0.05, seed=1)
    assert few.train.tensors[-1].bincount().tolist() == [4, 4, 4, 4]  # 5% of the 70 of each class, rounded
    assert few.validation is splits.validation and few.test is splits.test
    rows = {tuple(r) for r in splits.train.tensors[0].tolist()}
    assert all(tuple(r) in rows for r in few.train.tensors[0].tolist())  # a subset of the training part
    assert torch.equal(label_fraction(splits, 0.05, seed=1).train.tensors[0], few.train.tensors[0])
    assert not torch.equal(label_fraction(splits, 0.05, seed=2).train.tensors[0], few.train.tensors[0])
    assert label_fraction(splits, 0.001).train.tensors[-1].bincount().tolist() == [1, 1, 1, 1]  # one of each
    assert label_fraction(splits, 1.0) is splits
    with pytest.raises(ValueError, match="label_fraction"):
        TrainingSettings(label_fraction=0.0)
    per_element = stratified_split("toy", (torch.randn(400, 3), labels), ("a", "b", "c", "d"), "toy")
    per_element = dataclasses.replace(per_element, train=TensorDataset(torch.randn(8, 5), torch.zeros(8, 5).long()))
    with pytest.raises(ValueError, match="labels every element of an example"):
        label_fraction(per_element, 0.5)


def test_the_language_perceiver_becomes_a_classifier_with_its_encoder():
    source = zoo.create("language-perceiver", reduced=True)
    ids, mask = ByteTokenizer().batch(["hello there", "hallo du", "hola amigo", "ciao bella"] * 10)
    texts = stratified_split("texts", (ids, mask, torch.arange(40) % 4), ("en", "de", "es", "it"), "texts")
    config, fresh = load_recipe("fortunes").task.fit(source.config, texts)
    assert config.decoder.queries.num_queries == 1 and config.output.labels == texts.classes
    model = config.build()
    lines = transfer(source, model, fresh)
    for part in ("encoder", "input_adapter"):
        original = getattr(source, part).state_dict()
        assert all(torch.equal(getattr(model, part).state_dict()[n], original[n]) for n in original), part
    assert any(line.startswith("not used") and "output_adapter.bias" in line for line in lines)
    assert model(ids[:2], mask[:2]).shape == (2, 4)


def test_a_segmentation_model_becomes_an_image_classifier():
    segmentation = load_recipe("pasted-shapes")
    source = segmentation.task.model_config(
        segmentation.task.splits(None), segmentation.model, segmentation.training
    ).build()  # its decoder's queries are the pixels' own input elements
    digits = load_recipe("digits").task
    config, fresh = digits.fit(source.config, digits.splits(None))
    assert config.decoder.queries.num_queries == 1 and len(config.output.labels) == 10 and fresh[0] == "decoder"
    model = config.build()
    transfer(source, model, fresh)
    assert all(torch.equal(model.encoder.state_dict()[n], v) for n, v in source.encoder.state_dict().items())


@needs_fortunes
def test_a_recipe_fine_tunes_a_saved_masked_language_model_on_5_percent_of_the_labels(tmp_path):
    zoo.create("language-perceiver", reduced=True, max_length=160).save_pretrained(tmp_path / "mlm")
    overrides = ["model=null", f"init_from={tmp_path / 'mlm'}", "training.label_fraction=0.05", "training.epochs=1"]
    metrics = train(load_recipe("fortunes", overrides), tmp_path / "run", progress=False)
    assert 0 <= metrics["test_accuracy"] <= 1
    log = (tmp_path / "run" / "logs" / "initialization.txt").read_text()
    assert f"weights from {tmp_path / 'mlm'}" in log and "decoder" in log
