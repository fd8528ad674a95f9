"""Choosing the next token from logits: greedy, or sampling with temperature, top-k and top-p (nucleus)."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from omniperceiver.core.config import require


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How to pick the next token: the most likely one when ``temperature`` is 0, otherwise a draw from
    softmax(logits / temperature) restricted to the ``top_k`` most likely tokens and then to the smallest set of
    most likely tokens whose probability reaches ``top_p`` (the nucleus; the most likely token always stays)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        require(self.temperature >= 0, "temperature", self.temperature, "a number >= 0 (0 = greedy)")
        require(
            self.top_k is None or (isinstance(self.top_k, int) and self.top_k >= 1),
            "top_k",
            self.top_k,
            "None or an integer >= 1",
        )
        require(self.top_p is None or 0 < self.top_p <= 1, "top_p", self.top_p, "None or a number in (0, 1]")

    def filter(self, logits: Tensor) -> Tensor:
        """Logits (B, V) divided by the temperature, with the tokens outside top-k and top-p set to -inf."""
        logits = logits / self.temperature
        if self.top_k is not None and self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p is not None and self.top_p < 1:
            ordered, order = logits.sort(dim=-1, descending=True)
            probs = ordered.softmax(dim=-1)
            before = probs.cumsum(dim=-1) - probs  # probability of the more likely tokens
            ordered = ordered.masked_fill(before >= self.top_p, float("-inf"))
            logits = logits.scatter(-1, order, ordered)
        return logits

    def __call__(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The next token (B,) for logits (B, V)."""
        if self.temperature == 0:
            return logits.argmax(dim=-1)
        probs = self.filter(logits.float()).softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
