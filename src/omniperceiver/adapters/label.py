"""A class label (one-hot or class probabilities) as a single input element."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, InputAdapterConfig
from omniperceiver.core.config import require_positive


class LabelInputAdapter(InputAdapter):
    """(B, K) class scores -> one element (B, 1, K)."""

    def __init__(self, config: LabelInputConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        k = self.config.num_classes
        if x.dim() != 2 or x.shape[1] != k:
            raise ValueError(f"expected labels (B, K={k}) (one-hot or probabilities), got {tuple(x.shape)}")
        if mask is not None:
            raise ValueError("label inputs take no padding mask")
        return x[:, None], None


@dataclasses.dataclass(frozen=True)
class LabelInputConfig(InputAdapterConfig):
    num_classes: int

    def __post_init__(self) -> None:
        require_positive(num_classes=self.num_classes)

    @property
    def num_channels(self) -> int:
        return self.num_classes

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        return torch.randn(batch, self.num_classes, generator=generator).softmax(-1), None

    def build(self) -> LabelInputAdapter:
        return LabelInputAdapter(self)
