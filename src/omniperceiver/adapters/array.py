"""Any array (B, *index_shape, C_in) as Perceiver inputs: flattened elements with position features."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, InputAdapterConfig
from omniperceiver.core.attention import check_mask
from omniperceiver.core.config import require, require_optional_positive, require_positive
from omniperceiver.core.linear import Linear
from omniperceiver.core.position import PositionConfig


class ArrayInputAdapter(InputAdapter):
    """(B, *index_shape, C_in) -> (B, M, P + F): elements in row-major order, each with its F position
    features concatenated, so position travels with the element (the Perceiver is otherwise permutation
    invariant). P = C_in, or ``project_channels`` when the values first go through a Linear(C_in -> P)
    (which keeps a few value channels from being drowned by many position channels). A mask
    (B, *index_shape) of real elements flattens to (B, M).

    Fourier and coordinate positions are computed for the index shape that arrives, so the same model reads
    other sizes of the same rank; learned positions need the configured shape.
    """

    def __init__(self, config: ArrayInputConfig) -> None:
        super().__init__()
        self.config = config
        self.position = config.position.build(config.index_shape) if config.position is not None else None
        self.projection = (
            Linear(config.in_channels, config.project_channels) if config.project_channels is not None else None
        )

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        c = self.config
        rank = len(c.index_shape)
        if x.dim() != rank + 2 or x.shape[-1] != c.in_channels:
            raise ValueError(
                f"expected an array of shape (B, {', '.join(f'n{i}' for i in range(rank))}, C={c.in_channels}) "
                f"for index shape {c.index_shape}, got {tuple(x.shape)}"
            )
        index_shape = tuple(x.shape[1:-1])
        inputs = x.flatten(1, -2)
        if self.projection is not None:
            inputs = self.projection(inputs)
        if self.position is not None:
            features = self.position.features(index_shape, device=x.device, dtype=x.dtype)
            inputs = torch.cat([inputs, features.expand(x.shape[0], -1, -1)], dim=-1)
        if mask is not None:
            check_mask(mask, "(B, *index_shape)", tuple(x.shape[:-1]))
            mask = mask.flatten(1)
        return inputs, mask


@dataclasses.dataclass(frozen=True)
class ArrayInputConfig(InputAdapterConfig):
    """Arrays with ``index_shape`` (e.g. (H, W) for images, (T,) for series) of ``in_channels`` values per
    element; ``position`` picks the position features (None: none, the input is a set);
    ``project_channels`` adds a learned Linear(in_channels -> project_channels) on the values."""

    index_shape: tuple[int, ...]
    in_channels: int
    position: PositionConfig | None
    project_channels: int | None = None

    def __post_init__(self) -> None:
        require(
            len(self.index_shape) > 0 and math.prod(self.index_shape) > 0,
            "index_shape",
            self.index_shape,
            "one or more positive sizes",
        )
        require_positive(in_channels=self.in_channels)
        require_optional_positive(project_channels=self.project_channels)

    @property
    def num_channels(self) -> int:
        positions = self.position.num_channels(len(self.index_shape)) if self.position is not None else 0
        return (self.project_channels or self.in_channels) + positions

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        return torch.randn(batch, *self.index_shape, self.in_channels, generator=generator), None

    def build(self) -> ArrayInputAdapter:
        return ArrayInputAdapter(self)


class ArrayBackedInputAdapter(InputAdapter):
    """Base of the modality adapters that rearrange their tensor into an array (B, *index, C_in) and hand it
    to an :class:`ArrayInputAdapter` (``self.array``) built from ``config.array``."""

    def __init__(self, config: ArrayBackedInputConfig) -> None:
        super().__init__()
        self.config = config
        self.array = config.array.build()


@dataclasses.dataclass(frozen=True)
class ArrayBackedInputConfig(InputAdapterConfig):
    """Base of their configs: ``array`` describes the array adapter, whose channels the inputs have."""

    @property
    def array(self) -> ArrayInputConfig:
        raise NotImplementedError

    @property
    def num_channels(self) -> int:
        return self.array.num_channels
