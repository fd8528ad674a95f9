"""Byte streams for language modelling: every source cut into contiguous train / validation / test parts, read
as windows of token ids (bytes, or a subword tokenizer's) that start anew each training epoch and, held out,
score every token exactly once."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from omniperceiver.adapters.text import Bytes, ByteTokenizer
from omniperceiver.data.splits import Splits

HELD_OUT = (0.05, 0.05)  # each source's validation and test parts: its last 10%, in this order
NEWLINE_REACH = 1000  # a part boundary moves forward to the next newline within this many bytes


class ByteWindows(Dataset):
    """Windows (ids (L+1,), mask (L+1,), scored (L+1,)) over the ids of one byte stream (``tokenizer``'s,
    default bytes): right-padded ids, their mask, and the number of bytes each scored target stands for (0: not
    scored). The ids start with [CLS], so that the first token is a target too.

    Training (``stride=None``): windows of L+1 ids every L ids, from an offset in [0, L) drawn anew for each
    epoch (``set_epoch``), so that no window boundary is learned twice. Held out (``stride=S``): window k scores
    the stream's tokens k·S ... k·S + S - 1 (its last S ids) after as much earlier context as L allows, so that
    every token, and so every byte, is scored exactly once, with the longest context a model reading L inputs
    of which S are predicted at once (Perceiver AR's latents) can take. ``stream``: the ids of ``data``
    already made (another view of the same part shares them)."""

    def __init__(
        self,
        data: Bytes,
        length: int,
        *,
        stride: int | None = None,
        seed: int = 0,
        tokenizer: ByteTokenizer | None = None,
        stream: Any = None,
    ) -> None:
        if length < 2 or (stride is not None and not 1 <= stride <= length):
            raise ValueError(f"windows need length >= 2 and 1 <= stride <= length, got {length} and {stride}")
        self.tokenizer = tokenizer or ByteTokenizer()
        self.stream = self.tokenizer.ids_of(data) if stream is None else stream  # (T,) ids, no [CLS]
        needed = 2 * length if stride is None else 1
        if len(self.stream) < needed:
            part = "training" if stride is None else "held-out"
            raise ValueError(f"{part} windows of {length} tokens need at least {needed} tokens, got {len(self.stream)}")
        self.data, self.length, self.stride, self.seed = data, length, stride, seed
        self.byte_lengths = self.tokenizer.byte_lengths()
        self.offset = 0

    def ids(self, start: int, end: int) -> Tensor:
        """Ids ``start`` ... ``end`` - 1 of [CLS] and the stream (the stream's id i is id i + 1), read when
        asked for."""
        ids = torch.from_numpy(np.asarray(self.stream[max(start, 1) - 1 : max(end, 1) - 1], dtype=np.int64))
        return torch.cat([torch.tensor([ByteTokenizer.CLS]), ids]) if start == 0 else ids

    def __len__(self) -> int:
        if self.stride is None:  # the same count at every offset
            return (len(self.stream) - self.length) // self.length
        return -(-len(self.stream) // self.stride)

    def set_epoch(self, epoch: int) -> None:
        """Training windows start at an offset drawn from (seed, epoch)."""
        if self.stride is None:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self.offset = int(torch.randint(self.length, (1,), generator=generator))

    def with_stride(self, stride: int) -> ByteWindows:
        """These ids as held-out windows of the same length, each scoring ``stride`` new tokens."""
        return ByteWindows(
            self.data, self.length, stride=stride, seed=self.seed, tokenizer=self.tokenizer, stream=self.stream
        )

    def tokenized(self, tokenizer: ByteTokenizer) -> ByteWindows:
        """These bytes as ``tokenizer``'s ids, in windows of the same length (in ids) and stride."""
        return ByteWindows(self.data, self.length, stride=self.stride, seed=self.seed, tokenizer=tokenizer)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} of {len(self)}")
        ids = torch.zeros(self.length + 1, dtype=torch.long)
        mask = torch.zeros(self.length + 1, dtype=torch.bool)
        scored = torch.zeros(self.length + 1, dtype=torch.long)
        if self.stride is None:
            start = self.offset + index * self.length
            window, new = self.ids(start, start + self.length + 1), self.length
        else:
            end = min(1 + (index + 1) * self.stride, len(self.stream) + 1)  # targets: ids 1 + index·S ... end - 1
            window = self.ids(max(0, end - self.length - 1), end)
            new = end - 1 - index * self.stride
        ids[: len(window)], mask[: len(window)] = window, True
        scored[len(window) - new : len(window)] = self.byte_lengths[window[len(window) - new :]]
        return ids, mask, scored

    @property
    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """Every window at the current offset, stacked: ids, mask, scored (B, L+1)."""
        windows = [self[i] for i in range(len(self))]
        return tuple(torch.stack(column) for column in zip(*windows, strict=True))


class TableBytes:
    """The text of rows ``start`` ... ``end`` - 1 of a memory-mapped ``datasets`` table (its ``text`` column,
    lines with their line breaks) as UTF-8 bytes, joined: a length, and slices read from the table (the rows a
    slice spans) when asked for, so that a corpus larger than memory stays on disk. ``ends``: each row's end
    as a byte position in the whole table (one int64 per row)."""

    def __init__(self, table: Any, ends: np.ndarray, start: int, end: int) -> None:
        self.table, self.ends, self.start, self.end = table, ends, start, end
        self.base = int(ends[start - 1]) if start else 0

    @classmethod
    def of(cls, table: Any) -> TableBytes:
        """Every row of ``table``."""
        import pyarrow.compute

        lengths = pyarrow.compute.binary_length(table.data.column("text")).to_numpy(zero_copy_only=False)
        return cls(table, np.cumsum(lengths, dtype=np.int64), 0, len(lengths))

    def rows(self, start: int, end: int) -> TableBytes:
        """Rows ``start`` ... ``end`` - 1 (of the whole table)."""
        return TableBytes(self.table, self.ends, start, end)

    def row_at(self, fraction: float) -> int:
        """The row after the line holding the byte at ``fraction`` of these bytes (where a cut at that
        fraction moved to the next line end falls, as :func:`byte_stream_splits` cuts)."""
        mark = self.base + round(len(self) * fraction)
        return min(int(np.searchsorted(self.ends, mark, side="right")) + 1, self.end)

    def __len__(self) -> int:
        return int(self.ends[self.end - 1]) - self.base if self.end > self.start else 0

    def __getitem__(self, key: slice) -> bytes:
        first_byte, end_byte, _ = key.indices(len(self))
        if end_byte <= first_byte:
            return b""
        first_byte, end_byte = first_byte + self.base, end_byte + self.base
        first = int(np.searchsorted(self.ends, first_byte, side="right"))  # (the row holding first_byte)
        last = int(np.searchsorted(self.ends, end_byte, side="left"))  # (the row holding end_byte - 1)
        text = "".join(self.table[first : last + 1]["text"]).encode("utf-8")
        row_start = int(self.ends[first - 1]) if first else 0
        return text[first_byte - row_start : end_byte - row_start]


def windows_splits(
    parts: tuple[Bytes, Bytes, Bytes], name: str, description: str, *, length: int, seed: int, total: int
) -> Splits:
    """Training, validation and test bytes as :class:`ByteWindows` of ``length`` bytes (held-out parts scored
    ``length`` // 4 new bytes per window until a model sets its own stride); ``total``: the bytes they were
    cut from, for the error of too few."""
    train, validation, test = parts
    if len(train) < 2 * length or not len(validation) or not len(test):
        raise ValueError(f"{name}: {total} bytes are too few for windows of {length} bytes and held-out parts")
    stride = max(1, length // 4)
    return Splits(
        name,
        ByteWindows(train, length, seed=seed),
        ByteWindows(validation, length, stride=stride),
        ByteWindows(test, length, stride=stride),
        classes=(),
        description=f"{description}: {len(train):,} training, {len(validation):,} validation, {len(test):,} test bytes",
    )


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
    total = sum(map(len, sources)) + sum(map(len, [*(validation or []), *(test or [])]))
    joined = tuple(b"".join(part) for part in parts)
    return windows_splits(joined, name, description, length=length, seed=seed, total=total)


def _cut(source: bytes, fraction: float) -> int:
    """The byte position at ``fraction`` of ``source``, moved to just after the next newline if one is near."""
    mark = round(len(source) * fraction)
    newline = source.find(b"\n", mark, mark + NEWLINE_REACH)
    return mark if newline < 0 else newline + 1
