"""Perceiver AR: the last N positions of a sequence are the latents.

They cross-attend causally to the whole sequence (prefix and themselves), then a causal self-attention stack
runs over them. Queries and keys carry rotary position embeddings. With an :class:`ARCache`, a call on new
positions projects only those positions and attends over everything cached, so incremental decoding costs
O(L) per step instead of recomputing O(L·N).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from omniperceiver.core.attention import causal_mask, check_mask, seq2seq_mask
from omniperceiver.core.blocks import CrossAttentionBlock, SelfAttentionBlock
from omniperceiver.core.config import Config, require, require_optional_positive, require_positive
from omniperceiver.core.kv_cache import KVCache
from omniperceiver.core.position import RotaryPositionEmbedding


@dataclasses.dataclass(frozen=True)
class ARConfig(Config):
    """Perceiver AR stack over embedded sequences (B, L, D = ``channels``) with up to N = ``num_latents``.

    ``rotary_channels`` rotates that many channels of every head (default: all of them; 0 disables rotary).
    """

    channels: int
    num_latents: int
    num_heads: int = 8
    num_cross_attention_heads: int | None = None
    num_self_attention_layers: int = 6
    cross_attention_widening_factor: int = 4
    self_attention_widening_factor: int = 4
    rotary_channels: int | None = None
    dropout: float = 0.0

    def __post_init__(self) -> None:
        require_positive(
            channels=self.channels,
            num_latents=self.num_latents,
            num_heads=self.num_heads,
            num_self_attention_layers=self.num_self_attention_layers,
            cross_attention_widening_factor=self.cross_attention_widening_factor,
            self_attention_widening_factor=self.self_attention_widening_factor,
        )
        require_optional_positive(num_cross_attention_heads=self.num_cross_attention_heads)
        for field, heads in (("num_heads", self.num_heads), ("num_cross_attention_heads", self.cross_heads)):
            require(self.channels % heads == 0, field, heads, f"a divisor of channels ({self.channels})")
        head_channels = self.channels // max(self.num_heads, self.cross_heads)
        rotary = self.rotary_channels
        require(
            rotary is None or (rotary >= 0 and rotary % 2 == 0 and rotary <= head_channels),
            "rotary_channels",
            rotary,
            f"None (all) or an even number in [0, {head_channels}] (the channels per head)",
        )
        require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "a probability in [0, 1)")

    @property
    def cross_heads(self) -> int:
        return self.num_cross_attention_heads or self.num_heads

    def build(self) -> PerceiverARCore:
        return PerceiverARCore(self)


@dataclasses.dataclass
class ARCache:
    """What incremental decoding keeps: keys/values of every position for the cross-attention, of the
    latent positions for each self-attention layer, and the padding mask of every position seen (B, L)."""

    cross: KVCache
    layers: list[KVCache]
    mask: Tensor | None = None

    @property
    def length(self) -> int:
        """Number of positions seen so far."""
        return len(self.cross)

    def padding_mask(self, mask: Tensor | None, batch: int, length: int) -> Tensor | None:
        """The padding mask (B, seen + L) of the seen positions followed by L new ones (``mask`` (B, L), None =
        all real); None when every position is real. The cache is left unchanged."""
        if self.mask is None and mask is None:
            return None
        device = (mask if mask is not None else self.mask).device
        old = self.mask if self.mask is not None else torch.ones(batch, self.length, dtype=torch.bool, device=device)
        new = mask if mask is not None else torch.ones(batch, length, dtype=torch.bool, device=device)
        return torch.cat([old, new], dim=1)


def sequence_positions(mask: Tensor | None, batch: int, length: int, seen: int, device: torch.device) -> Tensor:
    """Positions (B, L) of the last L of ``seen + L`` positions: the number of real positions before each, by
    the padding mask (B, seen + L) (None = all real)."""
    if mask is None:
        return torch.arange(seen, seen + length, device=device).expand(batch, -1)
    return (mask.cumsum(dim=1) - 1).clamp(min=0)[:, -length:]


class PerceiverARCore(nn.Module):
    """Embedded sequence (B, L, D) -> hidden states (B, n, D) of its last n positions, causally."""

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.config = c = config

        def rotary(heads: int) -> RotaryPositionEmbedding | None:
            channels = c.channels // heads if c.rotary_channels is None else c.rotary_channels
            return RotaryPositionEmbedding(channels) if channels else None

        self.cross_attention = CrossAttentionBlock(
            query_channels=c.channels,
            kv_channels=c.channels,
            num_heads=c.cross_heads,
            widening_factor=c.cross_attention_widening_factor,
            dropout=c.dropout,
            rotary=rotary(c.cross_heads),
        )
        self.layers = nn.ModuleList(
            SelfAttentionBlock(
                channels=c.channels,
                num_heads=c.num_heads,
                widening_factor=c.self_attention_widening_factor,
                dropout=c.dropout,
                rotary=rotary(c.num_heads),
            )
            for _ in range(c.num_self_attention_layers)
        )
        self.norm = nn.LayerNorm(c.channels)

    def new_cache(self) -> ARCache:
        return ARCache(cross=KVCache(), layers=[KVCache() for _ in self.layers])

    def forward(
        self,
        x: Tensor,
        *,
        num_latents: int | None = None,
        mask: Tensor | None = None,
        positions: Tensor | None = None,
        cache: ARCache | None = None,
        source_lengths: Tensor | None = None,
    ) -> Tensor:
        """Process x (B, L, D); return the hidden states (B, n, D) of its last n positions.

        Without a cache, or with an empty one, n = ``num_latents`` (default N, at most L). With a cache that
        has seen positions, x holds the next positions and all of them are latents (n = L); once the latents
        exceed N, the oldest leave the self-attention window (they stay visible to the cross-attention).
        ``mask`` (B, L) marks real positions (False = padding); ``positions`` (B, L) are the rotary positions,
        by default the count of real positions before each one. ``source_lengths`` (B,) makes the first S_b
        positions of each sequence a source read bidirectionally (:func:`seq2seq_mask`; the rest stays causal),
        in a pass without cached positions: cached steps continue the target.
        """
        c = self.config
        if x.dim() != 3 or x.shape[-1] != c.channels:
            raise ValueError(f"x must have shape (B, L, D={c.channels}), got {tuple(x.shape)}")
        batch, length = x.shape[:2]
        if mask is not None:
            check_mask(mask, "(B, L)", (batch, length))
        if source_lengths is not None:
            require(
                source_lengths.shape == (batch,) and not source_lengths.is_floating_point(),
                "source_lengths",
                tuple(source_lengths.shape),
                f"integers (B,) = ({batch},)",
            )
            require(not (cache is not None and cache.length), "source_lengths", "given", "none with a cached step")
        if cache is not None and cache.length:
            n = length
            require(
                n <= c.num_latents,
                "x.shape[1]",
                n,
                f"at most num_latents ({c.num_latents}) new positions per cached step",
            )
        else:
            require(
                num_latents is None or 1 <= num_latents <= c.num_latents,
                "num_latents",
                num_latents,
                f"None or an integer in [1, {c.num_latents}]",
            )
            n = num_latents or c.num_latents
            n = n if length >= n else length  # (not min(), which export traces symbolically: n stays a constant)

        seen = cache.length if cache is not None else 0
        full_mask = mask
        if cache is not None:
            full_mask = cache.mask = cache.padding_mask(mask, batch, length)
        if positions is None:
            positions = sequence_positions(full_mask, batch, length, seen, x.device)
        elif positions.shape != (batch, length):
            raise ValueError(f"positions must have shape (B, L) = {(batch, length)}, got {tuple(positions.shape)}")

        latent_positions = positions.narrow(1, length - n, n)  # (not [:, -n:]: traced, its size stays n)
        keys = seen + length
        if source_lengths is None:
            cross_mask = causal_mask(n, keys, device=x.device)
        else:  # (B, 1, n, L): no cached keys here
            cross_mask = seq2seq_mask(latent_positions, positions, source_lengths)[:, None]
        if full_mask is not None:
            cross_mask = cross_mask & full_mask[:, None, None, -keys:]
        h, _ = self.cross_attention(
            x.narrow(1, length - n, n),
            x,
            mask=cross_mask,
            query_positions=latent_positions,
            key_positions=positions,
            cache=cache.cross if cache is not None else None,
        )
        for index, layer in enumerate(self.layers):
            layer_cache = None
            window = n
            if cache is not None:
                layer_cache = cache.layers[index]
                layer_cache.keep_last(c.num_latents - n)
                window += len(layer_cache)
            if source_lengths is None:
                self_mask = causal_mask(n, window, device=x.device)
            else:
                self_mask = seq2seq_mask(latent_positions, latent_positions, source_lengths)[:, None]
            if full_mask is not None:
                self_mask = self_mask & full_mask[:, None, None].narrow(3, full_mask.shape[1] - window, window)
            h = layer(h, mask=self_mask, positions=latent_positions, cache=layer_cache)
        return self.norm(h)
