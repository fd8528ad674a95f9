"""Masked language modelling's corruption (BERT's, in spans as the language Perceiver's): a fraction of each
window's tokens chosen in spans, then 80% of them replaced by [MASK], 10% by a random token, 10% kept; and
windows of a byte stream masked so, anew each training epoch and fixed when held out."""

from __future__ import annotations

import random

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.data.byte_stream import ByteWindows

MASKED_FRACTION = 0.15
MEAN_SPAN = 3.0  # tokens; span lengths are geometric
MAX_SPAN = 10
REPLACED, RANDOMIZED = 0.8, 0.1  # of the chosen tokens: [MASK], a random token; the rest are kept


def span_mask(candidates: Tensor, rng: random.Random, fraction: float = MASKED_FRACTION) -> Tensor:
    """Choose round(``fraction`` x the number of candidates) of the ``candidates`` (L,) bool positions, in
    spans of geometric length (mean 3, at most 10) over consecutive candidates; returns the chosen (L,)."""
    positions = candidates.nonzero()[:, 0].tolist()
    wanted = round(fraction * len(positions))
    chosen = [False] * len(positions)
    count = 0
    while count < wanted:
        span = min(_geometric(rng), MAX_SPAN, wanted - count)
        start = rng.randrange(len(positions) - span + 1)
        for i in range(start, start + span):
            count += not chosen[i]
            chosen[i] = True
    mask = torch.zeros_like(candidates)
    mask[[p for p, c in zip(positions, chosen, strict=True) if c]] = True
    return mask


def _geometric(rng: random.Random) -> int:
    """A length >= 1 with mean MEAN_SPAN."""
    length = 1
    while rng.random() > 1 / MEAN_SPAN:
        length += 1
    return length


def corrupt(ids: Tensor, chosen: Tensor, rng: random.Random, vocab_size: int) -> Tensor:
    """``ids`` (L,) with each ``chosen`` position replaced by [MASK] (80%), a random non-special token (10%)
    or kept (10%)."""
    corrupted = ids.clone()
    for position in chosen.nonzero()[:, 0].tolist():
        draw = rng.random()
        if draw < REPLACED:
            corrupted[position] = ByteTokenizer.MASK
        elif draw < REPLACED + RANDOMIZED:
            corrupted[position] = rng.randrange(ByteTokenizer.OFFSET, vocab_size)
    return corrupted


class MaskedWindows(Dataset):
    """The windows of a :class:`ByteWindows` (its L+1 ids less the first, the context a next-token model
    needs), masked: (inputs (L,), mask (L,), targets (L,), scored (L,)) with the corrupted ids, the padding
    mask, the original ids and, at each chosen position, the number of bytes its token stands for (0: not
    chosen, so not scored). Held out with stride L, every token of the part is in exactly one window. Masks are
    drawn from (``seed``, epoch, window): training windows get new ones (and offsets) every epoch, held-out
    windows keep theirs."""

    def __init__(self, windows: ByteWindows, *, seed: int = 0) -> None:
        self.windows, self.seed, self.epoch = windows, seed, 0
        self.data, self.tokenizer, self.length = windows.data, windows.tokenizer, windows.length

    def __len__(self) -> int:
        return len(self.windows)

    def set_epoch(self, epoch: int) -> None:
        """Training windows: new offsets and masks for ``epoch``."""
        if self.windows.stride is None:
            self.epoch = epoch
            self.windows.set_epoch(epoch)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        ids, mask, scored = (t[1:] for t in self.windows[index])
        rng = random.Random(f"{self.seed} {self.epoch} {index}")
        chosen = span_mask(scored > 0, rng)
        inputs = corrupt(ids, chosen, rng, self.tokenizer.vocab_size)
        return inputs, mask, ids, torch.where(chosen, scored, 0)

    @property
    def tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Every window, stacked: inputs, mask, targets, scored (B, L)."""
        windows = [self[i] for i in range(len(self))]
        return tuple(torch.stack(column) for column in zip(*windows, strict=True))
