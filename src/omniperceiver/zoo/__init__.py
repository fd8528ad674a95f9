"""Named configurations of DeepMind's published Perceiver IO models, at full or reduced size.

``create(name)`` builds a randomly initialized model; ``config(name, reduced=True)`` keeps every structural
feature at a size that runs in a fraction of a second (tests, experiments). Weights come from converting the
published checkpoints (``omniperceiver convert hf``).
"""

from __future__ import annotations

from collections.abc import Callable

from omniperceiver.models.perceiver_io import PerceiverIO, PerceiverIOConfig
from omniperceiver.zoo.flow import optical_flow_perceiver
from omniperceiver.zoo.language import language_perceiver, text_classifier
from omniperceiver.zoo.multimodal import multimodal_perceiver
from omniperceiver.zoo.vision import vision_perceiver_conv, vision_perceiver_fourier, vision_perceiver_learned

MODELS: dict[str, Callable[..., PerceiverIOConfig]] = {
    "language-perceiver": language_perceiver,
    "text-classifier": text_classifier,
    "vision-perceiver-learned": vision_perceiver_learned,
    "vision-perceiver-fourier": vision_perceiver_fourier,
    "vision-perceiver-conv": vision_perceiver_conv,
    "optical-flow-perceiver": optical_flow_perceiver,
    "multimodal-perceiver": multimodal_perceiver,
}

_SMALL_ENCODER = dict(num_latents=16, latent_channels=64, num_self_attends_per_block=2, num_self_attention_heads=4)
_SMALL_TEXT = dict(
    _SMALL_ENCODER,
    channels=32,
    max_length=48,
    num_cross_attention_heads=4,
    cross_attention_qk_channels=32,
    cross_attention_v_channels=64,
    self_attention_qk_channels=32,
    self_attention_v_channels=64,
)
REDUCED: dict[str, dict[str, object]] = {
    "language-perceiver": _SMALL_TEXT,
    "text-classifier": dict(_SMALL_TEXT, num_classes=3),
    "vision-perceiver-learned": dict(_SMALL_ENCODER, num_classes=10, image_shape=(16, 16), num_blocks=2),
    "vision-perceiver-fourier": dict(_SMALL_ENCODER, num_classes=10, image_shape=(16, 16), num_blocks=2),
    "vision-perceiver-conv": dict(_SMALL_ENCODER, num_classes=10, image_shape=(32, 32), num_blocks=2),
    "optical-flow-perceiver": dict(_SMALL_ENCODER, train_size=(12, 16)),
    "multimodal-perceiver": dict(
        _SMALL_ENCODER,
        num_frames=2,
        image_size=16,
        audio_samples_per_frame=32,
        samples_per_patch=8,
        num_classes=10,
        output_channels=32,
        label_query_channels=48,
    ),
}


def config(name: str, *, reduced: bool = False, **overrides: object) -> PerceiverIOConfig:
    """The configuration of a published model (``reduced``: a small one of the same structure); keyword
    ``overrides`` replace the constructor's arguments (modality sizes or EncoderConfig fields)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name](**{**(REDUCED[name] if reduced else {}), **overrides})


def create(name: str, *, reduced: bool = False, **overrides: object) -> PerceiverIO:
    """A randomly initialized model of a published configuration (see :func:`config`)."""
    return config(name, reduced=reduced, **overrides).build()


__all__ = [
    "MODELS",
    "REDUCED",
    "config",
    "create",
    "language_perceiver",
    "multimodal_perceiver",
    "optical_flow_perceiver",
    "text_classifier",
    "vision_perceiver_conv",
    "vision_perceiver_fourier",
    "vision_perceiver_learned",
]
