"""Optical flow inputs: a pair of frames as one element per pixel holding both frames' k x k neighbourhoods."""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F
from torch import Tensor

from omniperceiver.adapters.array import ArrayBackedInputAdapter, ArrayBackedInputConfig, ArrayInputConfig
from omniperceiver.core.config import require, require_optional_positive, require_positive
from omniperceiver.core.position import PositionConfig


def normalize_patches(patches: Tensor, eps: float = 0.05) -> Tensor:
    """Per pixel, the frames' patches (..., V) less their mean over V, over their std + ``eps``: flow does not
    change with the local brightness and contrast, and the small frame difference becomes visible."""
    patches = patches - patches.mean(-1, keepdim=True)
    return patches / (patches.std(-1, keepdim=True) + eps)


def frame_patches(frames: Tensor, patch_size: int) -> Tensor:
    """Frames (B, T, C, H, W) -> (B, H, W, T·k·k·C): each pixel's k x k neighbourhood (zero padding, which
    equals TensorFlow's "SAME" for odd k), channels ordered (frame, kh, kw, C) like the reference."""
    b, t, c, h, w = frames.shape
    k = patch_size
    patches = F.unfold(frames.reshape(b * t, c, h, w), k, padding=k // 2)  # (B·T, C·k·k, H·W), (C, kh, kw)
    patches = patches.view(b, t, c, k * k, h, w).permute(0, 4, 5, 1, 3, 2)  # (B, H, W, T, k·k, C)
    return patches.reshape(b, h, w, t * k * k * c)


class FlowInputAdapter(ArrayBackedInputAdapter):
    """Frames (B, T, C_in, H, W) -> (B, H·W, P + F): per pixel the frames' patches, a Linear projection to
    P = ``channels`` and position features over (H, W)."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        c = self.config
        if x.dim() != 5 or x.shape[1] != c.num_frames or x.shape[2] != c.in_channels:
            raise ValueError(f"expected frames (B, T={c.num_frames}, C={c.in_channels}, H, W), got {tuple(x.shape)}")
        if mask is not None:
            raise ValueError("optical flow inputs take no padding mask")
        patches = frame_patches(x, c.patch_size)
        return self.array(normalize_patches(patches) if c.normalize else patches)


@dataclasses.dataclass(frozen=True)
class FlowInputConfig(ArrayBackedInputConfig):
    """``num_frames`` frames of ``image_shape`` (H, W); ``patch_size`` (odd) neighbourhoods, projected to
    ``channels`` (None: no projection); ``normalize`` scales each pixel's patches to zero mean, unit std."""

    image_shape: tuple[int, int]
    num_frames: int = 2
    in_channels: int = 3
    patch_size: int = 3
    channels: int | None = 64
    position: PositionConfig | None = None
    normalize: bool = False

    def __post_init__(self) -> None:
        require(len(self.image_shape) == 2, "image_shape", self.image_shape, "(H, W)")
        require_positive(num_frames=self.num_frames, in_channels=self.in_channels, patch_size=self.patch_size)
        require(self.patch_size % 2 == 1, "patch_size", self.patch_size, "an odd size")
        require_optional_positive(channels=self.channels)

    @property
    def array(self) -> ArrayInputConfig:
        values = self.num_frames * self.patch_size**2 * self.in_channels
        return ArrayInputConfig(self.image_shape, values, self.position, project_channels=self.channels)

    def build(self) -> FlowInputAdapter:
        return FlowInputAdapter(self)
