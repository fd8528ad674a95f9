"""Position encodings for inputs and queries laid out on an index shape (n1, ..., nd).

An encoding maps the flattened positions of an index shape to features (M, F), M = n1·…·nd, in row-major
(ij) order, or to the features of a subset of flat ``indices`` only (subsampled decoding, chunking). Each
kind has a config (:class:`PositionConfig`) whose ``build(index_shape)`` makes the module.

Rotary embeddings act on attention queries and keys instead: :class:`RotaryPositionEmbedding`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from omniperceiver.core.config import Config, require, require_positive
from omniperceiver.core.linear import Linear

Device = torch.device | str | None


def check_indices(indices: Tensor, size: int, what: str) -> None:
    """Raise ValueError unless ``indices`` is a 1-D integer tensor of flat positions in [0, size)."""
    if indices.dim() != 1 or indices.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"indices must be a 1-D integer tensor, got {indices.dtype} of shape {tuple(indices.shape)}")
    if indices.numel() and not torch.compiler.is_compiling() and (int(indices.min()) < 0 or int(indices.max()) >= size):
        raise ValueError(f"indices must lie in [0, {size}), {what}")


def _flat_indices(index_shape: Sequence[int], indices: Tensor | None, device: Device) -> Tensor:
    size = math.prod(index_shape)
    if indices is None:
        return torch.arange(size, device=device)
    check_indices(indices, size, f"the positions of index shape {tuple(index_shape)}")
    return indices.to(device)


def grid_coordinates(
    index_shape: Sequence[int],
    indices: Tensor | None = None,
    *,
    normalize: bool = True,
    endpoint: bool = True,
    device: Device = None,
) -> Tensor:
    """Coordinates (M, d) of the flat positions of ``index_shape``: ``linspace(-1, 1, n_i)`` per dimension
    when ``normalize`` (the reference's layout), ``-1 + 2·i / n_i`` (no endpoint, the grid of the reference's
    subsampled decoding) when ``endpoint`` is off, integer indices when ``normalize`` is off."""
    flat = _flat_indices(index_shape, indices, device)
    columns = []
    for dim, n in enumerate(index_shape):
        stride = math.prod(index_shape[dim + 1 :])
        index = torch.div(flat, stride, rounding_mode="floor") % n
        if not normalize:
            columns.append(index.float())
        elif endpoint:
            columns.append(torch.linspace(-1.0, 1.0, n, device=device)[index])
        else:
            columns.append(-1 + 2 * index / n)
    return torch.stack(columns, dim=-1)


class PositionEncoding(nn.Module):
    """Base: ``forward(index_shape, indices)`` returns (M, F) float32 features, F = ``num_channels``."""

    def __init__(self, config: PositionConfig, index_shape: Sequence[int]) -> None:
        super().__init__()
        self.config = config
        self.index_shape = tuple(index_shape)
        self._cache: tuple[tuple, Tensor] | None = None
        require(
            len(self.index_shape) > 0 and all(isinstance(n, int) and n > 0 for n in self.index_shape),
            "index_shape",
            index_shape,
            "one or more positive integers",
        )

    @property
    def num_channels(self) -> int:
        return self.config.num_channels(len(self.index_shape))

    def features(
        self, index_shape: Sequence[int], *, device: Device = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Features (M, F) of every position of ``index_shape`` as ``dtype``.

        Encodings without parameters compute them once per (shape, device, dtype) and reuse them: at large
        inputs the sines and cosines cost a noticeable share of a forward pass. Learned ones are never cached.
        """
        if next(self.parameters(), None) is not None or torch.compiler.is_compiling():
            return self(index_shape, device=device).to(dtype)
        key = (tuple(index_shape), torch.device(device) if device is not None else None, dtype)
        if self._cache is None or self._cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():  # a plain tensor, usable with autograd later
                self._cache = (key, self(index_shape, device=device).to(dtype))
        return self._cache[1]

    def _check_rank(self, index_shape: Sequence[int]) -> tuple[int, ...]:
        if len(index_shape) != len(self.index_shape):
            raise ValueError(
                f"{type(self).__name__} was built for {len(self.index_shape)}-D index shapes "
                f"{self.index_shape}, got {tuple(index_shape)}"
            )
        return tuple(index_shape)


