"""Segmentation output: one query per pixel, class logits laid out as the image."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.config import require


class SegmentationOutput(OutputAdapter):
    """(B, H·W, K) class logits -> (B, H, W, K) (a subset of pixels stays (B, O, K))."""

    def __init__(self, config: SegmentationOutputConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor:
        if indices is not None:
            return outputs
        h, w = self.config.image_shape
        if outputs.dim() != 3 or outputs.shape[1] != h * w:
            raise ValueError(f"expected decoder outputs (B, H·W={h * w}, K), got {tuple(outputs.shape)}")
        return outputs.reshape(outputs.shape[0], h, w, outputs.shape[-1])


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
