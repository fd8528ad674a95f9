"""The Perceiver IO decoder: output queries cross-attend to the latents, then a final projection."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from omniperceiver.core.blocks import CrossAttentionBlock
from omniperceiver.core.config import Config, check_heads, require_optional_positive, require_positive
from omniperceiver.core.linear import Linear
from omniperceiver.core.position import check_indices
from omniperceiver.core.queries import QueryConfig


@dataclasses.dataclass(frozen=True)
class DecoderConfig(Config):
    """Decoder from latents (B, N, D = ``latent_channels``) to outputs (B, O, K = ``output_channels``).

    ``queries`` says where the O queries of E channels come from. ``output_channels=None`` keeps E
    channels (no final projection). ``qk_channels`` defaults to D, ``v_channels`` to ``qk_channels``.
    """

    queries: QueryConfig
    latent_channels: int
    output_channels: int | None = None
    num_heads: int = 1
    qk_channels: int | None = None
    v_channels: int | None = None
    widening_factor: int = 1
    use_query_residual: bool = False
    dropout: float = 0.0

    def __post_init__(self) -> None:
        require_positive(
            latent_channels=self.latent_channels,
            num_heads=self.num_heads,
            widening_factor=self.widening_factor,
        )
        require_optional_positive(
            output_channels=self.output_channels, qk_channels=self.qk_channels, v_channels=self.v_channels
        )
        qk = self.qk_channels or self.latent_channels
        check_heads("num_heads", self.num_heads, qk_channels=qk, v_channels=self.v_channels or qk)

    def build(self) -> PerceiverDecoder:
        return PerceiverDecoder(self)


class PerceiverDecoder(nn.Module):
    """Latents (B, N, D) -> outputs (B, O, K), all O at once, in chunks, or for a subset of indices."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = c = config
        self.queries = c.queries.build()
        self.cross_attention = CrossAttentionBlock(
            query_channels=self.queries.num_channels,
            kv_channels=c.latent_channels,
            num_heads=c.num_heads,
            qk_channels=c.qk_channels,
            v_channels=c.v_channels,
            widening_factor=c.widening_factor,
            use_query_residual=c.use_query_residual,
            dropout=c.dropout,
        )
        self.projection = (
            nn.Identity() if c.output_channels is None else Linear(self.queries.num_channels, c.output_channels)
        )

    def forward(
        self,
        latents: Tensor,
        inputs: Tensor,
        *,
        indices: Tensor | None = None,
        chunk_size: int | None = None,
    ) -> Tensor:
        """Decode the outputs at flat ``indices`` (O',) (all O when None), ``chunk_size`` queries at a time.

        ``inputs`` (B, M, C) are the adapted encoder inputs, used by input-derived queries. Chunked and
        subset decoding give exactly the corresponding rows of full decoding: every query attends to the
        latents independently.
        """
        if latents.dim() != 3 or latents.shape[-1] != self.config.latent_channels:
            raise ValueError(
                f"latents must have shape (B, N, D={self.config.latent_channels}), got {tuple(latents.shape)}"
            )
        num_queries = self.queries.num_queries(inputs)
        if indices is not None:
            check_indices(indices, num_queries, "the decoder's number of queries")
        if chunk_size is None:
            return self._decode(latents, inputs, indices)
        require_positive(chunk_size=chunk_size)
        if indices is None:
            indices = torch.arange(num_queries, device=latents.device)
        return torch.cat([self._decode(latents, inputs, chunk) for chunk in indices.split(chunk_size)], dim=1)

    def _decode(self, latents: Tensor, inputs: Tensor, indices: Tensor | None) -> Tensor:
        queries = self.queries(inputs, indices)
        out, _ = self.cross_attention(queries, latents)
        return self.projection(out)
