"""Byte-level BPE (Hugging Face ``tokenizers``): subword ids for text, trained offline on a corpus and saved
beside a model as tokenizer.json. Ids 0-5 are the byte tokenizer's special tokens, 6-261 the 256 bytes, the
rest merges; every token stands for a fixed byte string, so any text round-trips and bits per byte stay
exact."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from omniperceiver.adapters.text import Bytes, ByteTokenizer
from omniperceiver.files import atomic_write, output_folder

TOKENIZER_FILE = "tokenizer.json"
CHUNK = 1 << 20  # bytes of text tokenized at a time


@functools.cache
def _byte_of_char() -> dict[str, int]:
    """The byte-level alphabet (GPT-2's): each byte as one printable character, and back."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in printable]
    chars = {b: chr(b) for b in printable} | {b: chr(256 + n) for n, b in enumerate(shifted)}
    return {char: byte for byte, char in chars.items()}


class BPETokenizer(ByteTokenizer):
    """A byte-level BPE tokenizer of ``vocab_size`` ids (a ``tokenizers.Tokenizer``): text in the special
    tokens' spelling ("[SEP]") is text, never a special id."""

    def __init__(self, tokenizer) -> None:
        vocabulary = tokenizer.get_vocab(with_added_tokens=True)
        if [vocabulary.get(name) for name in self.SPECIAL] != list(range(self.OFFSET)):
            raise ValueError(f"a BPE tokenizer here has the special tokens {list(self.SPECIAL)} as ids 0-5")
        by_char = _byte_of_char()
        pieces = [tokenizer.id_to_token(i) for i in range(self.OFFSET, tokenizer.get_vocab_size())]
        if any(piece is None or any(c not in by_char for c in piece) for piece in pieces):
            raise ValueError("not a byte-level BPE tokenizer: a token is not spelled in the byte-level alphabet")
        if tokenizer.normalizer is not None:
            raise ValueError("the tokenizer normalizes text; ids here must round-trip to the very bytes they read")
        self.tokenizer = tokenizer
        self.tokenizer.encode_special_tokens = True
        self.vocab_size = tokenizer.get_vocab_size()
        self.pieces = [b""] * self.OFFSET + [bytes(by_char[c] for c in piece) for piece in pieces]

    @classmethod
    def train(cls, data: Bytes, vocab_size: int) -> BPETokenizer:
        """Learn up to ``vocab_size`` ids (more than 262: the special ids, the bytes, merges) from the UTF-8
        text ``data`` (fewer where the text has no more pairs to merge)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        if vocab_size <= ByteTokenizer.vocab_size:
            raise ValueError(f"vocab_size {vocab_size}: a BPE needs more than {ByteTokenizer.vocab_size} ids")
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(cls.SPECIAL),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator(texts(data), trainer)
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """The tokenizer of a tokenizer.json, or of the model folder (or run folder) holding one."""
        from tokenizers import Tokenizer

        file = tokenizer_file(path)
        if file is None:
            raise FileNotFoundError(f"{path} holds no {TOKENIZER_FILE}")
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as error:  # the Rust parser's errors name no file
            raise ValueError(f"{file} is not a tokenizer file ({error})") from None
        try:
            return cls(tokenizer)
        except ValueError as error:
            raise ValueError(f"{file}: {error}") from None

    def encode(self, text: str | bytes, *, special_tokens: bool = True) -> list[int]:
        text = "".join(texts(text)) if isinstance(text, bytes) else text
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [self.CLS, *ids, self.SEP] if special_tokens else ids

    def token_bytes(self, i: int) -> bytes:
        return self.pieces[i]

    def ids_of(self, data: Bytes) -> np.ndarray:
        """The ids of ``data`` (UTF-8 text, no special ids), tokenized a line at a time, held in memory (2 bytes
        per token up to 65,536 ids)."""
        dtype = np.uint16 if self.vocab_size <= 1 << 16 else np.int32
        ids = [np.zeros(0, dtype=dtype)]
        for text in texts(data):
            encoded = self.tokenizer.encode_batch(text.splitlines(keepends=True), add_special_tokens=False)
            ids += [np.array(line.ids, dtype=dtype) for line in encoded]
        return np.concatenate(ids)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write tokenizer.json into ``directory`` (created if missing; atomically); returns its path."""
        path = output_folder(directory) / TOKENIZER_FILE
        text = self.tokenizer.to_str()
        atomic_write(path, lambda file: file.write(text.encode()))
        return path


def tokenizer_file(path: str | os.PathLike) -> Path | None:
    """The tokenizer.json at ``path``: the file, or in the model folder or run folder it names; None if none."""
    path = Path(path)
    for candidate in (path, path / TOKENIZER_FILE, path / "model" / TOKENIZER_FILE):
        if candidate.is_file():
            return candidate
    return None


def load_tokenizer(model_dir: str | os.PathLike) -> ByteTokenizer:
    """The tokenizer a model was trained with: the BPE saved beside it, else bytes."""
    return ByteTokenizer() if tokenizer_file(model_dir) is None else BPETokenizer.load(model_dir)


def texts(data: Bytes) -> Iterator[str]:
    """``data`` (UTF-8) as texts of about 1 MiB, each cut after a newline where one is near, else before a
    character; a byte that is not UTF-8 is an error naming its position."""
    start = 0
    while start < len(data):
        chunk = data[start : start + CHUNK]
        if start + len(chunk) < len(data):
            cut = chunk.rfind(b"\n") + 1
            if not cut:  # cut before the last character's first byte (UTF-8 continuation bytes are 10xxxxxx)
                cut = len(chunk) - 1
                while cut > 0 and chunk[cut] & 0xC0 == 0x80:
                    cut -= 1
            chunk = chunk[: max(cut, 1)]
        try:
            yield chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"byte {start + error.start:,} of the text is not UTF-8; a BPE reads UTF-8 text") from None
        start += len(chunk)
