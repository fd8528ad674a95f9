"""Videos (B, T, C_in, H, W) as space-time patches with position features."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from omniperceiver.adapters.array import ArrayBackedInputAdapter, ArrayBackedInputConfig, ArrayInputConfig
from omniperceiver.adapters.image import space_to_depth
from omniperceiver.core.config import require, require_positive
from omniperceiver.core.position import PositionConfig


class VideoInputAdapter(ArrayBackedInputAdapter):
    """(B, T, C_in, H, W) -> (B, M, C): each (bt, bh, bw) block is one element of bt·bh·bw·C_in values
    (ordered t, h, w, C) plus position features over the (T/bt, H/bh, W/bw) grid."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        c = self.config
        if x.dim() != 5 or x.shape[2] != c.in_channels:
            raise ValueError(f"expected videos (B, T, C={c.in_channels}, H, W), got {tuple(x.shape)}")
        if mask is not None:
            raise ValueError("video inputs take no padding mask")
        return self.array(space_to_depth(x, c.patch_shape))


@dataclasses.dataclass(frozen=True)
class VideoInputConfig(ArrayBackedInputConfig):
    """Videos of ``video_shape`` (T, H, W) cut into ``patch_shape`` (bt, bh, bw) blocks."""

    video_shape: tuple[int, int, int]
    patch_shape: tuple[int, int, int] = (1, 4, 4)
    in_channels: int = 3
    position: PositionConfig | None = None

    def __post_init__(self) -> None:
        require(len(self.video_shape) == 3, "video_shape", self.video_shape, "(T, H, W)")
        require(len(self.patch_shape) == 3, "patch_shape", self.patch_shape, "(bt, bh, bw)")
        require_positive(
            in_channels=self.in_channels, **{f"patch_shape[{i}]": n for i, n in enumerate(self.patch_shape)}
        )
        require(
            all(n > 0 and n % p == 0 for n, p in zip(self.video_shape, self.patch_shape, strict=True)),
            "video_shape",
            self.video_shape,
            f"positive sizes divisible by patch_shape {self.patch_shape}",
        )

    @property
    def array(self) -> ArrayInputConfig:
        grid = tuple(n // p for n, p in zip(self.video_shape, self.patch_shape, strict=True))
        values = self.patch_shape[0] * self.patch_shape[1] * self.patch_shape[2] * self.in_channels
        return ArrayInputConfig(grid, values, self.position)

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        return torch.randn(
            batch, self.video_shape[0], self.in_channels, *self.video_shape[1:], generator=generator
        ), None

    def build(self) -> VideoInputAdapter:
        return VideoInputAdapter(self)
