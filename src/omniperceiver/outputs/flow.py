"""Optical flow output: one (u, v) vector per pixel query, rescaled to pixels."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.config import require


class FlowOutput(OutputAdapter):
    """(B, H·W, 2) -> flow (B, H, W, 2) in pixels, the decoder's outputs times ``scale`` (a subset of pixels
    stays (B, O, 2))."""

    def __init__(self, config: FlowOutputConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor:
        return as_grid(outputs * self.config.scale, self.config.image_shape, indices)


def as_grid(outputs: Tensor, image_shape: tuple[int, int], indices: Tensor | None) -> Tensor:
    """Decoder outputs (B, H·W, K) of one query per pixel laid out as the image (B, H, W, K); the outputs of a
    subset of pixels (``indices``) stay (B, O, K)."""
    if indices is not None:
        return outputs
    h, w = image_shape
    if outputs.dim() != 3 or outputs.shape[1] != h * w:
        raise ValueError(f"expected decoder outputs (B, H·W={h * w}, K), got {tuple(outputs.shape)}")
    return outputs.reshape(outputs.shape[0], h, w, outputs.shape[-1])


@dataclasses.dataclass(frozen=True)
class FlowOutputConfig(OutputAdapterConfig):
    """Flow at ``image_shape`` (H, W). The published model's ``scale`` 0.2 is its decoder's 1/100 times its
    postprocessor's flow scale factor 20 (transformers returns the outputs / 100 and leaves the x20 to the
    caller)."""

    image_shape: tuple[int, int]
    scale: float = 0.2

    def __post_init__(self) -> None:
        require(len(self.image_shape) == 2, "image_shape", self.image_shape, "(H, W)")
        require(self.scale > 0, "scale", self.scale, "a positive number")

    def build(self, input_adapter: InputAdapter) -> FlowOutput:
        return FlowOutput(self)
