"""What export traces: a module over plain tensors, its named inputs and outputs, the named axes of those
inputs that may be left free, and how to make example inputs at any sizes of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import Tensor, nn

AXES = ("batch", "length")  # the axes an export may be asked to leave free (a subset's numbers of outputs always are)
CHECKED_OUTPUTS = 8192  # the most outputs a subset graph is checked at


@dataclasses.dataclass(frozen=True)
class Axis:
    """A named axis: its size where it is fixed, the size a free one is traced at, the two sizes a free one is
    checked at, and the bounds a free one accepts."""

    name: str
    fixed: int
    traced: int
    checked: tuple[int, int]
    low: int = 1
    high: int = 2**20


def batch_axis() -> Axis:
    return Axis("batch", fixed=1, traced=2, checked=(1, 3), high=4096)


def outputs_axis(count: int, name: str = "outputs") -> Axis:
    """The number O' of outputs a subset decodes, of ``count``: checked at 1 and at all of them, or at
    :data:`CHECKED_OUTPUTS` where there are more (the multimodal autoencoder's 802,816 pixels)."""
    most = min(count, CHECKED_OUTPUTS)
    return Axis(name, count, max(1, most // 2), (most, 1), high=count)


def length_axis(configured: int, longest: int | None) -> Axis:
    """A length of ``configured`` size, checked there and at half of it; at most ``longest`` (None: any)."""
    return Axis("length", configured, configured, (configured, max(1, configured // 2)), high=longest or 2**20)


@dataclasses.dataclass(frozen=True)
class Graph:
    """``module(*inputs)`` -> a tuple of outputs, each named; ``axes`` names, per input, which of its axes are
    which of ``dims``; ``example(sizes, generator)`` makes inputs with the given size of each axis."""

    name: str
    module: nn.Module
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    axes: dict[str, dict[int, str]]
    dims: tuple[Axis, ...]
    example: Callable[[dict[str, int], torch.Generator], tuple[Tensor, ...]]

    def axis(self, name: str) -> Axis | None:
        return next((axis for axis in self.dims if axis.name == name), None)
