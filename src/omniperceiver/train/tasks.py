"""Which input adapter each dataset needs: one Perceiver IO classifier family, only the adapter changes."""

from __future__ import annotations

from collections.abc import Callable

from omniperceiver import data
from omniperceiver.adapters.array import ArrayInputConfig
from omniperceiver.adapters.text import TextInputConfig
from omniperceiver.core.adapter import InputAdapterConfig
from omniperceiver.core.position import FourierPositionConfig
from omniperceiver.data.splits import Splits
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.train.recipe import ModelSize


def _images(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    _, h, w, c = splits.train.tensors[0].shape
    return ArrayInputConfig((h, w), c, FourierPositionConfig(num_bands=size.fourier_bands))


def _sequences(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    _, t, c = splits.train.tensors[0].shape
    return ArrayInputConfig((t,), c, FourierPositionConfig(num_bands=size.fourier_bands), project_channels=32)


def _points(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    return ArrayInputConfig((splits.train.tensors[0].shape[1],), 3, None, project_channels=32)


def _text(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    return TextInputConfig(channels=size.latent_channels, max_length=splits.train.tensors[0].shape[1])


# dataset -> (loader, input adapter); batches are (inputs, [mask,] labels)
TASKS: dict[str, tuple[Callable[[], Splits], Callable[[Splits, ModelSize], InputAdapterConfig]]] = {
    "digits": (data.digits, _images),
    "mnist": (data.mnist, _images),
    "spoken-digits": (data.spoken_digits, _sequences),
    "shapes": (data.shapes, _points),
    "fortunes": (data.fortunes, _text),
}


def model_config(splits: Splits, dataset: str, size: ModelSize) -> PerceiverIOConfig:
    adapter = TASKS[dataset][1](splits, size)
    return PerceiverIOConfig.classifier(
        adapter,
        len(splits.classes),
        labels=splits.classes,
        num_latents=size.num_latents,
        latent_channels=size.latent_channels,
        num_cross_attention_heads=size.num_cross_attention_heads,
        cross_attention_widening_factor=size.widening_factor,
        num_blocks=size.num_blocks,
        num_self_attends_per_block=size.num_self_attends_per_block,
        num_self_attention_heads=size.num_self_attention_heads,
        self_attention_widening_factor=size.widening_factor,
        dropout=size.dropout,
    )