@dataclasses.dataclass(frozen=True)
class PositionConfig(Config):
    """Base of the position encoding configs."""

    def num_channels(self, rank: int) -> int:
        """Features per element for an index shape of ``rank`` dimensions."""
        raise NotImplementedError

    def build(self, index_shape: Sequence[int]) -> PositionEncoding:
        raise NotImplementedError


def fourier_features(
    coordinates: Tensor, num_bands: int, max_resolution: Sequence[int], *, concat_pos: bool, sine_only: bool
) -> Tensor:
    """Fourier features of coordinates (M, d) in [-1, 1], in the reference layout:
    [coordinates (d) | sin(pi·f·x) (d·K) | cos(pi·f·x) (d·K)], frequencies ``linspace(1, res_i / 2, K)``
    per dimension, dimension-major."""
    bands = torch.stack([torch.linspace(1.0, res / 2, num_bands, device=coordinates.device) for res in max_resolution])
    scaled = (coordinates[:, :, None] * bands[None]).flatten(1)  # (M, d·K)
    features = (
        [torch.sin(math.pi * scaled)] if sine_only else [torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)]
    )
    if concat_pos:
        features.insert(0, coordinates)
    return torch.cat(features, dim=-1)


class FourierPositionEncoding(PositionEncoding):
    """N-dimensional Fourier features (Perceiver); works for any index shape of the built rank."""

    config: FourierPositionConfig

    def __init__(self, config: FourierPositionConfig, index_shape: Sequence[int]) -> None:
        super().__init__(config, index_shape)
        self.max_resolution = config.max_resolution or self.index_shape
        require(
            len(self.max_resolution) == len(self.index_shape),
            "max_resolution",
            config.max_resolution,
            f"one entry per index dimension of {self.index_shape}",
        )

    def forward(
        self, index_shape: Sequence[int] | None = None, indices: Tensor | None = None, *, device: Device = None
    ) -> Tensor:
        shape = self._check_rank(index_shape or self.index_shape)
        c = self.config
        return fourier_features(
            grid_coordinates(shape, indices, endpoint=c.endpoint, device=device),
            c.num_bands,
            self.max_resolution,
            concat_pos=c.concat_pos,
            sine_only=c.sine_only,
        )


@dataclasses.dataclass(frozen=True)
class FourierPositionConfig(PositionConfig):
    """Fourier features with ``num_bands`` frequencies per dimension up to ``max_resolution / 2`` (defaults
    to the index shape); ``concat_pos`` prepends the raw coordinates, ``sine_only`` drops the cosines;
    ``endpoint=False`` places positions at ``-1 + 2·i / n`` instead of ``linspace(-1, 1, n)``."""

    num_bands: int
    max_resolution: tuple[int, ...] | None = None
    concat_pos: bool = True
    sine_only: bool = False
    endpoint: bool = True

    def __post_init__(self) -> None:
        require_positive(num_bands=self.num_bands)
        if self.max_resolution is not None:
            require(
                all(isinstance(r, int) and r > 0 for r in self.max_resolution),
                "max_resolution",
                self.max_resolution,
                "positive integers, one per index dimension",
            )

    def num_channels(self, rank: int) -> int:
        return rank * self.num_bands * (1 if self.sine_only else 2) + (rank if self.concat_pos else 0)

    def build(self, index_shape: Sequence[int]) -> FourierPositionEncoding:
        return FourierPositionEncoding(self, index_shape)


