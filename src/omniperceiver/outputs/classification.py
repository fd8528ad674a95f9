"""Classification outputs: the decoder's single query (B, 1, K) becomes class logits (B, K); per token, the
logits (B, O, K) of one query per input element stay as they are."""

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


class TokenClassificationOutput(OutputAdapter):
    """(B, O, K) logits of one query per input element, as they are."""

    def __init__(self, config: TokenClassificationOutputConfig) -> None:
        super().__init__()
        self.config = config

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor:
        return outputs


@dataclasses.dataclass(frozen=True)
class TokenClassificationOutputConfig(ClassificationOutputConfig):
    """Class logits per input element; ``labels`` optionally names the K classes."""

    def build(self, input_adapter: InputAdapter) -> TokenClassificationOutput:
        return TokenClassificationOutput(self)
