"""The seven transformers Perceiver classes, converted by `omniperceiver convert hf`, give the same outputs.

Each reference model is built at a reduced size that keeps every structural feature (several heads, shared
latent blocks, qk != v channels, position projections, BatchNorm statistics, per-modality padding), with
every weight randomized, saved with save_pretrained, converted by the command, and compared at 1e-5.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import omniperceiver as op
from omniperceiver import zoo
from omniperceiver.adapters.flow import frame_patches
from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.cli import main
from omniperceiver.interop.transformers import HF_DEFAULTS, config_from_transformers

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-5
SMALL = dict(
    num_latents=8,
    d_latents=32,
    num_blocks=2,
    num_self_attends_per_block=2,
    num_self_attention_heads=4,
    num_cross_attention_heads=1,
    num_labels=5,
    image_size=16,
    attention_probs_dropout_prob=0.0,
)
TEXT = dict(d_model=16, max_position_embeddings=32, num_cross_attention_heads=2, qk_channels=16, v_channels=32)


def randomize(model: torch.nn.Module) -> None:
    """Every parameter and BatchNorm statistic away from its initial value, so no weight goes untested."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                tensor.fill_(7)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.is_floating_point():
                noise = torch.randn(tensor.shape, generator=generator)
                if "norm" in name and name.endswith("weight"):
                    tensor.copy_(1 + 0.2 * noise)
                elif tensor.dim() >= 2 and "position" not in name and "latents" not in name:
                    tensor.copy_(noise / tensor[0].numel() ** 0.5)  # layers keep activations of order 1
                else:
                    tensor.copy_(0.5 * noise)


def convert(architecture: str, tmp_path, **config):
    """(reference model, converted model) for a transformers class at a reduced size."""
    reference = getattr(transformers, architecture)(transformers.PerceiverConfig(**{**SMALL, **config}))
    randomize(reference)
    reference.eval().save_pretrained(tmp_path / "hf")
    assert main(["convert", "hf", str(tmp_path / "hf"), str(tmp_path / "op")]) == 0
    return reference, op.from_pretrained(tmp_path / "op")


def assert_close(ours: torch.Tensor, reference: torch.Tensor) -> None:
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() <= TOLERANCE


def text_batch() -> tuple[torch.Tensor, torch.Tensor]:
    return ByteTokenizer().batch(["hello", "Perceiver IO reads bytes", "é!"])


def test_masked_language_model_on_a_padded_batch(tmp_path):
    reference, ours = convert("PerceiverForMaskedLM", tmp_path, **TEXT)
    ids, mask = text_batch()
    with torch.no_grad():
        expected = reference(inputs=ids, attention_mask=mask.long()).logits
        assert_close(ours(ids, mask), expected)
        # decoding only the positions that exist gives the same rows
        assert_close(ours(ids, mask, output_indices=torch.arange(ids.shape[1])), expected[:, : ids.shape[1]])
    assert ours.output_adapter.embedding is ours.input_adapter.embedding


def test_text_classifier_on_a_padded_batch(tmp_path):
    reference, ours = convert("PerceiverForSequenceClassification", tmp_path, **TEXT)
    ids, mask = text_batch()
    with torch.no_grad():
        assert_close(ours(ids, mask), reference(inputs=ids, attention_mask=mask.long()).logits)


@pytest.mark.parametrize(
    ("architecture", "sizes"),
    [
        ("PerceiverForImageClassificationLearned", [(16, 16)]),
        ("PerceiverForImageClassificationFourier", [(16, 16), (12, 20)]),
        ("PerceiverForImageClassificationConvProcessing", [(32, 32), (24, 40)]),
    ],
)
def test_image_classifiers_at_several_sizes(tmp_path, architecture, sizes):
    reference, ours = convert(architecture, tmp_path, id2label={i: f"class {i}" for i in range(5)})
    assert ours.output_adapter.config.labels == tuple(f"class {i}" for i in range(5))
    for height, width in sizes:
        images = torch.randn(2, 3, height, width)
        with torch.no_grad():
            assert_close(ours(images), reference(inputs=images).logits)


def test_optical_flow(tmp_path):
    reference, ours = convert("PerceiverForOpticalFlow", tmp_path, train_size=[8, 12], num_self_attention_heads=2)
    frames = torch.randn(2, 2, 3, 8, 12)
    patches = frame_patches(frames, 3).reshape(2, 8, 12, 2, 27).permute(0, 3, 4, 1, 2)  # the reference's layout
    with torch.no_grad():
        # the reference leaves the published flow scale factor (20) to the caller
        assert_close(ours(frames), 20 * reference(inputs=patches).logits)


def test_multimodal_autoencoding_in_chunks_and_subsets(tmp_path):
    reference, ours = convert(
        "PerceiverForMultimodalAutoencoding",
        tmp_path,
        num_frames=2,
        image_size=4,  # the video's Fourier resolution (the published model: 56 for 224x224 frames)
        audio_samples_per_frame=24,
        samples_per_patch=4,
        output_shape=[1, 2, 16, 16],
        output_num_channels=16,
        _label_trainable_num_channels=20,
    )
    inputs = {"audio": torch.randn(2, 48), "image": torch.randn(2, 2, 3, 16, 16), "label": torch.randn(2, 5)}
    reference_inputs = {**inputs, "audio": inputs["audio"][..., None]}
    num_images, num_audio = 2 * 16 * 16, 48 // 4
    chunks = 4
    image_chunk, audio_chunk = num_images // chunks, num_audio // chunks
    full = ours(inputs, chunk_size=100)  # every output, 100 queries at a time
    with torch.no_grad():
        for chunk in range(chunks):
            points = {
                "image": torch.arange(image_chunk * chunk, image_chunk * (chunk + 1)),
                "audio": torch.arange(audio_chunk * chunk, audio_chunk * (chunk + 1)),
            }
            expected = reference(inputs=reference_inputs, subsampled_output_points={**points, "label": None}).logits
            got = ours(inputs, output_indices={**points, "label": torch.tensor([0])})
            assert_close(got["image"], expected["image"])
            assert_close(got["audio"], expected["audio"])
            assert_close(got["label"], expected["label"])
            assert_close(full["image"][:, points["image"]], expected["image"])
        # a random subset of video pixels, unordered
        points = {"image": torch.randperm(num_images)[:37], "audio": torch.randperm(num_audio)[:3]}
        expected = reference(inputs=reference_inputs, subsampled_output_points=points).logits
        got = ours(inputs, output_indices={**points, "label": torch.tensor([0])})
        assert_close(got["image"], expected["image"])
        assert_close(got["audio"], expected["audio"])


