"""Chunked attention: the map in blocks, probabilities recomputed in backward (the policy's "chunked" kernels).

The CPU flash kernel needs one head width for q, k and v. The Perceiver's heads often have narrow q/k and wide
v (the language model: 32 and 160 channels), so flash needs q and k zero-padded (5x the q·k work, padded copies
kept for backward), and the math kernel keeps the (B, H, O, M) probabilities for backward. This kernel keeps
neither: the forward pass runs softmax over blocks of the map (whole examples where they fit, else query rows;
the map is never whole when it is large), and backward recomputes each block's probabilities from q and k (one
narrow q·k product) instead of reading them.

Backward is written in differentiable torch ops, so second-order gradients work as through the math kernel.
"""

from __future__ import annotations

import torch
from torch import Tensor

from omniperceiver.core.kernels.materialized import batched_products, for_products

# Blocks of the map hold at most this many values by default (16 MiB in fp32 on the CPU, whose caches a block
# should stay near; 256 MiB on a GPU, where a block must give every multiprocessor work: one head of 512 latents
# over 262,144 keys in 2 blocks instead of 32); backward holds about three at once.
BLOCK_VALUES = 1 << 22
GPU_BLOCK_VALUES = 1 << 26


def values_per_block(device_type: str) -> int:
    """The most values a block of the map holds on ``device_type`` ("cpu", "cuda", ...)."""
    return BLOCK_VALUES if device_type == "cpu" else GPU_BLOCK_VALUES


