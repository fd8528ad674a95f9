"""Byte streams for language modelling: every source cut into contiguous train / validation / test parts, read
as windows that start anew each training epoch and, held out, score every byte exactly once."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.data.splits import Splits

HELD_OUT = (0.05, 0.05)  # each source's validation and test parts: its last 10%, in this order
NEWLINE_REACH = 1000  # a part boundary moves forward to the next newline within this many bytes


class ByteWindows(Dataset):
    """Windows (ids (L+1,), mask (L+1,), scored (L+1,)) over one byte stream: right-padded ids, their mask,
    and which ids are targets to score. The stream starts with [CLS], so that its first byte is a target too.

    Training (``stride=None``): windows of L+1 ids every L bytes, from an offset in [0, L) drawn anew for each
    epoch (``set_epoch``), so that no window boundary is learned twice. Held out (``stride=S``): window k scores
    the stream's bytes k·S ... k·S + S - 1 (its last S ids) after as much earlier context as L allows, so that
    every byte is scored exactly once, with the longest context a model reading L inputs of which S are
    predicted at once (Perceiver AR's latents) can take."""

    def __init__(self, data: bytes, length: int, *, stride: int | None = None, seed: int = 0) -> None:
        if length < 2 or (stride is not None and not 1 <= stride <= length):
            raise ValueError(f"windows need length >= 2 and 1 <= stride <= length, got {length} and {stride}")
        needed = 2 * length if stride is None else 1
        if len(data) < needed:
            part = "training" if stride is None else "held-out"
            raise ValueError(f"{part} windows of {length} bytes need at least {needed} bytes, got {len(data)}")
        self.data, self.length, self.stride, self.seed = data, length, stride, seed
        ids = torch.frombuffer(bytearray(data), dtype=torch.uint8).long() + ByteTokenizer.OFFSET
        self.stream = torch.cat([torch.tensor([ByteTokenizer.CLS]), ids])
        self.offset = 0

    def __len__(self) -> int:
        if self.stride is None:  # the same count at every offset
            return (len(self.stream) - 1 - self.length) // self.length
        return -(-(len(self.stream) - 1) // self.stride)

    def set_epoch(self, epoch: int) -> None:
        """Training windows start at an offset drawn from (seed, epoch)."""
        if self.stride is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self.offset = int(torch.randint(self.length, (1,), generator=generator))

    def with_stride(self, stride: int) -> ByteWindows:
        """These bytes as held-out windows of the same length, each scoring ``stride`` new bytes."""
        return ByteWindows(self.data, self.length, stride=stride, seed=self.seed)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} of {len(self)}")
        ids = torch.zeros(self.length + 1, dtype=torch.long)
        mask = torch.zeros(self.length + 1, dtype=torch.bool)
        scored = torch.zeros(self.length + 1, dtype=torch.bool)
        if self.stride is None:
            start = self.offset + index * self.length
            window, new = self.stream[start : start + self.length + 1], self.length
        else:
            end = min(1 + (index + 1) * self.stride, len(self.stream))  # targets stream[1 + index·S : end]
            window = self.stream[max(0, end - self.length - 1) : end]
            new = end - 1 - index * self.stride
        ids[: len(window)], mask[: len(window)] = window, True
        scored[len(window) - new : len(window)] = True
        return ids, mask, scored

    @property
    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """Every window at the current offset, stacked: ids, mask, scored (B, L+1)."""
        windows = [self[i] for i in range(len(self))]
        return tuple(torch.stack(column) for column in zip(*windows, strict=True))


def byte_stream_splits(
    sources: list[bytes],
    name: str,
    description: str,
    *,
    length: int = 256,
    seed: int = 0,
    validation: list[bytes] | None = None,
    test: list[bytes] | None = None,
) -> Splits:
    """Each source's first 90% (for training), next 5% (validation) and last 5% (test), the parts of all the
    sources joined, as :class:`ByteWindows` of ``length`` bytes (held-out parts scored ``length`` // 4 new
    bytes per window until a model sets its own stride). Part boundaries move to the next newline where one is
    near. ``validation`` and ``test``: sources given for those parts, which are then not cut from ``sources``."""
    held_out = (0.0 if validation is not None else HELD_OUT[0], 0.0 if test is not None else HELD_OUT[1])
    parts: list[list[bytes]] = [[], validation or [], test or []]
    for source in sources:
        cuts = [_cut(source, 1 - sum(held_out)), _cut(source, 1 - held_out[1]), len(source)]
        cut = (True, validation is None, test is None)  # (the given parts are not cut from the sources)
        for part, start, end, taken in zip(parts, [0, *cuts[:2]], cuts, cut, strict=True):
            if taken:
                part.append(source[start:end])
    train, validation_bytes, test_bytes = (b"".join(part) for part in parts)
    if len(train) < 2 * length or not validation_bytes or not test_bytes:
        total = sum(map(len, sources)) + sum(map(len, [*(validation or []), *(test or [])]))
        raise ValueError(f"{name}: {total} bytes are too few for windows of {length} bytes and held-out parts")
    stride = max(1, length // 4)
    return Splits(
        name,
        ByteWindows(train, length, seed=seed),
        ByteWindows(validation_bytes, length, stride=stride),
        ByteWindows(test_bytes, length, stride=stride),
        classes=(),
        description=f"{description}: {len(train):,} training, {len(validation_bytes):,} validation, "
        f"{len(test_bytes):,} test bytes",
    )


def _cut(source: bytes, fraction: float) -> int:
    """The byte position at ``fraction`` of ``source``, moved to just after the next newline if one is near."""
    mark = round(len(source) * fraction)
    newline = source.find(b"\n", mark, mark + NEWLINE_REACH)
    return mark if newline < 0 else newline + 1