CHECKPOINTS = {name: entry.transformers for name, entry in zoo.PUBLISHED.items() if entry.transformers.arguments}


@pytest.mark.parametrize("name", list(CHECKPOINTS))
def test_published_configurations_convert_to_the_zoo_models(name):
    transformers_model = CHECKPOINTS[name]
    config = config_from_transformers(
        {
            **HF_DEFAULTS,
            "model_type": "perceiver",
            "architectures": [transformers_model.architecture],
            **transformers_model.arguments,
        }
    )
    expected = zoo.config(name, dropout=0.1)  # transformers' default attention dropout
    assert dataclasses.replace(config, output=expected.output) == expected


@pytest.mark.slow
@pytest.mark.parametrize(
    "architecture",
    [
        CHECKPOINTS[name].architecture
        for name in ("language-perceiver", "vision-perceiver-fourier", "optical-flow-perceiver", "multimodal-perceiver")
    ],
)
def test_published_size(tmp_path, architecture):
    """Each family at its published size (transformers' own random initialization)."""
    torch.manual_seed(0)
    arguments = next(model.arguments for model in CHECKPOINTS.values() if model.architecture == architecture)
    config = transformers.PerceiverConfig(**arguments, attention_probs_dropout_prob=0.0)
    reference = getattr(transformers, architecture)(config).eval()
    reference.save_pretrained(tmp_path / "hf")
    ours = op.from_pretrained(tmp_path / "hf")
    with torch.no_grad():
        if architecture == "PerceiverForMaskedLM":
            ids, mask = ByteTokenizer().batch(["a" * 2046, "Perceiver IO"])
            assert_close(ours(ids, mask), reference(inputs=ids, attention_mask=mask.long()).logits)
        elif architecture == "PerceiverForImageClassificationFourier":
            images = torch.randn(1, 3, 224, 224)
            assert_close(ours(images), reference(inputs=images).logits)
        elif architecture == "PerceiverForOpticalFlow":
            frames = torch.rand(1, 2, 3, 368, 496) * 2 - 1
            patches = frame_patches(frames, 3).reshape(1, 368, 496, 2, 27).permute(0, 3, 4, 1, 2)
            assert_close(ours(frames), 20 * reference(inputs=patches).logits)
        else:
            inputs = {
                "audio": torch.randn(1, 30720),
                "image": torch.rand(1, 16, 3, 224, 224),
                "label": torch.zeros(1, 700),
            }
            points = {"image": torch.arange(0, 16 * 224 * 224, 97), "audio": torch.arange(0, 1920, 7)}
            expected = reference(
                inputs={**inputs, "audio": inputs["audio"][..., None]}, subsampled_output_points=points
            ).logits
            got = ours(inputs, output_indices={**points, "label": torch.tensor([0])}, chunk_size=2048)
            for name in ("audio", "image", "label"):
                assert_close(got[name], expected[name])


def test_hub_ids_are_downloaded_then_converted(tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    reference, _ = convert("PerceiverForImageClassificationConvProcessing", tmp_path)
    requests = []

    def snapshot_download(repo_id, allow_patterns):
        requests.append((repo_id, allow_patterns))
        return str(tmp_path / "hf")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    ours = op.from_pretrained("deepmind/vision-perceiver-conv")
    assert requests[0][0] == "deepmind/vision-perceiver-conv" and "config.json" in requests[0][1]
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert_close(ours(images), reference(inputs=images).logits)


def test_unknown_and_missing_weights_are_listed(tmp_path):
    from safetensors.torch import load_file, save_file

    convert("PerceiverForImageClassificationFourier", tmp_path)
    path = tmp_path / "hf" / "model.safetensors"
    weights = load_file(path)
    weights["perceiver.extra.weight"] = torch.zeros(2)
    save_file(weights, path)
    with pytest.raises(ValueError, match=r"no omniperceiver counterpart: \['perceiver.extra.weight'\]"):
        op.from_pretrained(tmp_path / "hf")
    del weights["perceiver.extra.weight"], weights["perceiver.embeddings.latents"]
    save_file(weights, path)
    with pytest.raises(ValueError, match=r"missing \['encoder.latents'\]"):
        op.from_pretrained(tmp_path / "hf")


def test_pytorch_model_bin_checkpoints_convert_too(tmp_path):
    reference = transformers.PerceiverForSequenceClassification(transformers.PerceiverConfig(**{**SMALL, **TEXT}))
    randomize(reference)
    reference.eval().save_pretrained(tmp_path / "hf")  # then the older pickle format instead of safetensors
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(reference.state_dict(), tmp_path / "hf" / "pytorch_model.bin")
    ids, mask = text_batch()
    with torch.no_grad():
        assert_close(op.from_pretrained(tmp_path / "hf")(ids, mask), reference(inputs=ids, attention_mask=mask).logits)