def needs_autograd(*tensors: Tensor) -> bool:
    """Whether a kernel's call on ``tensors`` is recorded for backward."""
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def rows_per_block(queries: int, keys: int, block_values: int) -> int:
    """Query rows of one head's (O, M) map in a block: all O where the map fits, else as many as fit (at least 1)."""
    return queries if queries * keys <= block_values else max(1, block_values // keys)


def head_groups(batch: int, heads: int, per_head: int, budget: int, at_least: int = 1) -> list[tuple[slice, slice]]:
    """(examples, heads) slices that cover B x H once, each of as many heads as ``budget`` values hold at
    ``per_head`` values a head (at least ``at_least`` heads, and one): several whole examples where one
    example's heads fit, else several heads of one example."""
    fit = max(budget // per_head, at_least, 1)
    if fit >= heads:
        examples = min(batch, fit // heads)
        return [(slice(b, b + examples), slice(0, heads)) for b in range(0, batch, examples)]
    return [(slice(b, b + 1), slice(h, h + fit)) for b in range(batch) for h in range(0, heads, fit)]


def blocks(q: Tensor, k: Tensor, block_values: int) -> tuple[list[tuple[slice, slice]], list[slice]]:
    """The blocks of the map of q (B, H, O, d) against k (B, H, M, d), of at most ``block_values`` values each:
    (examples, heads) slices (:func:`head_groups`), and the query row slices that split each of them. A block is
    several whole examples (B) where one example's map fits, else several heads (H) of one example where one
    head's map fits, else query rows (O) of one head: k and v are read again for each block of rows only where
    one head's map exceeds a block, which depends on O and M alone (the policy's cost of this kernel,
    :func:`rows_per_block`)."""
    batch, heads, queries, keys = q.shape[0], q.shape[1], q.shape[2], k.shape[2]
    rows = rows_per_block(queries, keys, block_values)
    groups = head_groups(batch, heads, queries * keys, block_values)
    return groups, [slice(i, i + rows) for i in range(0, queries, rows)]


def _working_dtype(t: Tensor, fp32_units: bool) -> torch.dtype:
    """The dtype the products run in: bf16 operands in fp32 on the ``fp32_units`` (their products are exact
    there), else t's own."""
    return torch.float32 if fp32_units and t.dtype == torch.bfloat16 else t.dtype


def _operands(fp32_units: bool, *tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors in the working dtype, laid out for the products once (blocks of examples are then views)."""
    work = _working_dtype(tensors[0], fp32_units)
    return tuple(for_products(t.to(work)) for t in tensors)


def mask_block(mask: Tensor | None, examples: slice, heads: slice, rows: slice) -> Tensor | None:
    """The part of ``mask`` (broadcastable to (B, H, O, M)) that a block of the map sees."""
    if mask is None:
        return None
    mask = mask[(None,) * (4 - mask.dim())]
    parts = (examples, heads, rows)  # (of B, H, O: a dimension of size 1 is broadcast, not sliced)
    return mask[tuple(part if size > 1 else slice(None) for part, size in zip(parts, mask.shape[:3], strict=True))]


def _wide(x: Tensor) -> Tensor:
    """x in fp32, or wider if it already is."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _accumulate(total: Tensor | None, part: Tensor) -> Tensor:
    """total + part, summed in fp32 or wider from the second part on (row blocks' gradients of k and v)."""
    return part if total is None else _wide(total) + part


def _probabilities(q_scaled: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax of the scores of scaled q (B, H, o, d) against k (B, H, M, d), in their dtype (softmax
    accumulates in fp32 or wider all the same): (B, H, o, M)."""
    scores = batched_products(q_scaled, k, transpose_b=True)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


def _forward(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, fp32_units: bool, block_values: int
) -> Tensor:
    dtype = v.dtype
    q, k, v = _operands(fp32_units, q, k, v)
    groups, row_blocks = blocks(q, k, block_values)
    if len(groups) == len(row_blocks) == 1:  # (one block: no copy into the output)
        return batched_products(_probabilities(q * scale, k, mask), v).to(dtype)
    out = q.new_empty(*q.shape[:-1], v.shape[-1])
    for examples, heads in groups:
        keys, values = k[examples, heads], v[examples, heads]
        for rows in row_blocks:
            probs = _probabilities(q[examples, heads, rows] * scale, keys, mask_block(mask, examples, heads, rows))
            out[examples, heads, rows] = batched_products(probs, values)
    return out.to(dtype)


class _ChunkedAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, fp32_units: bool, block_values: int
    ) -> Tensor:
        ctx.save_for_backward(q, k, v, mask)
        ctx.scale, ctx.fp32_units, ctx.block_values = scale, fp32_units, block_values
        return _forward(q, k, v, mask, scale, fp32_units, block_values)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        q, k, v, mask = ctx.saved_tensors
        scale = ctx.scale
        # laid out as q, k and v are (heads of Linear outputs), so that the gradients of those Linear layers' outputs
        # are contiguous for their products
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        q, k, v, grad_out = _operands(ctx.fp32_units, q, k, v, grad_out)
        groups, row_blocks = blocks(q, k, ctx.block_values)
        for examples, heads in groups:
            keys, values = k[examples, heads], v[examples, heads]
            group_grad_k, group_grad_v = None, None
            for rows in row_blocks:
                q_scaled, grad_rows = q[examples, heads, rows] * scale, grad_out[examples, heads, rows]
                probs = _probabilities(q_scaled, keys, mask_block(mask, examples, heads, rows))
                grad_probs = batched_products(grad_rows, values, transpose_b=True)
                grad_scores = torch.ops.aten._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
                grad_q[examples, heads, rows] = batched_products(grad_scores, keys) * scale
                part_k = batched_products(grad_scores, q_scaled, transpose_a=True)
                group_grad_k = _accumulate(group_grad_k, part_k)
                group_grad_v = _accumulate(group_grad_v, batched_products(probs, grad_rows, transpose_a=True))
            grad_k[examples, heads] = group_grad_k
            grad_v[examples, heads] = group_grad_v
        return grad_q, grad_k, grad_v, None, None, None, None


def chunked_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    mask: Tensor | None = None,
    scale: float,
    fp32_units: bool = False,
    block_values: int | None = None,
) -> Tensor:
    """softmax(q kᵀ · scale) v for q (B, H, O, d), k (B, H, M, d), v (B, H, M, dv) of one dtype: (B, H, O, dv).

    ``mask`` is boolean, broadcastable to (B, H, O, M), True = may be attended; every query row must have a key
    it may attend. Everything runs in the inputs' dtype (bf16 ones in fp32 with ``fp32_units``), as materialized
    attention does: softmax accumulates in fp32 or wider, and the map, in blocks, is never made wider (an fp32
    copy of a bf16 block doubles the memory traffic that bounds this kernel on the CPU). Blocks of the map hold
    at most ``block_values`` values (default: :func:`values_per_block` of the device). With autograd, only q, k, v
    and the mask are kept for backward.
    """
    block_values = block_values or values_per_block(q.device.type)
    with torch.autocast(q.device.type, enabled=False):
        if needs_autograd(q, k, v):
            return _ChunkedAttention.apply(q, k, v, mask, scale, fp32_units, block_values)
        return _forward(q, k, v, mask, scale, fp32_units, block_values)