class LearnedPositionEncoding(PositionEncoding):
    """A trainable feature vector per position: a parameter (M, F), initialized truncated normal std 0.02."""

    def __init__(self, config: LearnedPositionConfig, index_shape: Sequence[int]) -> None:
        super().__init__(config, index_shape)
        self.embedding = nn.Parameter(torch.empty(math.prod(self.index_shape), config.channels))
        nn.init.trunc_normal_(self.embedding, std=0.02)

    def forward(
        self, index_shape: Sequence[int] | None = None, indices: Tensor | None = None, *, device: Device = None
    ) -> Tensor:
        shape = self._check_rank(index_shape or self.index_shape)
        if shape != self.index_shape:
            raise ValueError(f"learned positions exist for index shape {self.index_shape}, got {shape}")
        if indices is None:
            return self.embedding
        return self.embedding[_flat_indices(shape, indices, self.embedding.device)]


def resize_learned_positions(weight: Tensor, index_shape: Sequence[int], new_shape: Sequence[int]) -> Tensor:
    """Resize a learned table (M, F), row-major over ``index_shape``, to (M', F) over ``new_shape`` (e.g. to
    fine-tune at another image size): linear over 1-D, bicubic over 2-D (as transformers' Perceiver
    ``interpolate_pos_encoding``), trilinear over 3-D index shapes, all with ``align_corners=False``."""
    index_shape, new_shape = tuple(index_shape), tuple(new_shape)
    modes = {1: "linear", 2: "bicubic", 3: "trilinear"}
    if len(index_shape) != len(new_shape) or len(index_shape) not in modes:
        raise ValueError(f"index shapes must both be 1-D, 2-D or 3-D, got {index_shape} and {new_shape}")
    if weight.dim() != 2 or weight.shape[0] != math.prod(index_shape):
        raise ValueError(
            f"weight must be (M, F) with M = {math.prod(index_shape)} positions of index shape {index_shape}, "
            f"got shape {tuple(weight.shape)}"
        )
    if not all(n > 0 for n in new_shape):
        raise ValueError(f"new_shape must hold positive sizes, got {new_shape}")
    if index_shape == new_shape:
        return weight
    grid = weight.T.reshape(1, weight.shape[1], *index_shape)  # (1, F, n1, ..., nd)
    resized = nn.functional.interpolate(grid, size=new_shape, mode=modes[len(index_shape)], align_corners=False)
    return resized.reshape(weight.shape[1], -1).T


@dataclasses.dataclass(frozen=True)
class LearnedPositionConfig(PositionConfig):
    """Trainable position embeddings of ``channels`` features for a fixed index shape."""

    channels: int

    def __post_init__(self) -> None:
        require_positive(channels=self.channels)

    def num_channels(self, rank: int) -> int:
        return self.channels

    def build(self, index_shape: Sequence[int]) -> LearnedPositionEncoding:
        return LearnedPositionEncoding(self, index_shape)


class ProjectedPositionEncoding(PositionEncoding):
    """Another encoding's features followed by a learned Linear(F -> ``channels``)."""

    config: ProjectedPositionConfig

    def __init__(self, config: ProjectedPositionConfig, index_shape: Sequence[int]) -> None:
        super().__init__(config, index_shape)
        self.encoding = config.position.build(index_shape)
        self.projection = Linear(self.encoding.num_channels, config.channels)

    def forward(
        self, index_shape: Sequence[int] | None = None, indices: Tensor | None = None, *, device: Device = None
    ) -> Tensor:
        return self.projection(self.encoding(index_shape, indices, device=device))


@dataclasses.dataclass(frozen=True)
class ProjectedPositionConfig(PositionConfig):
    """``position``'s features projected to ``channels`` by a learned linear layer (the reference's
    ``project_pos_dim``)."""

    position: PositionConfig
    channels: int

    def __post_init__(self) -> None:
        require_positive(channels=self.channels)

    def num_channels(self, rank: int) -> int:
        return self.channels

    def build(self, index_shape: Sequence[int]) -> ProjectedPositionEncoding:
        return ProjectedPositionEncoding(self, index_shape)


