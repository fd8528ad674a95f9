"""Multimodal autoencoding (the Perceiver IO paper's Kinetics-700 autoencoder: video, audio and a class label
read as one input and reconstructed through the latent bottleneck by queries of each modality; the paper
reports each modality's PSNR at several bottleneck sizes, and the label's accuracy when the label input is
masked): on the clean audio-visual digit pairs, the `audiovisual-autoencoding` recipe at two bottleneck sizes;
the test image's and audio's PSNR, and the label's accuracy with the label hidden."""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from omniperceiver.loading import from_pretrained
from omniperceiver.reproduce.table import Reproduction, Table
from omniperceiver.train.jobs import run_jobs
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.run import train
from omniperceiver.train.tasks.autoencoding import Autoencoder, image_patches

RECIPE = "audiovisual-autoencoding"
BOTTLENECKS = ((8, 16), (32, 64))  # (latents, channels)
QUICK = ("training.epochs=2",)


@torch.inference_mode()
def test_scores(recipe_overrides: tuple[str, ...], run_dir: Path) -> tuple[float, float, float, int]:
    """The test image's PSNR (pixels in [0, 1]), the audio's (its real frames, peak = their range), the label's
    accuracy in % with the label hidden, and the values per example the inputs hold, of the run in ``run_dir``."""
    recipe = load_recipe(RECIPE, list(recipe_overrides))
    task = recipe.task
    module = Autoencoder(from_pretrained(run_dir / "model").eval(), task, recipe.training).eval()
    outputs, (image, audio, mask, label) = module.predict(recipe.splits().test.tensors)
    patches = image_patches(image, task.input.patch_size)
    image_psnr = peak_signal_noise_ratio(outputs["image"], patches, data_range=1.0)
    real = audio[mask]
    audio_psnr = peak_signal_noise_ratio(outputs["audio"][mask], real, data_range=float(real.max() - real.min()))
    accuracy = 100 * outputs["label"].argmax(-1).eq(label).float().mean()
    values = image[0].numel() + audio[0].numel() + len(outputs["label"][0])
    return float(image_psnr), float(audio_psnr), float(accuracy), values


def mean_scores() -> tuple[float, float, float]:
    """The scores of :func:`test_scores` for the training split's mean image (per pixel) and mean audio (per frame
    and coefficient, over real frames), and its most frequent label: what a model must beat."""
    splits = load_recipe(RECIPE).splits()
    images, audio, mask, labels = splits.train.tensors
    test_images, test_audio, test_mask, test_labels = splits.test.tensors
    image_psnr = peak_signal_noise_ratio(images.mean(0).expand_as(test_images), test_images, data_range=1.0)
    mean_audio = (audio * mask[..., None]).sum(0) / mask.sum(0).clamp(min=1)[:, None]
    real = test_audio[test_mask]
    audio_psnr = peak_signal_noise_ratio(
        mean_audio.expand_as(test_audio)[test_mask], real, data_range=float(real.max() - real.min())
    )
    accuracy = 100 * test_labels.eq(labels.bincount().argmax()).float().mean()
    return float(image_psnr), float(audio_psnr), float(accuracy)


def _name(latents: int, channels: int) -> str:
    return f"{latents} x {channels}"


def train_one(
    latents: int, channels: int, output_dir: Path, quick: bool
) -> tuple[tuple[int, int], tuple[float, float, float, int]]:
    """Train the recipe with a bottleneck of ``latents`` x ``channels`` into ``output_dir``; its test scores
    (:func:`test_scores`)."""
    heads = f"model.num_self_attention_heads={min(4, channels // 8)}"  # heads of at least 8 channels
    overrides = (f"model.num_latents={latents}", f"model.latent_channels={channels}", heads, *(QUICK if quick else ()))
    folder = output_dir / f"{RECIPE}-{latents}x{channels}"
    train(load_recipe(RECIPE, list(overrides)), folder, overwrite=True, progress=False)
    return (latents, channels), test_scores(overrides, folder)


def multimodal_autoencoding(output_dir: Path, quick: bool, jobs: int) -> Table:
    calls = [functools.partial(train_one, *bottleneck, output_dir, quick) for bottleneck in BOTTLENECKS]
    results = dict(run_jobs(calls, jobs))
    values = next(iter(results.values()))[3]
    ratios = ", ".join(f"{values / (n * c):.0f}x ({_name(n, c)})" for n, c in BOTTLENECKS)
    return Table(
        title="Multimodal autoencoding (audio-visual digits; paper: Kinetics-700)",
        columns=("image PSNR, dB", "audio PSNR, dB", "label accuracy %, label hidden"),
        seed_rows=(),
        rows=(
            ("the training split's mean", mean_scores()),
            *((f"Perceiver IO, {_name(*b)} latents", results[b][:3]) for b in BOTTLENECKS),
        ),
        caption="Ours: test pairs of an MNIST image (28x28) and a spoken digit's MFCC frames (92 x 13), with the"
        f" digit's one-hot label: {values:,} values per example through a bottleneck of latents x channels values"
        f" (compression {ratios}). Each modality is decoded by its own queries (one per 4x4 image patch with its"
        " position's Fourier features, one per audio frame, one learned label query). Training hides half the"
        " labels; the test hides all, so the label is inferred from the image and the audio. Image PSNR over pixels"
        " in [0, 1]; audio PSNR over the real frames, peak = their range.",
    )


MULTIMODAL_AUTOENCODING = Reproduction(
    "multimodal-autoencoding",
    "image, audio and label reconstructed through two bottleneck sizes; the label inferred when hidden",
    multimodal_autoencoding,
)
