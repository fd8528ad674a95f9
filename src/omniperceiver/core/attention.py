"""The one attention primitive, and the multi-head attention module built on it.

Every path of the library (encoder cross-attention, latent self-attention, decoder cross-attention, causal
Perceiver AR attention and cached decoding) goes through :func:`attend`, which runs the kernel that the compute
policy picks for the call (:mod:`omniperceiver.core.kernels.policy`: SDPA's fused kernels, materialized or
chunked attention). Masks are boolean with SDPA's meaning: ``True`` = this key may be attended.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from omniperceiver.core.kernels.materialized import materialized_with_weights
from omniperceiver.core.kernels.policy import KERNELS, AttentionCall, active_policy, traceable_kernel
from omniperceiver.core.kv_cache import KVCache
from omniperceiver.core.linear import Linear
from omniperceiver.core.position import RotaryPositionEmbedding


def check_mask(mask: Tensor, layout: str, shape: tuple[int, ...]) -> None:
    """Raise ValueError unless ``mask`` is a bool tensor (True = real / may be attended) of ``shape``,
    whose dimensions ``layout`` names, e.g. "(B, M)"."""
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"mask must be a bool tensor of shape {layout} = {tuple(shape)}, got {mask.dtype} of shape "
            f"{tuple(mask.shape)}"
        )


def key_padding_mask(mask: Tensor, batch_size: int, num_keys: int) -> Tensor:
    """Check an input padding mask (B, M) and turn it into an attention mask (B, 1, 1, M)."""
    check_mask(mask, "(B, M)", (batch_size, num_keys))
    return mask[:, None, None, :]


def causal_mask(num_queries: int, num_keys: int, device: torch.device | None = None) -> Tensor:
    """Boolean (O, M) mask for queries that are the last O of M positions: query i sees keys j <= i + M - O."""
    if num_queries > num_keys:
        raise ValueError(f"causal attention needs num_queries <= num_keys, got {num_queries} > {num_keys}")
    offset = num_keys - num_queries
    query_pos = torch.arange(num_queries, device=device)[:, None] + offset
    return torch.arange(num_keys, device=device)[None, :] <= query_pos


def seq2seq_mask(query_positions: Tensor, key_positions: Tensor, source_lengths: Tensor) -> Tensor:
    """Boolean (B, O, M) sequence-to-sequence mask (UniLM) for queries and keys at sequence positions (B, O)
    and (B, M) of sequences whose first S_b positions (``source_lengths`` (B,)) are a source: a query sees the
    keys at or before its position (causal), and a query in the source sees the whole source (the source is
    read bidirectionally, the target causally). ``source_lengths`` 0 gives the causal mask."""
    query, key = query_positions[:, :, None], key_positions[:, None, :]
    source = source_lengths[:, None, None]
    return (key <= query) | ((query < source) & (key < source))


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    dropout: float = 0.0,
    need_weights: bool = False,
    kernel: str | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention of q (B, H, O, d) over k (B, H, M, d) and v (B, H, M, dv).

    ``mask`` is boolean and broadcastable to (B, H, O, M); ``True`` = may be attended. A query row whose keys
    are all masked returns zeros (and zero gradients), never NaN. Scores are scaled by 1/sqrt(d).

    Returns the output (B, H, O, dv) and, only when ``need_weights`` is set, the attention probabilities
    (B, H, O, M). Unless they are asked for, the probabilities are never returned, and the compute policy picks
    the kernel (under ``torch.compile``, a traceable choice from the shapes alone); ``kernel`` names one to
    force where it can serve (:data:`~omniperceiver.core.kernels.policy.KERNELS`).
    """
    visible = None
    if mask is not None:
        visible = mask.any(dim=-1, keepdim=True)
        mask = mask | ~visible  # rows without any key attend uniformly, then are zeroed below
    scale = 1.0 / math.sqrt(q.shape[-1])
    if need_weights:
        out, weights = materialized_with_weights(q, k, v, mask=mask, dropout=dropout, scale=scale)
        if visible is not None:
            out, weights = out * visible, weights * visible
        return out, weights
    if torch.compiler.is_compiling():
        run = traceable_kernel(q, k, v, dropout=dropout).run
    else:
        call = AttentionCall.of(q, k, v, mask=mask, dropout=dropout)
        run = active_policy(q.device).kernel(call, forced=kernel).run
    out = run(q, k, v, mask=mask, dropout=dropout, scale=scale)
    if visible is not None:
        out = out * visible
    return out, None


