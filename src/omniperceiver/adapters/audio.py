"""Raw audio (B, S) as patches of consecutive samples with position features."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from omniperceiver.adapters.array import ArrayBackedInputAdapter, ArrayBackedInputConfig, ArrayInputConfig
from omniperceiver.core.config import require, require_positive
from omniperceiver.core.position import PositionConfig


class AudioInputAdapter(ArrayBackedInputAdapter):
    """(B, S) samples -> (B, S/p, p + F): every p consecutive samples are one element with its position
    features; a mask (B, S/p) marks real patches."""

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        p = self.config.samples_per_patch
        if x.dim() != 2 or x.shape[1] % p:
            raise ValueError(f"expected audio (B, S) with S divisible by samples_per_patch={p}, got {tuple(x.shape)}")
        return self.array(x.reshape(x.shape[0], -1, p), mask)


@dataclasses.dataclass(frozen=True)
class AudioInputConfig(ArrayBackedInputConfig):
    """Clips of ``num_samples`` samples in patches of ``samples_per_patch``."""

    num_samples: int
    samples_per_patch: int = 16
    position: PositionConfig | None = None

    def __post_init__(self) -> None:
        require_positive(num_samples=self.num_samples, samples_per_patch=self.samples_per_patch)
        require(
            self.num_samples % self.samples_per_patch == 0,
            "num_samples",
            self.num_samples,
            f"a multiple of samples_per_patch ({self.samples_per_patch})",
        )

    @property
    def array(self) -> ArrayInputConfig:
        return ArrayInputConfig((self.num_samples // self.samples_per_patch,), self.samples_per_patch, self.position)

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        return torch.randn(batch, self.num_samples, generator=generator), None

    def build(self) -> AudioInputAdapter:
        return AudioInputAdapter(self)
