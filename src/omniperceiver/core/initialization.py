"""The initialization of learned vectors (latents, queries, position and token embeddings): DeepMind's
``TruncatedNormal(stddev=0.02)``, a normal distribution cut at ±2 std and redrawn there. (transformers' port
draws them from the uncut normal; converted checkpoints overwrite them either way.)"""

from __future__ import annotations

import torch
from torch import Tensor, nn

STD = 0.02


@torch.no_grad()
def truncated_normal_(tensor: Tensor, std: float = STD) -> Tensor:
    """Fill ``tensor`` in place from N(0, std²) cut at ±2 std; return it."""
    return nn.init.trunc_normal_(tensor, std=std, a=-2 * std, b=2 * std)
