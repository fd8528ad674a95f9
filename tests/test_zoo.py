"""The registry of published models: each entry's configuration, kind (task, preprocessing, export defaults) and
transformers class; the structure of a model finds its kind; models/ imports none of the layers above it."""

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from helpers import random_ar

import omniperceiver as op
from omniperceiver import zoo
from omniperceiver.adapters.points import PointCloudInputConfig
from omniperceiver.interop.transformers import ARCHITECTURES, HF_DEFAULTS, config_from_transformers
from omniperceiver.outputs.classification import TokenClassificationOutputConfig
from omniperceiver.predict import RUNNERS, task


@pytest.mark.parametrize("name", list(zoo.PUBLISHED))
def test_each_entry_builds_both_sizes_of_one_structure_whose_kind_is_its_own(name):
    entry = zoo.published(name)
    full, reduced = entry.config(), entry.config(reduced=True)
    assert type(full.input) is type(reduced.input) and type(full.output) is type(reduced.output)
    assert zoo.kind_of(full) is entry.kind and zoo.kind_of(reduced) is entry.kind
    assert entry.kind.task in RUNNERS
    model = reduced.build().eval()
    assert task(model)[0] == entry.kind.task
    x, mask = reduced.input.example(2)
    with torch.no_grad():
        outputs = model(x, mask)  # (its size is checked by the export and parity tests)
    for output in outputs.values() if isinstance(outputs, dict) else [outputs]:  # (multimodal: one per modality)
        assert len(output) == 2 and output.isfinite().all()


def test_the_entries_hold_what_interop_and_predict_read():
    assert [entry.name for entry in zoo.PUBLISHED.values()] == list(zoo.PUBLISHED)
    assert [ARCHITECTURES[entry.transformers.architecture] for entry in zoo.PUBLISHED.values()] == list(
        zoo.PUBLISHED.values()
    )
    vision = {name for name, entry in zoo.PUBLISHED.items() if entry.kind.task == "image classification"}
    assert vision == {"vision-perceiver-learned", "vision-perceiver-fourier", "vision-perceiver-conv"}
    preprocessing = zoo.published("vision-perceiver-conv").kind.preprocessing
    assert (preprocessing.crop_fraction, preprocessing.mean) == (224 / 256, (0.485, 0.456, 0.406))
    assert zoo.published("language-perceiver").kind.dynamic == ("batch", "length")
    assert zoo.published("multimodal-perceiver").kind.subset  # 802,816 video outputs: decoded in subsets
    with pytest.raises(ValueError, match="unknown model 'vision'; known models: language-perceiver, "):
        zoo.config("vision")


def test_a_transformers_config_translates_through_its_entry():
    hf = {**HF_DEFAULTS, "model_type": "perceiver", "architectures": ["PerceiverForSequenceClassification"]}
    config = config_from_transformers({**hf, "id2label": {"0": "no", "1": "yes"}, "d_model": 64, "num_latents": 8})
    assert zoo.kind_of(config).task == "text classification"
    assert (config.output.labels, config.input.channels, config.encoder.num_latents) == (("no", "yes"), 64, 8)
    with pytest.raises(ValueError, match="convertible: \\['PerceiverForImageClassificationConvProcessing'"):
        config_from_transformers({**hf, "architectures": ["PerceiverModel"]})


def test_other_structures_have_no_kind_and_predict_says_so():
    points = op.PerceiverIOConfig.classifier(PointCloudInputConfig(num_bands=4), 5, num_latents=8, latent_channels=16)
    text = zoo.config("text-classifier", reduced=True)
    per_token = dataclasses.replace(text, output=TokenClassificationOutputConfig())  # a class per input byte
    assert zoo.kind_of(text).task == "text classification"
    assert zoo.kind_of(points) is None and zoo.kind_of(random_ar().config) is None and zoo.kind_of(per_token) is None
    with pytest.raises(
        ValueError,
        match="a PerceiverIO of PointCloudInputAdapter -> ClassificationOutput: it runs",
    ):
        task(points.build())
    with pytest.raises(ValueError, match="predict knows no task for a PerceiverAR: "):
        task(random_ar())


LAYERS_ABOVE_MODELS = ("omniperceiver.loading", "omniperceiver.interop", "omniperceiver.zoo", "omniperceiver.cli")


def test_models_import_no_layer_above_them():
    """models/ (and core/) import neither the loaders nor the registry, not even inside a function: no circle."""
    package = Path(op.__file__).parent
    for path in [*(package / "models").glob("*.py"), *(package / "core").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            above = [name for name in names if name.startswith(LAYERS_ABOVE_MODELS)]
            assert not above, f"{path.relative_to(package)} imports {above}"
    with pytest.raises(FileNotFoundError, match="transformers directories and Hub ids load with omniperceiver"):
        op.PerceiverIO.from_pretrained("deepmind/language-perceiver")
