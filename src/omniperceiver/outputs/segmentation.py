"""Segmentation output: one query per pixel, class logits laid out as the image."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.config import require
from omniperceiver.outputs.flow import as_grid


class SegmentationOutput(OutputAdapter):
    """(B, H·W, K) class logits -> (B, H, W, K) (a subset of pixels stays (B, O, K))."""

    def __init__(self, config: SegmentationOutputConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor:
        return as_grid(outputs, self.config.image_shape, indices)


@dataclasses.dataclass(frozen=True)
class SegmentationOutputConfig(OutputAdapterConfig):
    """Per-pixel class logits at ``image_shape`` (H, W); ``labels`` names the K classes (index order)."""

    image_shape: tuple[int, int]
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        require(len(self.image_shape) == 2, "image_shape", self.image_shape, "(H, W)")
        require(all(isinstance(label, str) for label in self.labels), "labels", self.labels, "strings")

    def build(self, input_adapter: InputAdapter) -> SegmentationOutput:
        return SegmentationOutput(self)
