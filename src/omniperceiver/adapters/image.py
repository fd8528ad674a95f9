"""Images (B, C_in, H, W): an optional stem (1x1 conv, conv + max-pool, space-to-depth patches) turns them
into a feature map whose pixels, with position features, are the Perceiver inputs."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from omniperceiver.adapters.array import ArrayBackedInputAdapter, ArrayBackedInputConfig, ArrayInputConfig
from omniperceiver.core.config import Config, require, require_optional_positive, require_positive
from omniperceiver.core.linear import Linear
from omniperceiver.core.position import PositionConfig


def space_to_depth(x: Tensor, block: tuple[int, ...]) -> Tensor:
    """Non-overlapping blocks into channels, channels last: images (B, C, H, W) with block (bh, bw) ->
    (B, H/bh, W/bw, bh·bw·C), videos (B, T, C, H, W) with block (bt, bh, bw) -> (B, T/bt, H/bh, W/bw,
    bt·bh·bw·C); channels ordered ([bt,] bh, bw, C) like the reference."""
    if x.dim() == 4 and len(block) == 2:
        b, c, h, w = x.shape
        (bh, bw), bt, t = block, 1, 1
        x = x[:, None]
    elif x.dim() == 5 and len(block) == 3:
        b, t, c, h, w = x.shape
        bt, bh, bw = block
    else:
        raise ValueError(
            f"expected (B, C, H, W) with a 2-D block or (B, T, C, H, W) with a 3-D block, got "
            f"{tuple(x.shape)} and {block}"
        )
    if t % bt or h % bh or w % bw:
        raise ValueError(f"shape {tuple(x.shape)} is not divisible into blocks {block}")
    x = x.reshape(b, t // bt, bt, c, h // bh, bh, w // bw, bw).permute(0, 1, 4, 6, 2, 5, 7, 3)
    x = x.reshape(b, t // bt, h // bh, w // bw, bt * bh * bw * c)
    return x[:, 0] if len(block) == 2 else x


@dataclasses.dataclass(frozen=True)
class StemConfig(Config):
    """Base of the image stems: (B, C_in, H, W) -> a channels-last feature map (B, H', W', C')."""

    def out_channels(self, in_channels: int) -> int:
        raise NotImplementedError

    def output_shape(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        raise NotImplementedError

    def build(self, in_channels: int) -> nn.Module:
        raise NotImplementedError


class Conv1x1Stem(nn.Module):
    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x).permute(0, 2, 3, 1)


@dataclasses.dataclass(frozen=True)
class Conv1x1StemConfig(StemConfig):
    """A 1x1 convolution to ``channels`` per pixel (the learned-position ImageNet model)."""

    channels: int

    def __post_init__(self) -> None:
        require_positive(channels=self.channels)

    def out_channels(self, in_channels: int) -> int:
        return self.channels

    def output_shape(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        return image_shape

    def build(self, in_channels: int) -> Conv1x1Stem:
        return Conv1x1Stem(in_channels, self.channels)


class ConvStem(nn.Module):
    """7x7 stride-2 convolution (no bias, padding 3), BatchNorm, ReLU, 3x3 stride-2 max-pool: 4x smaller."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, channels, kernel_size=7, stride=2, padding=3, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.pool(torch.relu(self.norm(self.conv(x)))).permute(0, 2, 3, 1)


@dataclasses.dataclass(frozen=True)
class ConvStemConfig(StemConfig):
    """The conv-processing ImageNet model's stem: 224x224 -> 55x55 pixels of ``channels``."""

    channels: int = 64

    def __post_init__(self) -> None:
        require_positive(channels=self.channels)

    def out_channels(self, in_channels: int) -> int:
        return self.channels

    def output_shape(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        conv = [(n + 2 * 3 - 7) // 2 + 1 for n in image_shape]
        return tuple((n - 3) // 2 + 1 for n in conv)  # type: ignore[return-value]

    def build(self, in_channels: int) -> ConvStem:
        return ConvStem(in_channels, self.channels)


class PatchStem(nn.Module):
    def __init__(self, in_channels: int, config: PatchStemConfig) -> None:
        super().__init__()
        self.patch_size = config.patch_size
        patch_channels = config.patch_size**2 * in_channels
        self.projection = Linear(patch_channels, config.channels) if config.channels else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.projection(space_to_depth(x, (self.patch_size, self.patch_size)))


@dataclasses.dataclass(frozen=True)
class PatchStemConfig(StemConfig):
    """Space-to-depth: each ``patch_size``² block becomes one element of patch²·C_in channels, optionally
    projected to ``channels`` by a Linear layer."""

    patch_size: int
    channels: int | None = None

    def __post_init__(self) -> None:
        require_positive(patch_size=self.patch_size)
        require_optional_positive(channels=self.channels)

    def out_channels(self, in_channels: int) -> int:
        return self.channels or self.patch_size**2 * in_channels

    def output_shape(self, image_shape: tuple[int, int]) -> tuple[int, int]:
        return tuple(n // self.patch_size for n in image_shape)  # type: ignore[return-value]

    def build(self, in_channels: int) -> PatchStem:
        return PatchStem(in_channels, self)


class ImageInputAdapter(ArrayBackedInputAdapter):
    """Images (B, C_in, H, W) -> (B, M, C), M = H'·W' pixels of the stem's output (row-major), each with
    its position features. A padding mask (B, H, W) is accepted with the pixel stem (``stem=None``) only."""

    def __init__(self, config: ImageInputConfig) -> None:
        super().__init__(config)
        self.stem = config.stem.build(config.in_channels) if config.stem is not None else None

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        c = self.config
        if x.dim() != 4 or x.shape[1] != c.in_channels or not x.is_floating_point():
            raise ValueError(f"expected float images (B, C={c.in_channels}, H, W), got {x.dtype} {tuple(x.shape)}")
        if self.stem is None:
            return self.array(x.permute(0, 2, 3, 1), mask)
        if mask is not None:
            raise ValueError(f"a padding mask needs the pixel stem (stem=None), this adapter has {c.stem.describe()}")
        return self.array(self.stem(x))


@dataclasses.dataclass(frozen=True)
class ImageInputConfig(ArrayBackedInputConfig):
    """Images of ``image_shape`` (H, W) with ``in_channels``; ``stem`` None reads raw pixels. Fourier
    positions follow the size that arrives; learned positions need ``image_shape``."""

    image_shape: tuple[int, int]
    in_channels: int = 3
    stem: StemConfig | None = None
    position: PositionConfig | None = None

    def __post_init__(self) -> None:
        require(len(self.image_shape) == 2, "image_shape", self.image_shape, "(H, W)")
        require_positive(in_channels=self.in_channels, height=self.image_shape[0], width=self.image_shape[1])
        if self.stem is not None:
            shape = self.stem.output_shape(self.image_shape)
            require(math.prod(shape) > 0, "image_shape", self.image_shape, f"a size {self.stem.describe()} accepts")

    @property
    def array(self) -> ArrayInputConfig:
        """The array adapter over the stem's output pixels."""
        if self.stem is None:
            return ArrayInputConfig(self.image_shape, self.in_channels, self.position)
        shape = self.stem.output_shape(self.image_shape)
        return ArrayInputConfig(shape, self.stem.out_channels(self.in_channels), self.position)

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        return torch.randn(batch, self.in_channels, *self.image_shape, generator=generator), None

    def build(self) -> ImageInputAdapter:
        return ImageInputAdapter(self)
