"""The two adapter protocols that connect a modality to the Perceiver core.

An input adapter turns a modality tensor into inputs (B, M, C) and an optional padding mask (B, M); an
output adapter turns decoder outputs (B, O, K) into the task's output. A new modality is one file that
defines an adapter and its config.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import Tensor, nn

from omniperceiver.core.config import Config


class InputAdapter(nn.Module):
    """Base: ``forward(x, mask)`` -> (inputs (B, M, C), mask (B, M) or None), C = ``num_channels``."""

    config: InputAdapterConfig

    @property
    def num_channels(self) -> int:
        return self.config.num_channels

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class InputAdapterConfig(Config):
    #: whether axis 1 of the input (and of its mask) is a length that may differ from call to call
    variable_length: ClassVar[bool] = False

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor | dict[str, Tensor], Tensor | None]:
        """A random input of ``batch`` examples at the configured size (``length`` along axis 1 where
        ``variable_length``), and an all-real padding mask for adapters that read padded inputs (else None):
        what export traces with and checks against."""
        raise NotImplementedError(f"{type(self).__name__} describes no example input")

    @property
    def num_channels(self) -> int:
        """C, the channels of every input element the adapter produces."""
        raise NotImplementedError

    def build(self) -> InputAdapter:
        raise NotImplementedError


class OutputAdapter(nn.Module):
    """Base: decoder outputs (B, O, K) -> the task's output.

    ``indices`` (O,) are the flat output indices the rows were decoded for (None: all outputs, in order), so
    that an adapter can tell a full decode, whose rows it may reshape, from a subset.
    """

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor | dict[str, Tensor]:
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class OutputAdapterConfig(Config):
    def build(self, input_adapter: InputAdapter) -> OutputAdapter:
        """Make the adapter; ``input_adapter`` is the model's, for outputs that share its weights (tied
        token embeddings)."""
        raise NotImplementedError
