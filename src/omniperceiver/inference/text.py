"""Masked token prediction with the language Perceiver: fill the masked bytes (or subword tokens) of a text."""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from omniperceiver.adapters.text import ByteTokenizer

MASK_PATTERN = re.compile(r"\[MASK(?:\*(\d+))?\]")


def parse_masked(
    text: str, *, max_length: int | None = None, tokenizer: ByteTokenizer | None = None
) -> tuple[list[int], list[int]]:
    """A text with ``[MASK]`` (one masked token) or ``[MASK*N]`` (N tokens) spans -> (``tokenizer``'s ids,
    default bytes, with [CLS] and [SEP], positions of the masked ids). A text of more than ``max_length``
    tokens is an error, found before the ids are built."""
    spans = list(MASK_PATTERN.finditer(text))
    if not spans:
        raise ValueError("the text has no [MASK] or [MASK*N] span to fill")
    counts = [int(span.group(1) or 1) for span in spans]
    for span, count in zip(spans, counts, strict=True):
        if count < 1:
            raise ValueError(f"{span.group(0)} masks no bytes: use [MASK] or [MASK*N] with N >= 1")
    max_length = max_length or math.inf
    if 2 + sum(counts) > max_length:  # (before a huge span's ids are built)
        raise ValueError(f"the text is at least {2 + sum(counts):,} tokens, more than the model's {max_length}")
    tokenizer = tokenizer or ByteTokenizer()
    ids, masked, start = [ByteTokenizer.CLS], [], 0
    for span, count in zip(spans, counts, strict=True):
        ids += tokenizer.encode(text[start : span.start()], special_tokens=False)
        masked += range(len(ids), len(ids) + count)
        ids += [ByteTokenizer.MASK] * count
        start = span.end()
    ids += [*tokenizer.encode(text[start:], special_tokens=False), ByteTokenizer.SEP]
    if len(ids) > max_length:
        raise ValueError(f"the text is {len(ids):,} tokens with [CLS] and [SEP], more than the model's {max_length}")
    return ids, masked


@torch.inference_mode()
def fill_masks(model: nn.Module, text: str, tokenizer: ByteTokenizer | None = None) -> str:
    """The text with every masked token replaced by the model's most likely one (special ids are excluded);
    ``tokenizer``: the model's (default bytes)."""
    tokenizer = tokenizer or ByteTokenizer()
    ids, masked = parse_masked(text, max_length=model.config.input.max_length, tokenizer=tokenizer)
    device = next(model.parameters()).device
    tokens = torch.tensor([ids], device=device)
    logits = model(tokens, output_indices=torch.tensor(masked, device=device))[0]  # (masked, V)
    logits[:, : ByteTokenizer.OFFSET] = float("-inf")
    for position, token in zip(masked, logits.argmax(-1).tolist(), strict=True):
        ids[position] = token
    return tokenizer.decode(ids)
