"""A Perceiver AR as two graphs that a plain runtime can generate with (:mod:`omniperceiver.export.runtime`).

``prefill`` reads a left-padded prompt (B, L) with ``refill_latents`` latents, as the first full pass of
:func:`~omniperceiver.inference.generate` does, and returns the next-token logits (B, V) and the decoding state
at a fixed size: the cross-attention's keys and values of every position in S = ``max_seq_len`` slots
(B, H, S, d) with their mask (B, S) (True = a real token written there), each self-attention layer's keys and
values of the last N - 1 latents (layers, B, H, N - 1, d) with their mask (B, N - 1), and the number of
positions written (a 0-d int64). ``step`` reads one token per row (B, 1) with its mask (False: a finished row)
and that state, and returns the logits and the state one position on: the token's key and value written into
slot ``length`` of the cross-attention, the self-attention windows shifted by one. Both give the logits of the
eager model to float rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omniperceiver.export.graph import Axis, Graph, batch_axis
from omniperceiver.models.perceiver_ar import PerceiverAR

STATE = ("cross_keys", "cross_values", "key_mask", "layer_keys", "layer_values", "latent_mask", "length")


class SlotCache:
    """Keys and values (B, H, S, d) in S fixed slots: ``extend`` writes the new position's key and value into
    the slot that the one-hot ``slot`` (S,) marks, and returns all S slots."""

    def __init__(self, keys: Tensor, values: Tensor, slot: Tensor) -> None:
        self.keys, self.values, self.slot = keys, values, slot[:, None]

    def extend(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        self.keys = torch.where(self.slot, keys, self.keys)
        self.values = torch.where(self.slot, values, self.values)
        return self.keys, self.values


class WindowCache:
    """The last N - 1 latents' keys and values (B, H, N - 1, d): ``extend`` appends one and returns the N;
    ``keys``/``values`` then hold the last N - 1 of them."""

    def __init__(self, keys: Tensor, values: Tensor) -> None:
        self.keys, self.values = keys, values

    def extend(self, keys: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        keys, values = torch.cat([self.keys, keys], dim=2), torch.cat([self.values, values], dim=2)
        self.keys, self.values = keys[:, :, 1:], values[:, :, 1:]
        return keys, values


def last_slots(tensor: Tensor, slots: int, dim: int) -> Tensor:
    """The last ``slots`` entries of ``tensor`` along ``dim``, zero (False) filled in front where it has fewer."""
    shape = list(tensor.shape)
    shape[dim] = slots
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim).narrow(dim, tensor.shape[dim], slots)


def first_slots(tensor: Tensor, slots: int, dim: int) -> Tensor:
    """``tensor`` in the first of ``slots`` entries along ``dim``, zeros (False) after it."""
    shape = list(tensor.shape)
    shape[dim] = slots
    return torch.slice_scatter(tensor.new_zeros(shape), tensor, dim=dim, start=0, end=tensor.shape[dim])


class Prefill(nn.Module):
    """ids (B, L), mask (B, L) -> logits (B, V) of the next token and the decoding state (:data:`STATE`)."""

    def __init__(self, model: PerceiverAR, refill_latents: int) -> None:
        super().__init__()
        self.model, self.refill_latents = model, refill_latents

    def forward(self, ids: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
        model = self.model
        slots, window = model.config.max_seq_len, model.config.ar.num_latents - 1
        cache = model.new_cache()
        logits = model(ids, mask=mask, num_latents=self.refill_latents, cache=cache)[:, -1]
        latents = cache.layers[0].keys.shape[2]
        layer_keys = torch.stack([last_slots(layer.keys, window, 2) for layer in cache.layers])
        layer_values = torch.stack([last_slots(layer.values, window, 2) for layer in cache.layers])
        return (
            logits,
            first_slots(cache.cross.keys, slots, 2),
            first_slots(cache.cross.values, slots, 2),
            first_slots(mask, slots, 1),
            layer_keys,
            layer_values,
            last_slots(mask.narrow(1, ids.shape[1] - latents, latents), window, 1),
            ids.shape[1] * torch.ones((), dtype=torch.int64, device=ids.device),
        )


class Step(nn.Module):
    """ids (B, 1), mask (B, 1) and the state -> logits (B, V) and the state one position on."""

    def __init__(self, model: PerceiverAR) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        ids: Tensor,
        mask: Tensor,
        cross_keys: Tensor,
        cross_values: Tensor,
        key_mask: Tensor,
        layer_keys: Tensor,
        layer_values: Tensor,
        latent_mask: Tensor,
        length: Tensor,
    ) -> tuple[Tensor, ...]:
        model, core = self.model, self.model.core
        position = (key_mask.sum(dim=1, keepdim=True) + mask.long() - 1).clamp(min=0)  # (B, 1): real ones before
        x = model.embedding(ids)
        if model.position is not None:
            x = x + model.position(position)
        slot = torch.arange(key_mask.shape[1], device=ids.device) == length  # (S,)
        key_mask = key_mask | (slot & mask)
        cross = SlotCache(cross_keys, cross_values, slot)
        h, _ = core.cross_attention(
            x, x, mask=key_mask[:, None, None], query_positions=position, key_positions=position, cache=cross
        )
        latent_mask = torch.cat([latent_mask, mask], dim=1)  # (B, N): the window this token's layers see
        windows = [WindowCache(keys, values) for keys, values in zip(layer_keys, layer_values, strict=True)]
        for layer, window in zip(core.layers, windows, strict=True):
            h = layer(h, mask=latent_mask[:, None, None], positions=position, cache=window)
        logits = model.output(core.norm(h))[:, -1]
        return (
            logits,
            cross.keys,
            cross.values,
            key_mask,
            torch.stack([window.keys for window in windows]),
            torch.stack([window.values for window in windows]),
            latent_mask[:, 1:],
            length + 1,
        )


def generation_graphs(model: PerceiverAR, refill_latents: int | None = None) -> list[Graph]:
    """``prefill`` and, where generation takes cached steps (``refill_latents`` < N), ``step``;
    ``refill_latents`` defaults to generate's (N // 2)."""
    config = model.config
    latents = config.ar.num_latents
    refill = max(1, latents // 2) if refill_latents is None else refill_latents
    if not 1 <= refill <= latents:
        raise ValueError(f"refill_latents must be in [1, {latents}] (num_latents), got {refill}")
    prefill = Prefill(model, refill)
    outputs = ("logits", *(f"present_{name}" for name in STATE))
    if refill >= config.max_seq_len:
        raise ValueError(f"refill_latents must be below max_seq_len ({config.max_seq_len}) to export, got {refill}")
    traced = max(config.max_seq_len // 2, refill + 1)
    length = Axis("length", traced, traced, (config.max_seq_len, refill + 1), low=refill + 1, high=config.max_seq_len)

    def prompt(sizes: dict[str, int], generator: torch.Generator) -> tuple[Tensor, ...]:
        ids = torch.randint(config.vocab_size, (sizes["batch"], sizes.get("length", traced)), generator=generator)
        return ids, torch.ones(ids.shape, dtype=torch.bool)

    graphs = [
        Graph(
            name="prefill",
            module=prefill,
            inputs=("ids", "mask"),
            outputs=outputs,
            axes={"ids": {0: "batch", 1: "length"}, "mask": {0: "batch", 1: "length"}},
            dims=(batch_axis(), length),
            example=prompt,
        )
    ]
    if refill == latents:
        return graphs

    def token(sizes: dict[str, int], generator: torch.Generator) -> tuple[Tensor, ...]:
        with torch.no_grad():
            state = prefill(*prompt({"batch": sizes["batch"]}, generator))[1:]
        ids = torch.randint(config.vocab_size, (sizes["batch"], 1), generator=generator)
        return ids, torch.ones(ids.shape, dtype=torch.bool), *state

    state_axes = {name: {0: "batch"} for name in STATE}
    state_axes.update(layer_keys={1: "batch"}, layer_values={1: "batch"}, length={})
    graphs.append(
        Graph(
            name="step",
            module=Step(model),
            inputs=("ids", "mask", *(f"past_{name}" for name in STATE)),
            outputs=outputs,
            axes={"ids": {0: "batch"}, "mask": {0: "batch"}, **{f"past_{n}": a for n, a in state_axes.items()}},
            dims=(batch_axis(),),
            example=token,
        )
    )
    return graphs