class MultiHeadAttention(nn.Module):
    """Multi-head attention: queries (B, O, E) attend over keys/values (B, M, C); output (B, O, output_channels).

    Q and K are projected to ``qk_channels``, V to ``v_channels`` (both split over ``num_heads``), and the
    concatenated heads are projected to ``output_channels``. Inputs are used as given: normalization belongs
    to the block that owns this module.
    """

    def __init__(
        self,
        *,
        query_channels: int,
        kv_channels: int,
        qk_channels: int,
        v_channels: int,
        output_channels: int,
        num_heads: int,
        dropout: float = 0.0,
        rotary: RotaryPositionEmbedding | None = None,
    ) -> None:
        super().__init__()
        for name, channels in (("qk_channels", qk_channels), ("v_channels", v_channels)):
            if channels % num_heads:
                raise ValueError(f"{name} ({channels}) must be divisible by num_heads ({num_heads})")
        if rotary is not None and rotary.channels > qk_channels // num_heads:
            raise ValueError(
                f"rotary channels ({rotary.channels}) exceed the qk channels per head "
                f"({qk_channels} // {num_heads} = {qk_channels // num_heads})"
            )
        self.num_heads = num_heads
        self.dropout = dropout
        self.rotary = rotary
        self.kernel: str | None = None  # forced by the model's config (attention_kernel), see force_kernel
        self.query = Linear(query_channels, qk_channels)
        self.key = Linear(kv_channels, qk_channels)
        self.value = Linear(kv_channels, v_channels)
        self.output = Linear(v_channels, output_channels)

    def _split_heads(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(
        self,
        queries: Tensor,
        keys_values: Tensor,
        *,
        mask: Tensor | None = None,
        query_positions: Tensor | None = None,
        key_positions: Tensor | None = None,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """Attend ``queries`` (B, O, E) over ``keys_values`` (B, M, C).

        ``mask`` is boolean, broadcastable to (B, H, O, M_total) where M_total counts cached keys too.
        ``query_positions`` (B, O) and ``key_positions`` (B, M) are needed when the module has rotary
        embeddings. With a ``cache``, the new keys and values are appended to it and attention runs over all
        cached keys. Returns (B, O, output_channels) and the probabilities (B, H, O, M_total) if asked.
        """
        q = self._split_heads(self.query(queries))
        k = self._split_heads(self.key(keys_values))
        v = self._split_heads(self.value(keys_values))
        if self.rotary is not None:
            if query_positions is None or key_positions is None:
                raise ValueError("attention with rotary embeddings needs query_positions and key_positions")
            q = self.rotary(q, query_positions)
            k = self.rotary(k, key_positions)
        if cache is not None:
            k, v = cache.extend(k, v)
        out, weights = attend(
            q,
            k,
            v,
            mask=mask,
            dropout=self.dropout if self.training else 0.0,
            need_weights=need_weights,
            kernel=self.kernel,
        )
        out = out.transpose(1, 2).flatten(2)
        return self.output(out), weights


def force_kernel(model: nn.Module, kernel: str | None) -> None:
    """Make every attention of ``model`` run ``kernel`` where it can serve (None: as the policy picks)."""
    if kernel is not None and kernel not in KERNELS:
        raise ValueError(f"unknown attention kernel {kernel!r}; expected one of {sorted(KERNELS)}")
    for module in model.modules():
        if isinstance(module, MultiHeadAttention):
            module.kernel = kernel
