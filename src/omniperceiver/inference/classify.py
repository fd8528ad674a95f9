"""Top-k class predictions with class names."""

from __future__ import annotations

import torch
from torch import Tensor, nn


@torch.inference_mode()
def top_k(model: nn.Module, inputs: Tensor, k: int = 5, mask: Tensor | None = None) -> list[list[tuple[str, float]]]:
    """Per example of a batch: the ``k`` most probable classes as (name, probability); classes without names
    in the model's config are named by their index."""
    probabilities = model(inputs, mask).float().softmax(-1)
    labels = model.config.output.labels
    values, indices = probabilities.topk(min(k, probabilities.shape[-1]), dim=-1)
    return [
        [(labels[i] if labels else str(i), p) for p, i in zip(row_p.tolist(), row_i.tolist(), strict=True)]
        for row_p, row_i in zip(values, indices, strict=True)
    ]
