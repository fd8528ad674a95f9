"""Classification output: the decoder's single query (B, 1, K) becomes class logits (B, K)."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from omniperceiver.core.adapter import InputAdapter, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.config import require


class ClassificationOutput(OutputAdapter):
    """(B, 1, K) logits of one learned query -> (B, K)."""

    def __init__(self, config: ClassificationOutputConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor:
        if outputs.dim() != 3 or outputs.shape[1] != 1:
            raise ValueError(f"classification expects decoder outputs (B, 1, K), got {tuple(outputs.shape)}")
        return outputs[:, 0]


@dataclasses.dataclass(frozen=True)
class ClassificationOutputConfig(OutputAdapterConfig):
    """Class logits; ``labels`` optionally names the K classes (index order) for predictions."""

    labels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.labels is not None:
            require(all(isinstance(label, str) for label in self.labels), "labels", self.labels, "strings")

    def build(self, input_adapter: InputAdapter) -> ClassificationOutput:
        return ClassificationOutput(self)
