"""Token logits through the input embedding (tied weights): (B, O, C) -> (B, O, V)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from omniperceiver.adapters.text import TextInputAdapter
from omniperceiver.core.adapter import InputAdapter, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.linear import linear


class TiedTokenOutput(OutputAdapter):
    """logits = outputs · Eᵀ + bias, E the (V, C) token embedding of the model's text input adapter."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.embedding = embedding  # the input adapter's module itself: one weight, trained by both uses
        self.bias = nn.Parameter(torch.zeros(embedding.num_embeddings))

    def forward(self, outputs: Tensor, indices: Tensor | None = None) -> Tensor:
        if outputs.dim() != 3 or outputs.shape[-1] != self.embedding.embedding_dim:
            raise ValueError(
                f"token output expects (B, O, C={self.embedding.embedding_dim}), got {tuple(outputs.shape)}"
            )
        return linear(outputs, self.embedding.weight, self.bias)


@dataclasses.dataclass(frozen=True)
class TiedTokenOutputConfig(OutputAdapterConfig):
    def build(self, input_adapter: InputAdapter) -> TiedTokenOutput:
        if not isinstance(input_adapter, TextInputAdapter):
            raise ValueError(f"tied token outputs need a TextInputAdapter input, got {type(input_adapter).__name__}")
        return TiedTokenOutput(input_adapter.embedding)
