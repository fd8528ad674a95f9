"""Multimodal outputs: per-modality queries decoded together, then split back into one output per modality.

Queries of every modality are padded to a common width with a trainable vector per modality and
concatenated in the configured order; a flat output index therefore names (modality, index in modality).
Any subset of outputs, from any modalities, can be decoded at once or in chunks.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from omniperceiver.adapters.multimodal import ModalityPadding, check_modality_names
from omniperceiver.core.adapter import InputAdapter, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.config import Config, require_positive
from omniperceiver.core.linear import Linear
from omniperceiver.core.position import check_indices
from omniperceiver.core.queries import LearnedQueryConfig, PositionQueryConfig, QueryConfig, QueryProvider


@dataclasses.dataclass(frozen=True)
class ModalityQueryConfig(Config):
    """The queries of one modality: learned or position queries (a fixed number of outputs)."""

    name: str
    queries: LearnedQueryConfig | PositionQueryConfig


class MultimodalQueries(QueryProvider):
    """(B, O, E): every modality's queries padded to E = max E_i + ``min_padding``, concatenated."""

    def __init__(self, config: MultimodalQueryConfig) -> None:
        super().__init__()
        self.config = c = config
        self.providers = nn.ModuleDict({m.name: m.queries.build() for m in c.modalities})
        self.padding = ModalityPadding({m.name: m.queries.num_channels for m in c.modalities}, c.min_padding)
        self.num_channels = self.padding.num_channels

    def num_queries(self, inputs: Tensor | None = None) -> int:
        return sum(self.config.sizes.values())

    def flat_indices(self, indices: dict[str, Tensor], *, device: torch.device) -> Tensor:
        """{modality: indices within it} -> flat indices, modalities in the configured order."""
        sizes = self.config.sizes
        unknown = sorted(set(indices) - set(sizes))
        if unknown:
            raise ValueError(f"output indices for unknown modalities {unknown}; modalities are {list(sizes)}")
        flat, offset = [], 0
        for name, size in sizes.items():
            if name in indices:
                check_indices(indices[name], size, f"the number of {name} outputs")
                flat.append(indices[name].to(device) + offset)
            offset += size
        return torch.cat(flat) if flat else torch.zeros(0, dtype=torch.long, device=device)

    def forward(self, inputs: Tensor, indices: Tensor | None = None) -> Tensor:
        if indices is None:
            return torch.cat([self.padding.pad(name, self.providers[name](inputs)) for name in self.providers], dim=1)
        if torch.compiler.is_compiling():  # no sizes that depend on values: each modality's queries at every index
            return self.traceable(inputs, indices)
        queries = inputs.new_empty(inputs.shape[0], indices.shape[0], self.num_channels)
        for name, (selected, local) in split_by_modality(self.config.sizes, indices).items():
            queries[:, selected] = self.padding.pad(name, self.providers[name](inputs, local))
        return queries

    def traceable(self, inputs: Tensor, indices: Tensor) -> Tensor:
        """The queries (B, O', E) at ``indices`` (O',): every modality's at every index (clamped into it), each
        kept where the index is its own."""
        queries, offset = None, 0
        for name, size in self.config.sizes.items():
            own = ((indices >= offset) & (indices < offset + size))[None, :, None]
            mine = self.padding.pad(name, self.providers[name](inputs, (indices - offset).clamp(0, size - 1)))
            queries = mine if queries is None else torch.where(own, mine, queries)
            offset += size
        return queries


@dataclasses.dataclass(frozen=True)
class MultimodalQueryConfig(QueryConfig):
    modalities: tuple[ModalityQueryConfig, ...]
    min_padding: int = 2

    def __post_init__(self) -> None:
        check_modality_names([m.name for m in self.modalities])
        require_positive(min_padding=self.min_padding)

    @property
    def sizes(self) -> dict[str, int]:
        """Outputs per modality, in order."""
        return {m.name: m.queries.num_queries for m in self.modalities}

    @property
    def num_channels(self) -> int:
        return max(m.queries.num_channels for m in self.modalities) + self.min_padding

    def build(self) -> MultimodalQueries:
        return MultimodalQueries(self)


def split_by_modality(sizes: dict[str, int], indices: Tensor | None) -> dict[str, tuple[Tensor | slice, Tensor | None]]:
    """Flat indices (O,) over modalities of ``sizes`` (in order) -> per modality present: (positions in
    ``indices``, indices within the modality); None (every output, in order) -> per modality: (its slice of
    the outputs, None)."""
    parts, offset = {}, 0
    for name, size in sizes.items():
        if indices is None:
            parts[name] = (slice(offset, offset + size), None)
            offset += size
            continue
        selected = ((indices >= offset) & (indices < offset + size)).nonzero()[:, 0]
        if selected.numel():
            parts[name] = (selected, indices[selected] - offset)
        offset += size
    return parts


@dataclasses.dataclass(frozen=True)
class ModalityOutputConfig(Config):
    """One modality's head: ``num_outputs`` decoded rows, each projected to ``channels``; ``flatten``
    joins the rows' channels (audio patches -> samples, one label query -> logits)."""

    name: str
    num_outputs: int
    channels: int
    flatten: bool = False

    def __post_init__(self) -> None:
        require_positive(num_outputs=self.num_outputs, channels=self.channels)


class MultimodalOutput(OutputAdapter):
    """Decoder outputs (B, O, K) at flat indices -> {modality: (B, O_i, K_i) or flattened (B, O_i·K_i)}, rows
    in the order they were requested; modalities with no requested rows are left out."""

    def __init__(self, config: MultimodalOutputConfig) -> None:
        super().__init__()
        self.config = config
        self.heads = nn.ModuleDict({m.name: Linear(config.in_channels, m.channels) for m in config.modalities})

    def forward(self, outputs: Tensor, indices: Tensor | dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """``indices``: flat (O,), or per modality as :meth:`MultimodalQueries.flat_indices` lays them out
        (each modality's rows in one run: no search by value, so it traces with free lengths)."""
        sizes = {m.name: m.num_outputs for m in self.config.modalities}
        if isinstance(indices, dict):
            parts, offset = {}, 0
            for name in sizes:
                if name in indices:
                    parts[name] = slice(offset, offset + indices[name].shape[0])
                    offset += indices[name].shape[0]
            rows = offset
        else:
            parts = {name: selected for name, (selected, _) in split_by_modality(sizes, indices).items()}
            rows = sum(sizes.values()) if indices is None else indices.shape[0]
        if outputs.dim() != 3 or outputs.shape[1] != rows:
            raise ValueError(f"expected decoder outputs (B, {rows}, K), got {tuple(outputs.shape)}")
        flatten = {m.name: m.flatten for m in self.config.modalities}
        result = {}
        for name, selected in parts.items():
            rows = self.heads[name](outputs[:, selected])
            result[name] = rows.flatten(1) if flatten[name] else rows
        return result


@dataclasses.dataclass(frozen=True)
class MultimodalOutputConfig(OutputAdapterConfig):
    """Heads over K = ``in_channels`` decoder channels, one per modality in the queries' order."""

    in_channels: int
    modalities: tuple[ModalityOutputConfig, ...]

    def __post_init__(self) -> None:
        require_positive(in_channels=self.in_channels)

    def build(self, input_adapter: InputAdapter) -> MultimodalOutput:
        return MultimodalOutput(self)
