"""Classification output: the decoder's single query (B, 1, K) becomes class logits (B, K)."""

from __future__ import annotations

import dataclasses

from torch import Tensor

from omniperceiver.core.adapter import OutputAdapter, OutputAdapterConfig


class ClassificationOutput(OutputAdapter):
    """(B, 1, K) logits of one learned query -> (B, K)."""

    def forward(self, outputs: Tensor) -> Tensor:
        if outputs.dim() != 3 or outputs.shape[1] != 1:
            raise ValueError(f"classification expects decoder outputs (B, 1, K), got {tuple(outputs.shape)}")
        return outputs[:, 0]


@dataclasses.dataclass(frozen=True)
class ClassificationOutputConfig(OutputAdapterConfig):
    def build(self) -> ClassificationOutput:
        return ClassificationOutput()
