"""Query providers: where the decoder's output queries (B, O, E) come from.

A provider returns the queries for all O outputs, or for a subset of flat output ``indices`` (chunked and
subsampled decoding), so that the decoder never needs more than the requested rows.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from omniperceiver.core.config import Config, require_positive
from omniperceiver.core.position import PositionConfig


class QueryProvider(nn.Module):
    """Base: ``forward(inputs, indices)`` -> (B, O, E) with E = ``num_channels``.

    ``inputs`` are the adapted encoder inputs (B, M, C): they give the batch size and device, and are the
    queries themselves for :class:`InputQueries`.
    """

    num_channels: int

    def num_queries(self, inputs: Tensor) -> int:
        raise NotImplementedError

    def flat_indices(self, indices: dict[str, Tensor], *, device: torch.device) -> Tensor:
        """Per-modality output indices -> flat indices; only multimodal providers have modalities."""
        raise ValueError(f"{type(self).__name__} has no modalities: give output indices as one 1-D tensor")


@dataclasses.dataclass(frozen=True)
class QueryConfig(Config):
    """Base of the query provider configs."""

    def build(self) -> QueryProvider:
        raise NotImplementedError


class LearnedQueries(QueryProvider):
    """O trainable queries (O, E), initialized truncated normal std 0.02, shared by every example."""

    def __init__(self, config: LearnedQueryConfig) -> None:
        super().__init__()
        self.num_channels = config.num_channels
        self.queries = nn.Parameter(torch.empty(config.num_queries, config.num_channels))
        nn.init.trunc_normal_(self.queries, std=0.02)

    def num_queries(self, inputs: Tensor) -> int:
        return self.queries.shape[0]

    def forward(self, inputs: Tensor, indices: Tensor | None = None) -> Tensor:
        queries = self.queries if indices is None else self.queries[indices]
        return queries.expand(inputs.shape[0], -1, -1)


@dataclasses.dataclass(frozen=True)
class LearnedQueryConfig(QueryConfig):
    num_queries: int
    num_channels: int

    def __post_init__(self) -> None:
        require_positive(num_queries=self.num_queries, num_channels=self.num_channels)

    def build(self) -> LearnedQueries:
        return LearnedQueries(self)


class PositionQueries(QueryProvider):
    """One query per position of an output index shape: the position encoding's features (dense outputs)."""

    def __init__(self, config: PositionQueryConfig) -> None:
        super().__init__()
        self.index_shape = config.index_shape
        self.encoding = config.position.build(config.index_shape)
        self.num_channels = self.encoding.num_channels

    def num_queries(self, inputs: Tensor) -> int:
        return math.prod(self.index_shape)

    def forward(self, inputs: Tensor, indices: Tensor | None = None) -> Tensor:
        queries = self.encoding(self.index_shape, indices, device=inputs.device).to(inputs.dtype)
        return queries.expand(inputs.shape[0], -1, -1)


@dataclasses.dataclass(frozen=True)
class PositionQueryConfig(QueryConfig):
    index_shape: tuple[int, ...]
    position: PositionConfig

    def __post_init__(self) -> None:
        require_positive(**{f"index_shape[{i}]": n for i, n in enumerate(self.index_shape)})

    @property
    def num_queries(self) -> int:
        return math.prod(self.index_shape)

    @property
    def num_channels(self) -> int:
        return self.position.num_channels(len(self.index_shape))

    def build(self) -> PositionQueries:
        return PositionQueries(self)


class InputQueries(QueryProvider):
    """The adapted inputs (B, M, C) are the queries, one output per input element (e.g. optical flow)."""

    def __init__(self, config: InputQueryConfig) -> None:
        super().__init__()
        self.num_channels = config.num_channels

    def num_queries(self, inputs: Tensor) -> int:
        return inputs.shape[1]

    def forward(self, inputs: Tensor, indices: Tensor | None = None) -> Tensor:
        return inputs if indices is None else inputs[:, indices]


@dataclasses.dataclass(frozen=True)
class InputQueryConfig(QueryConfig):
    num_channels: int

    def __post_init__(self) -> None:
        require_positive(num_channels=self.num_channels)

    def build(self) -> InputQueries:
        return InputQueries(self)
