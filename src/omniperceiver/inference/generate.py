"""Autoregressive generation with a Perceiver AR: batched, left-padded, cached, with a sliding context.

The latent schedule (Perceiver AR paper, appendix E.3): the self-attention stack only holds N latents, so a
cache cannot grow forever. A full forward pass over the context predicts with ``refill_latents`` latents;
each following token becomes one more latent, computed incrementally from the cache, until there are N; the
next token then starts a new full forward pass. One full pass thus serves N - refill_latents + 1 tokens.
``use_cache=False`` follows the same schedule but recomputes the full forward pass for every token, so both
give the same logits and greedy decoding the same tokens.

The context: at each full pass every sequence keeps its last ``max_seq_len - k`` tokens, where k is the number
of cached tokens that follow before the next full pass, so the context never exceeds ``max_seq_len``; older
tokens (prompt or generated) are dropped. Costs, for a context of L tokens, D channels and N latents: a full
pass projects all L tokens and cross-attends from up to N latents (O(L·D² + L·N·D)); a cached step projects
one token and attends over the L cached keys and the latents (O(L·D + N·D + D²) per layer).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from omniperceiver.core.config import require
from omniperceiver.inference.sampling import Sampling
from omniperceiver.models.perceiver_ar import PerceiverAR


def left_pad(rows: Sequence[Tensor], pad_id: int) -> tuple[Tensor, Tensor]:
    """Id sequences (L_i,) -> ids (B, L) left-padded with ``pad_id`` and the mask (B, L), True = real token."""
    length = max(len(row) for row in rows)
    ids = rows[0].new_full((len(rows), length), pad_id)
    mask = torch.zeros(len(rows), length, dtype=torch.bool, device=ids.device)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = row
        mask[i, length - len(row) :] = True
    return ids, mask


def prompt_rows(prompt_ids: Tensor | Sequence[Sequence[int] | Tensor], device: torch.device) -> list[Tensor]:
    """A (B, L) tensor or a sequence of 1-D id sequences -> non-empty 1-D int64 tensors on ``device``."""
    if isinstance(prompt_ids, Tensor) and prompt_ids.dim() != 2:
        raise ValueError(f"a prompt tensor must have shape (B, L), got {tuple(prompt_ids.shape)}")
    rows = [torch.as_tensor(row, dtype=torch.long, device=device) for row in prompt_ids]
    if not rows:
        raise ValueError("expected at least one prompt, got none")
    for i, row in enumerate(rows):
        if row.dim() != 1 or len(row) == 0:
            raise ValueError(f"prompt {i} must be a non-empty 1-D sequence of ids, got shape {tuple(row.shape)}")
    return rows


@torch.inference_mode()
def generate(
    model: PerceiverAR,
    prompt_ids: Tensor | Sequence[Sequence[int] | Tensor],
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int | None = None,
    use_cache: bool = True,
    refill_latents: int | None = None,
    generator: torch.Generator | None = None,
    stream: Callable[[Tensor], object] | None = None,
    source_lengths: Sequence[int] | None = None,
) -> list[Tensor]:
    """Continue each prompt by up to ``max_new_tokens`` tokens; return the new tokens of each, a 1-D tensor
    that ends with ``eos_id`` if the sequence emitted it (and is then shorter).

    ``prompt_ids`` is a (B, L) tensor or B id sequences of any lengths (batched with left padding and a mask,
    so each sequence gets the tokens it would get alone). ``temperature`` 0 is greedy decoding; ``top_k`` and
    ``top_p`` restrict sampling (see :class:`Sampling`). After a sequence emits ``eos_id``, it gets ``pad_id``
    (default the config's ``pad_id``, else 0) and the others go on. ``refill_latents`` (default N // 2, in
    [1, N]) is the number of latents of a full pass (see the module docstring: N means no caching).
    ``stream`` is called after every step with its tokens (B,). ``source_lengths`` makes the first S_i tokens
    of each prompt a source read bidirectionally (:func:`~omniperceiver.core.attention.seq2seq_mask`), in every
    full pass (less what the sliding context dropped); the continuation stays causal. Call ``model.eval()``
    first: in training mode dropout makes every call differ.
    """
    config = model.config
    latents = config.ar.num_latents
    refill = max(1, latents // 2) if refill_latents is None else refill_latents
    require(1 <= refill <= latents, "refill_latents", refill_latents, f"None or an integer in [1, {latents}]")
    require(max_new_tokens >= 0, "max_new_tokens", max_new_tokens, "an integer >= 0")
    sampling = Sampling(temperature, top_k, top_p)
    pad = pad_id if pad_id is not None else (config.pad_id or 0)
    rows = prompt_rows(prompt_ids, model.embedding.weight.device)
    sources = _source_lengths(source_lengths, rows)
    period = latents - refill + 1  # tokens per full forward pass
    finished = torch.zeros(len(rows), dtype=torch.bool, device=rows[0].device)
    active = ~finished  # the rows that took the last token
    steps: list[Tensor] = []
    cache, keep = None, config.max_seq_len
    for step in range(max_new_tokens):
        phase = step % period
        if phase == 0:
            keep = config.max_seq_len - (min(period, max_new_tokens - step) - 1)
        if use_cache and phase > 0:
            logits = model(steps[-1][:, None], mask=active[:, None], cache=cache)
        else:
            context = [row[-(keep + phase) :] for row in rows]
            ids, mask = left_pad(context, pad)
            cache = model.new_cache() if use_cache else None
            kept = None
            if sources is not None:  # the source tokens still in each context
                dropped = torch.tensor([len(row) - len(c) for row, c in zip(rows, context, strict=True)])
                kept = (sources - dropped.to(sources.device)).clamp(min=0)
            logits = model(ids, mask=mask, num_latents=refill + phase, cache=cache, source_lengths=kept)
        active = ~finished
        token = torch.where(active, sampling(logits[:, -1], generator), pad)
        steps.append(token)
        if stream is not None:
            stream(token)
        took = active.tolist()
        rows = [torch.cat([row, token[i : i + 1]]) if took[i] else row for i, row in enumerate(rows)]
        if eos_id is not None:
            finished |= token == eos_id
            if finished.all():
                break
    tokens = torch.stack(steps, dim=1) if steps else rows[0].new_empty(len(rows), 0)  # (B, T)
    return [until_eos(row, eos_id) for row in tokens]


def _source_lengths(lengths: Sequence[int] | None, rows: list[Tensor]) -> Tensor | None:
    """The source length of each prompt (B,), each in [0, its length], or None."""
    if lengths is None:
        return None
    lengths = [int(n) for n in lengths]
    if len(lengths) != len(rows) or any(not 0 <= n <= len(row) for n, row in zip(lengths, rows, strict=False)):
        raise ValueError(
            f"source_lengths must give each of the {len(rows)} prompts a length in [0, its length "
            f"{[len(row) for row in rows]}], got {lengths}"
        )
    return torch.tensor(lengths, device=rows[0].device)


def until_eos(tokens: Tensor, eos_id: int | None) -> Tensor:
    """Tokens (T,) up to and including the first ``eos_id``."""
    hits = (tokens == eos_id).nonzero() if eos_id is not None else tokens.new_empty(0)
    return tokens[: int(hits[0]) + 1] if len(hits) else tokens
