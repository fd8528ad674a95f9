"""Optical flow output: one (u, v) vector per pixel query, rescaled to pixels."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.config import require


class FlowOutput(OutputAdapter):
    """(B, H·W, 2) -> flow (B, H, W, 2) divided by ``rescale`` (a subset of pixels stays (B, O, 2))."""

    def __init__(self, config: FlowOutputConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor:
        flow = outputs / self.config.rescale
        if indices is not None:
            return flow
        h, w = self.config.image_shape
        if outputs.dim() != 3 or outputs.shape[1] != h * w:
            raise ValueError(f"expected decoder outputs (B, H·W={h * w}, 2), got {tuple(outputs.shape)}")
        return flow.reshape(outputs.shape[0], h, w, outputs.shape[-1])


@dataclasses.dataclass(frozen=True)
class FlowOutputConfig(OutputAdapterConfig):
    image_shape: tuple[int, int]
    rescale: float = 100.0

    def __post_init__(self) -> None:
        require(len(self.image_shape) == 2, "image_shape", self.image_shape, "(H, W)")
        require(self.rescale > 0, "rescale", self.rescale, "a positive number")

    def build(self, input_adapter: InputAdapter) -> FlowOutput:
        return FlowOutput(self)
