"""Key/value cache of one attention layer, for incremental (autoregressive) decoding."""

from __future__ import annotations

import torch
from torch import Tensor


class KVCache:
    """Projected keys and values (B, H, M, d) seen so far by one attention layer.

    :meth:`extend` appends the keys and values of new positions and returns all of them, so a decoding step
    attends over the whole history while projecting only the new positions.
    """

    def __init__(self) -> None:
        self.keys: Tensor | None = None
        self.values: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def extend(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys is not None and self.values is not None:
            keys = torch.cat([self.keys, keys], dim=2)
            values = torch.cat([self.values, values], dim=2)
        self.keys, self.values = keys, values
        return keys, values

    def keep_last(self, length: int) -> None:
        """Drop all but the last ``length`` positions (a sliding window)."""
        if self.keys is not None and self.values is not None:
            start = max(self.keys.shape[2] - length, 0)
            self.keys, self.values = self.keys[:, :, start:], self.values[:, :, start:]
