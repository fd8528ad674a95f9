"""Pre-norm attention blocks with the reference numerics: LayerNorm eps 1e-5, exact GELU, 1/sqrt(head dim).

A block computes ``h = attention(LN(x), LN(kv)) [+ x]`` then ``h + MLP(LN(h))``. The outputs of its
LayerNorms and GELU are recomputed for the backward pass rather than kept (:mod:`omniperceiver.core.recompute`).
"""

from __future__ import annotations

from torch import Tensor, nn

from omniperceiver.core import recompute
from omniperceiver.core.attention import MultiHeadAttention
from omniperceiver.core.kv_cache import KVCache
from omniperceiver.core.linear import Linear
from omniperceiver.core.position import RotaryPositionEmbedding


class MLP(nn.Sequential):
    """Linear(C -> w·C), exact GELU, Linear(w·C -> C)."""

    def __init__(self, channels: int, widening_factor: int) -> None:
        super().__init__(
            Linear(channels, widening_factor * channels),
            nn.GELU(),
            Linear(widening_factor * channels, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        expand, activation, project = self
        return project(recompute.linear_input(activation, expand(x)))


class CrossAttentionBlock(nn.Module):
    """Queries (B, O, E) attend over inputs (B, M, C); output (B, O, E).

    ``qk_channels`` defaults to C (the reference's ``cross_attention_shape_for_attention="kv"``),
    ``v_channels`` to ``qk_channels``. ``use_query_residual`` adds the un-normalized queries to the attention
    output; leave it off when queries and outputs mean different things (positions vs pixels).
    """

    def __init__(
        self,
        *,
        query_channels: int,
        kv_channels: int,
        num_heads: int = 1,
        qk_channels: int | None = None,
        v_channels: int | None = None,
        widening_factor: int = 1,
        use_query_residual: bool = True,
        dropout: float = 0.0,
        rotary: RotaryPositionEmbedding | None = None,
    ) -> None:
        super().__init__()
        qk_channels = qk_channels or kv_channels
        self.query_norm = nn.LayerNorm(query_channels)
        self.kv_norm = nn.LayerNorm(kv_channels)
        self.attention = MultiHeadAttention(
            query_channels=query_channels,
            kv_channels=kv_channels,
            qk_channels=qk_channels,
            v_channels=v_channels or qk_channels,
            output_channels=query_channels,
            num_heads=num_heads,
            dropout=dropout,
            rotary=rotary,
        )
        self.use_query_residual = use_query_residual
        self.mlp_norm = nn.LayerNorm(query_channels)
        self.mlp = MLP(query_channels, widening_factor)

    def forward(
        self,
        queries: Tensor,
        inputs: Tensor,
        *,
        mask: Tensor | None = None,
        query_positions: Tensor | None = None,
        key_positions: Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Returns (B, O, E) and the attention probabilities (B, H, O, M) when ``need_weights``."""
        with recompute.scope():
            h, weights = self.attention(
                recompute.linear_input(self.query_norm, queries),
                recompute.linear_input(self.kv_norm, inputs),
                mask=mask,
                query_positions=query_positions,
                key_positions=key_positions,
                cache=cache,
                need_weights=need_weights,
            )
            if self.use_query_residual:
                h = h + queries
            return h + self.mlp(recompute.linear_input(self.mlp_norm, h)), weights


class SelfAttentionBlock(nn.Module):
    """Latents (B, N, D) attend over themselves (optionally causally, with a cache); output (B, N, D)."""

    def __init__(
        self,
        *,
        channels: int,
        num_heads: int = 8,
        qk_channels: int | None = None,
        v_channels: int | None = None,
        widening_factor: int = 1,
        dropout: float = 0.0,
        rotary: RotaryPositionEmbedding | None = None,
    ) -> None:
        super().__init__()
        qk_channels = qk_channels or channels
        self.norm = nn.LayerNorm(channels)
        self.attention = MultiHeadAttention(
            query_channels=channels,
            kv_channels=channels,
            qk_channels=qk_channels,
            v_channels=v_channels or qk_channels,
            output_channels=channels,
            num_heads=num_heads,
            dropout=dropout,
            rotary=rotary,
        )
        self.mlp_norm = nn.LayerNorm(channels)
        self.mlp = MLP(channels, widening_factor)

    def forward(
        self,
        x: Tensor,
        *,
        mask: Tensor | None = None,
        positions: Tensor | None = None,
        cache: KVCache | None = None,
    ) -> Tensor:
        with recompute.scope():
            normed = recompute.linear_input(self.norm, x)
            h, _ = self.attention(
                normed, normed, mask=mask, query_positions=positions, key_positions=positions, cache=cache
            )
            h = h + x
            return h + self.mlp(recompute.linear_input(self.mlp_norm, h))