def sinusoidal_features(positions: Tensor, channels: int, base: float = 10000.0) -> Tensor:
    """Vaswani et al.: PE(pos, 2i) = sin(pos / base^(2i/F)), PE(pos, 2i+1) = cos(pos / base^(2i/F)).
    positions (M,) -> (M, F)."""
    i = torch.arange(0, channels, 2, device=positions.device, dtype=torch.float32)
    angles = positions.float()[:, None] / base ** (i / channels)
    features = torch.empty(positions.shape[0], channels, device=positions.device)
    features[:, 0::2] = torch.sin(angles)
    features[:, 1::2] = torch.cos(angles[:, : channels // 2])
    return features


class SinusoidalPositionEncoding(PositionEncoding):
    """Fixed 1-D sinusoidal encoding of the sequence index (the original Transformer's)."""

    config: SinusoidalPositionConfig

    def __init__(self, config: SinusoidalPositionConfig, index_shape: Sequence[int]) -> None:
        super().__init__(config, index_shape)
        require(
            len(self.index_shape) == 1,
            "index_shape",
            self.index_shape,
            "a 1-D index shape (sequence length,)",
        )

    def forward(
        self, index_shape: Sequence[int] | None = None, indices: Tensor | None = None, *, device: Device = None
    ) -> Tensor:
        shape = self._check_rank(index_shape or self.index_shape)
        return sinusoidal_features(_flat_indices(shape, indices, device), self.config.channels, self.config.base)


@dataclasses.dataclass(frozen=True)
class SinusoidalPositionConfig(PositionConfig):
    """1-D sinusoidal features of ``channels`` (any positive count) with wavelengths up to ``base``·2π."""

    channels: int
    base: float = 10000.0

    def __post_init__(self) -> None:
        require_positive(channels=self.channels)
        require(self.base > 1, "base", self.base, "a number > 1")

    def num_channels(self, rank: int) -> int:
        return self.channels

    def build(self, index_shape: Sequence[int]) -> SinusoidalPositionEncoding:
        return SinusoidalPositionEncoding(self, index_shape)


class CoordinatePositionEncoding(PositionEncoding):
    """The raw coordinates of each element appended to it, e.g. (row, column) for every pixel."""

    config: CoordinatePositionConfig

    def forward(
        self, index_shape: Sequence[int] | None = None, indices: Tensor | None = None, *, device: Device = None
    ) -> Tensor:
        shape = self._check_rank(index_shape or self.index_shape)
        return grid_coordinates(shape, indices, normalize=self.config.normalize, device=device)


@dataclasses.dataclass(frozen=True)
class CoordinatePositionConfig(PositionConfig):
    """Coordinates per element: in [-1, 1] when ``normalize``, integer indices otherwise."""

    normalize: bool = True

    def num_channels(self, rank: int) -> int:
        return rank

    def build(self, index_shape: Sequence[int]) -> CoordinatePositionEncoding:
        return CoordinatePositionEncoding(self, index_shape)


class RotaryPositionEmbedding(nn.Module):
    """Rotary position embedding (RoFormer) on the first ``channels`` of each head (rotate-half layout).

    Applied to queries and keys (B, H, L, d) at integer positions (B, L); the product of a rotated query
    and key then depends only on their relative position.
    """

    def __init__(self, channels: int, base: float = 10000.0) -> None:
        super().__init__()
        require(
            isinstance(channels, int) and channels > 0 and channels % 2 == 0,
            "channels",
            channels,
            "a positive even integer",
        )
        self.channels = channels
        self.register_buffer(
            "inverse_frequencies",
            base ** (-torch.arange(0, channels, 2, dtype=torch.float32) / channels),
            persistent=False,
        )

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        if positions.shape != (x.shape[0], x.shape[2]):
            raise ValueError(
                f"positions must have shape (B, L) = {(x.shape[0], x.shape[2])}, got {tuple(positions.shape)}"
            )
        angles = positions[:, None, :, None].float() * self.inverse_frequencies  # (B, 1, L, c/2)
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        rotated, rest = x[..., : self.channels], x[..., self.channels :]
        first, second = rotated.chunk(2, dim=-1)
        rotated = torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)
        return torch.cat([rotated, rest], dim=-1)
