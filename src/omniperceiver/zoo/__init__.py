"""DeepMind's published Perceiver IO models: one :class:`Published` entry each in :data:`PUBLISHED`.

``create(name)`` builds a randomly initialized model; ``config(name, reduced=True)`` keeps every structural
feature at a size that runs in a fraction of a second (tests, experiments). Weights come from converting the
published checkpoints (``omniperceiver convert hf``); ``kind_of(config)`` says how a model of a published
structure is fed, predicted and exported.
"""

from __future__ import annotations

from omniperceiver.models.perceiver_io import PerceiverIO, PerceiverIOConfig
from omniperceiver.zoo.flow import OPTICAL_FLOW, optical_flow_perceiver
from omniperceiver.zoo.language import LANGUAGE, TEXT_CLASSIFIER, language_perceiver, text_classifier
from omniperceiver.zoo.multimodal import MULTIMODAL, multimodal_perceiver
from omniperceiver.zoo.published import ImagePreprocessing, Kind, Published, Transformers
from omniperceiver.zoo.vision import (
    VISION_CONV,
    VISION_FOURIER,
    VISION_LEARNED,
    vision_perceiver_conv,
    vision_perceiver_fourier,
    vision_perceiver_learned,
)

PUBLISHED: dict[str, Published] = {
    entry.name: entry
    for entry in (LANGUAGE, TEXT_CLASSIFIER, VISION_LEARNED, VISION_FOURIER, VISION_CONV, OPTICAL_FLOW, MULTIMODAL)
}


def published(name: str) -> Published:
    """The entry of a published model, or a ValueError listing the known names."""
    if name not in PUBLISHED:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(PUBLISHED)}")
    return PUBLISHED[name]


def config(name: str, *, reduced: bool = False, **overrides: object) -> PerceiverIOConfig:
    """The configuration of a published model (``reduced``: a small one of the same structure); keyword
    ``overrides`` replace the constructor's arguments (modality sizes or EncoderConfig fields)."""
    return published(name).config(reduced=reduced, **overrides)


def create(name: str, *, reduced: bool = False, **overrides: object) -> PerceiverIO:
    """A randomly initialized model of a published configuration (see :func:`config`)."""
    return config(name, reduced=reduced, **overrides).build()


def kind_of(config: object) -> Kind | None:
    """The kind of the published models whose structure ``config`` has (input and output adapters), if any."""
    if not isinstance(config, PerceiverIOConfig):
        return None
    return next((entry.kind for entry in PUBLISHED.values() if entry.kind.fits(config)), None)


__all__ = [
    "PUBLISHED",
    "ImagePreprocessing",
    "Kind",
    "Published",
    "Transformers",
    "config",
    "create",
    "kind_of",
    "language_perceiver",
    "multimodal_perceiver",
    "optical_flow_perceiver",
    "published",
    "text_classifier",
    "vision_perceiver_conv",
    "vision_perceiver_fourier",
    "vision_perceiver_learned",
]
