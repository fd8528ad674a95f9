"""What the library knows about each published model, in one entry: its configuration (full and reduced size),
how transformers names and configures it, how its raw inputs are prepared, and which task ``predict`` runs and
how ``export`` exports it by default. ``interop``, ``predict`` and ``export`` read these entries; nothing here
reads them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from omniperceiver.core.adapter import InputAdapterConfig, OutputAdapterConfig
from omniperceiver.models.perceiver_io import PerceiverIOConfig

# the encoder of every reduced model: all structural features, a fraction of a second per forward
SMALL_ENCODER = dict(num_latents=16, latent_channels=64, num_self_attends_per_block=2, num_self_attention_heads=4)

# (transformers config.json with its defaults applied, class names (None: numbered), class count) -> the
# arguments of the zoo constructor other than the EncoderConfig fields that interop reads for every model
Translation = Callable[[Mapping[str, Any], "tuple[str, ...] | None", int], dict[str, Any]]


def image_size(value: int | list[int] | tuple[int, ...]) -> tuple[int, ...]:
    """transformers' ``image_size`` (one side, or the sides) as the sides."""
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


@dataclasses.dataclass(frozen=True)
class ImagePreprocessing:
    """An RGB image -> (3, S, S) at the model's size S: a square center crop of ``crop_fraction`` of the short
    side, a bicubic resize, scaling to [0, 1], then (x - mean) / std per channel (transformers'
    PerceiverImageProcessor with its defaults)."""

    crop_fraction: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Kind:
    """A task that models of one structure share: the input and output configs that identify it, the ``task``
    that ``omniperceiver predict`` runs on files, how raw inputs are prepared (``preprocessing``: its parameters
    where it has any, else a description), and ``export``'s defaults: the axes left ``dynamic`` and whether the
    graph decodes a ``subset`` of the outputs (``output_indices``) rather than all of them."""

    task: str
    reads: type[InputAdapterConfig]
    writes: type[OutputAdapterConfig]
    preprocessing: ImagePreprocessing | str
    dynamic: tuple[str, ...] = ("batch",)
    subset: bool = False

    def fits(self, config: PerceiverIOConfig) -> bool:
        """Whether a model of ``config`` has this kind's structure (its input and output adapters)."""
        return type(config.input) is self.reads and type(config.output) is self.writes


@dataclasses.dataclass(frozen=True)
class Transformers:
    """The model in transformers: its class (config.json's ``architectures`` entry), the PerceiverConfig
    ``arguments`` that DeepMind's checkpoint sets (None: no checkpoint is published) and the ``translate``
    of such a config into the zoo constructor's arguments."""

    architecture: str
    arguments: Mapping[str, Any] | None
    translate: Translation


@dataclasses.dataclass(frozen=True)
class Published:
    """One published model: ``build`` makes its configuration from keyword arguments (its published size by
    default, ``reduced`` the arguments of a small one of the same structure), ``transformers`` converts it,
    ``kind`` says how it is fed, predicted and exported."""

    name: str
    build: Callable[..., PerceiverIOConfig]
    reduced: Mapping[str, object]
    transformers: Transformers
    kind: Kind

    def config(self, *, reduced: bool = False, **overrides: object) -> PerceiverIOConfig:
        """Its configuration (``reduced``: the small one), with ``overrides`` of the constructor's arguments."""
        return self.build(**{**(self.reduced if reduced else {}), **overrides})
