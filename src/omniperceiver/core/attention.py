"""The one attention primitive, and the multi-head attention module built on it.

Every path of the library (encoder cross-attention, latent self-attention, decoder cross-attention, causal
Perceiver AR attention and cached decoding) goes through :func:`attend`, which calls
``torch.nn.functional.scaled_dot_product_attention``, or on the CPU, for heads whose q/k and v widths differ,
:func:`~omniperceiver.core.chunked_attention.chunked_attention`. Masks are boolean with SDPA's meaning:
``True`` = this key may be attended.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omniperceiver.core.chunked_attention import chunked_attention
from omniperceiver.core.kv_cache import KVCache
from omniperceiver.core.linear import Linear, bf16_products_on_fp32_units
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


def pad_head_channels(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Zero-pad head channels so that SDPA can run a fused kernel instead of its math kernel, which
    materializes the (B, H, O, M) probabilities: on CUDA to multiples of 8 (aligned channels); on the CPU,
    whose flash kernel needs one width for q, k and v (where :func:`chunked_attention` cannot serve: dropout,
    mixed dtypes), q and k (d) or v (dv) to the larger of the two.

    Zero channels add nothing to q·k, and the extra output channels that v's padding produces are cut off by
    the caller (who keeps the 1/sqrt(d) scale of the unpadded width).
    """
    d, dv = q.shape[-1], v.shape[-1]
    if q.is_cuda:
        d, dv = d + -d % 8, dv + -dv % 8
    elif q.device.type == "cpu":
        d = dv = max(d, dv)
    if d > q.shape[-1]:
        q, k = F.pad(q, (0, d - q.shape[-1])), F.pad(k, (0, d - k.shape[-1]))
    if dv > v.shape[-1]:
        v = F.pad(v, (0, dv - v.shape[-1]))
    return q, k, v


def unequal_widths_on_cpu(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """Whether q/k heads (d) and v heads (dv) of one dtype differ in width on the CPU, whose flash kernel would
    need them padded to one width (dv / d times the q·k work, padded copies kept for backward)."""
    return (
        q.device.type == "cpu"
        and q.shape[-1] != v.shape[-1]
        and q.dtype == k.dtype == v.dtype
        and q.dim() == 4
        and q.shape[:2] == k.shape[:2] == v.shape[:2]  # no broadcast batch or head dimensions
    )


class _FlashOnFp32Units(torch.autograd.Function):
    """SDPA's CPU flash kernel on bf16 q, k, v (B, H, O|M, d) run in fp32 (bf16 values are exact there), where
    this CPU's bf16 matmuls are the slower (:mod:`omniperceiver.core.linear`); q, k, v and the output are kept
    for backward in bf16, as the bf16 kernel keeps them."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        with torch.autocast("cpu", enabled=False):
            out, logsumexp = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q.float(), k.float(), v.float(), scale=scale
            )
        out = out.bfloat16()
        ctx.save_for_backward(q, k, v, out, logsumexp)
        ctx.scale = scale
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor, Tensor, Tensor, None]:
        q, k, v, out, logsumexp = ctx.saved_tensors
        with torch.autocast("cpu", enabled=False):
            grads = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
                grad_out.float().contiguous(),
                q.float(),
                k.float(),
                v.float(),
                out.float(),
                logsumexp,
                0.0,
                False,
                scale=ctx.scale,
            )
        return *(grad.bfloat16() for grad in grads), None


def flash_on_fp32_units(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout: float) -> bool:
    """Whether unmasked bf16 attention of one head width on the CPU runs the flash kernel in fp32."""
    return (
        q.dtype == k.dtype == v.dtype == torch.bfloat16
        and q.shape[-1] == v.shape[-1]
        and mask is None
        and not dropout
        and bf16_products_on_fp32_units(q.device)
    )


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    dropout: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Scaled dot-product attention of q (B, H, O, d) over k (B, H, M, d) and v (B, H, M, dv).

    ``mask`` is boolean and broadcastable to (B, H, O, M); ``True`` = may be attended. A query row whose keys
    are all masked returns zeros (and zero gradients), never NaN. Scores are scaled by 1/sqrt(d).

    Returns the output (B, H, O, dv) and, only when ``need_weights`` is set, the attention probabilities
    (B, H, O, M). Unless they are asked for, the probabilities are never kept: SDPA's fused kernels run, except on
    the CPU for heads whose q/k width differs from v's, which :func:`chunked_attention` serves without padding.
    """
    visible = None
    if mask is not None:
        visible = mask.any(dim=-1, keepdim=True)
        mask = mask | ~visible  # rows without any key attend uniformly, then are zeroed below
    if need_weights:
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        if visible is not None:
            weights = weights * visible
        out = F.dropout(weights, p=dropout, training=dropout > 0) @ v
        return out, weights
    scale, head_channels = 1.0 / math.sqrt(q.shape[-1]), v.shape[-1]
    if unequal_widths_on_cpu(q, k, v) and not dropout:
        out = chunked_attention(q, k, v, mask=mask, scale=scale)
    elif flash_on_fp32_units(q, k, v, mask, dropout):
        out = _FlashOnFp32Units.apply(q, k, v, scale)
    else:
        q, k, v = pad_head_channels(q, k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale)
        out = out[..., :head_channels]
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
            q, k, v, mask=mask, dropout=self.dropout if self.training else 0.0, need_weights=need_weights
        )
        out = out.transpose(1, 2).flatten(2)
        return self.output(out), weights
