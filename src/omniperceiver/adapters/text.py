"""Text: the reference's UTF-8 byte tokenizer and token embeddings with learned absolute positions."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omniperceiver.core.adapter import InputAdapter, InputAdapterConfig
from omniperceiver.core.attention import check_mask
from omniperceiver.core.config import require_positive, require_positive_finite


class ByteTokenizer:
    """UTF-8 bytes as ids: 0-5 are [PAD] [BOS] [EOS] [MASK] [CLS] [SEP], byte b is id b + 6 (262 ids).

    ``encode`` frames a text as [CLS] bytes [SEP] (the published models' input); ``batch`` left-aligns
    several texts with [PAD] and returns the padding mask (B, L), True = real token. A subword tokenizer
    (:class:`~omniperceiver.data.bpe.BPETokenizer`) keeps the special ids and overrides ``encode``,
    ``token_bytes`` and ``ids_of``: decoding is the same, its tokens' bytes joined.
    """

    PAD, BOS, EOS, MASK, CLS, SEP = range(6)
    SPECIAL = ("[PAD]", "[BOS]", "[EOS]", "[MASK]", "[CLS]", "[SEP]")
    OFFSET = 6
    vocab_size = 256 + OFFSET

    def encode(self, text: str | bytes, *, special_tokens: bool = True) -> list[int]:
        data = text.encode("utf-8") if isinstance(text, str) else text
        ids = [byte + self.OFFSET for byte in data]
        return [self.CLS, *ids, self.SEP] if special_tokens else ids

    def token_bytes(self, i: int) -> bytes:
        """The bytes id ``i`` stands for (none for a special id)."""
        return bytes([i - self.OFFSET]) if i >= self.OFFSET else b""

    def byte_lengths(self) -> Tensor:
        """(V,) the number of bytes each id stands for: 0 for the special ids."""
        return torch.tensor([len(self.token_bytes(i)) for i in range(self.vocab_size)])

    def ids_of(self, data: Bytes) -> ByteIds:
        """The ids of ``data`` (no special ids), read from the bytes when sliced."""
        return ByteIds(data)

    def save(self, directory: str | os.PathLike) -> None:
        """Nothing to write: a model without a tokenizer file reads bytes."""

    def decode(self, ids: Sequence[int] | Tensor, *, skip_special_tokens: bool = True) -> str:
        """Ids -> text; invalid UTF-8 (a model's partial guess) becomes U+FFFD instead of an error."""
        ids = ids.tolist() if isinstance(ids, Tensor) else list(ids)
        pieces, data = [], bytearray()
        for i in ids:
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} is outside the vocabulary [0, {self.vocab_size})")
            if i >= self.OFFSET:
                data += self.token_bytes(i)
                continue
            pieces.append(data.decode("utf-8", errors="replace"))
            data = bytearray()
            if not skip_special_tokens:
                pieces.append(self.SPECIAL[i])
        pieces.append(data.decode("utf-8", errors="replace"))
        return "".join(pieces)

    def batch(
        self, texts: Sequence[str | bytes], *, max_length: int | None = None, special_tokens: bool = True
    ) -> tuple[Tensor, Tensor]:
        """Texts -> ids (B, L) padded with [PAD], and mask (B, L); a text longer than ``max_length`` tokens
        is an error (nothing is silently truncated)."""
        encoded = [self.encode(text, special_tokens=special_tokens) for text in texts]
        length = max((len(ids) for ids in encoded), default=0)
        if max_length is not None and length > max_length:
            longest = max(range(len(encoded)), key=lambda i: len(encoded[i]))
            raise ValueError(f"text {longest} has {length} tokens, more than max_length={max_length}")
        ids = torch.full((len(encoded), length), self.PAD, dtype=torch.long)
        for row, tokens in enumerate(encoded):
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        return ids, ids != self.PAD


class Bytes(Protocol):
    """bytes, or anything with a length whose slices are bytes (a corpus read from disk when sliced)."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice) -> bytes: ...


class ByteIds:
    """The byte ids of ``data`` as an array-like: a length, and slices (int64 arrays) read when asked for."""

    def __init__(self, data: Bytes) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: slice) -> np.ndarray:
        return np.frombuffer(self.data[key], dtype=np.uint8).astype(np.int64) + ByteTokenizer.OFFSET


class TextInputAdapter(InputAdapter):
    """Token ids (B, L) -> embeddings plus learned absolute positions (B, L, C); mask (B, L) passes through.
    With ``ngram`` n > 1, each element also adds the embeddings of the n - 1 tokens before it, one table per
    offset (id 0 before the start), so that attention over single elements can tell n-grams apart."""

    def __init__(self, config: TextInputConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.channels)
        self.preceding = nn.ModuleList(
            nn.Embedding(config.vocab_size, config.channels) for _ in range(config.ngram - 1)
        )
        self.position = nn.Embedding(config.max_length, config.channels)
        for table in (self.embedding, *self.preceding):
            nn.init.trunc_normal_(table.weight, std=config.embedding_init_std)
        nn.init.trunc_normal_(self.position.weight, std=0.02)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        c = self.config
        if x.dim() != 2 or x.dtype not in (torch.int32, torch.int64):
            raise ValueError(f"expected token ids (B, L) of an integer dtype, got {x.dtype} {tuple(x.shape)}")
        if x.shape[1] > c.max_length:
            raise ValueError(f"sequence length {x.shape[1]} exceeds max_length={c.max_length}")
        if x.numel() and not torch.compiler.is_compiling() and (int(x.min()) < 0 or int(x.max()) >= c.vocab_size):
            raise ValueError(f"token ids must lie in [0, {c.vocab_size}), got [{int(x.min())}, {int(x.max())}]")
        if mask is not None:
            check_mask(mask, "(B, L)", tuple(x.shape))
        h = self.embedding(x) + self.position(torch.arange(x.shape[1], device=x.device))
        for offset, table in enumerate(self.preceding, start=1):
            h = h + table(F.pad(x, (offset, 0))[:, : x.shape[1]])
        return h, mask


@dataclasses.dataclass(frozen=True)
class TextInputConfig(InputAdapterConfig):
    """Token embeddings of ``channels`` for ``vocab_size`` ids and up to ``max_length`` positions, each
    element carrying its ``ngram`` - 1 preceding tokens too. The token tables start normal with standard
    deviation ``embedding_init_std``: the reference's 0.02, or larger where they are also the output layer of
    a masked language model trained from scratch, which otherwise sits at the unigram for its first few
    hundred steps (README)."""

    variable_length = True

    vocab_size: int = ByteTokenizer.vocab_size
    channels: int = 768
    max_length: int = 2048
    ngram: int = 1
    embedding_init_std: float = 0.02

    def __post_init__(self) -> None:
        require_positive(
            vocab_size=self.vocab_size,
            channels=self.channels,
            max_length=self.max_length,
            ngram=self.ngram,
        )
        require_positive_finite(embedding_init_std=self.embedding_init_std)

    @property
    def num_channels(self) -> int:
        return self.channels

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        ids = torch.randint(self.vocab_size, (batch, length or self.max_length), generator=generator)
        return ids, torch.ones(ids.shape, dtype=torch.bool)

    def build(self) -> TextInputAdapter:
        return TextInputAdapter(self)
