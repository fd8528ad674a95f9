"""The ImageNet Perceivers: learned positions, Fourier features on pixels, and a conv stem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omniperceiver.adapters.image import Conv1x1StemConfig, ConvStemConfig, ImageInputConfig
from omniperceiver.core.position import FourierPositionConfig, LearnedPositionConfig, ProjectedPositionConfig
from omniperceiver.media.image import IMAGENET_MEAN, IMAGENET_STD
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.classification import ClassificationOutputConfig
from omniperceiver.zoo.published import SMALL_ENCODER, ImagePreprocessing, Kind, Published, Transformers, image_size

VISION_ENCODER = dict(
    num_latents=512,
    latent_channels=1024,
    num_blocks=8,
    num_self_attends_per_block=6,
    num_self_attention_heads=8,
    num_cross_attention_heads=1,
)


def _classifier(
    image: ImageInputConfig, num_classes: int, labels: tuple[str, ...] | None, encoder: dict
) -> PerceiverIOConfig:
    return PerceiverIOConfig.classifier(
        image, num_classes, decoder_query_residual=True, labels=labels, **{**VISION_ENCODER, **encoder}
    )


def vision_perceiver_learned(
    *,
    num_classes: int = 1000,
    labels: tuple[str, ...] | None = None,
    image_shape: tuple[int, int] = (224, 224),
    **encoder: object,
) -> PerceiverIOConfig:
    """deepmind/vision-perceiver-learned: a 1x1 conv to 256 channels per pixel, concatenated with learned
    positions (256, through a Linear(256 -> 256)); 50,176 inputs of 512 channels at 224x224."""
    position = ProjectedPositionConfig(position=LearnedPositionConfig(channels=256), channels=256)
    image = ImageInputConfig(image_shape, stem=Conv1x1StemConfig(channels=256), position=position)
    return _classifier(image, num_classes, labels, encoder)


def vision_perceiver_fourier(
    *,
    num_classes: int = 1000,
    labels: tuple[str, ...] | None = None,
    image_shape: tuple[int, int] = (224, 224),
    **encoder: object,
) -> PerceiverIOConfig:
    """deepmind/vision-perceiver-fourier: raw RGB pixels with 64-band 2-D Fourier features (261 channels)."""
    position = FourierPositionConfig(num_bands=64, max_resolution=(224, 224))
    return _classifier(ImageInputConfig(image_shape, position=position), num_classes, labels, encoder)


def vision_perceiver_conv(
    *,
    num_classes: int = 1000,
    labels: tuple[str, ...] | None = None,
    image_shape: tuple[int, int] = (224, 224),
    **encoder: object,
) -> PerceiverIOConfig:
    """deepmind/vision-perceiver-conv: conv + max-pool stem (224 -> 55x55 x 64) with Fourier features
    (322 channels)."""
    position = FourierPositionConfig(num_bands=64, max_resolution=(56, 56))
    image = ImageInputConfig(image_shape, stem=ConvStemConfig(channels=64), position=position)
    return _classifier(image, num_classes, labels, encoder)


def _classes(hf: Mapping[str, Any], labels: tuple[str, ...] | None, num_classes: int) -> dict[str, Any]:
    """transformers' image_size is unused: these models read any size and were trained at 224."""
    return dict(num_classes=num_classes, labels=labels)


def _learned(hf: Mapping[str, Any], labels: tuple[str, ...] | None, num_classes: int) -> dict[str, Any]:
    """transformers' image_size sizes the learned positions."""
    return dict(_classes(hf, labels, num_classes), image_shape=image_size(hf["image_size"]))


IMAGE_CLASSIFICATION = Kind(
    "image classification",
    ImageInputConfig,
    ClassificationOutputConfig,
    ImagePreprocessing(crop_fraction=224 / 256, mean=IMAGENET_MEAN, std=IMAGENET_STD),
)
# transformers' PerceiverConfig arguments of DeepMind's ImageNet checkpoints
_ARGUMENTS = dict(
    num_latents=512,
    d_latents=1024,
    num_blocks=8,
    num_self_attends_per_block=6,
    num_self_attention_heads=8,
    num_cross_attention_heads=1,
    num_labels=1000,
)
_SMALL = dict(SMALL_ENCODER, num_classes=10, image_shape=(16, 16), num_blocks=2)
VISION_LEARNED = Published(
    "vision-perceiver-learned",
    vision_perceiver_learned,
    _SMALL,
    Transformers("PerceiverForImageClassificationLearned", dict(_ARGUMENTS, d_model=512, image_size=224), _learned),
    IMAGE_CLASSIFICATION,
)
VISION_FOURIER = Published(
    "vision-perceiver-fourier",
    vision_perceiver_fourier,
    _SMALL,
    Transformers("PerceiverForImageClassificationFourier", dict(_ARGUMENTS, d_model=261), _classes),
    IMAGE_CLASSIFICATION,
)
VISION_CONV = Published(
    "vision-perceiver-conv",
    vision_perceiver_conv,
    dict(_SMALL, image_shape=(32, 32)),
    Transformers("PerceiverForImageClassificationConvProcessing", dict(_ARGUMENTS, d_model=322), _classes),
    IMAGE_CLASSIFICATION,
)
