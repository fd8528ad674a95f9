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
        flow = outputs * self.config.scale
        if indices is not None:
            return flow
        h, w = self.config.image_shape
        if outputs.dim() != 3 or outputs.shape[1] != h * w:
            raise ValueError(f"expected decoder outputs (B, H·W={h * w}, 2), got {tuple(outputs.shape)}")
        return flow.reshape(outputs.shape[0], h, w, outputs.shape[-1])


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
