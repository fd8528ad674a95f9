"""Materialized attention: one q·kᵀ product, softmax over the whole (B, H, O, M) map, one product with v.

Where a fused kernel is slow (the CPU's bf16 flash kernel, single-head attention over many keys on a GPU) the
two plain GEMMs run closer to the matmul peak. It keeps the probabilities for backward, so the policy takes it
for training only where the map is small. It is also the path that returns the probabilities.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor


def materialized_with_weights(
    q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, dropout: float, scale: float
) -> tuple[Tensor, Tensor]:
    """softmax(q kᵀ · scale) v for q (B, H, O, d), k (B, H, M, d), v (B, H, M, dv): the output (B, H, O, dv)
    and the probabilities (B, H, O, M). For q, k, v of one dtype everything stays in it (autocast off: no fp32
    copy of the map); softmax accumulates in fp32 or wider all the same, and rounds its result to the dtype once
    (as bf16 autocast does with the reference's attention, which then rounds the fp32 probabilities for v)."""
    one_dtype = q.dtype == k.dtype == v.dtype
    with torch.autocast(q.device.type, enabled=False) if one_dtype else contextlib.nullcontext():
        scores = batched_products(q * scale, k, transpose_b=True)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = scores.softmax(dim=-1)
        out = batched_products(F.dropout(weights, p=dropout, training=dropout > 0), v)
    return out, weights


def batched_products(a: Tensor, b: Tensor, *, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    """a @ b for (..., n, k) and (..., k, m), where ``transpose_a`` / ``transpose_b`` say that a / b is given
    as (..., k, n) / (..., m, k): one torch.bmm over the flattened leading dimensions where they agree, with
    the operands transposed after they are flattened, so that bmm reads them in place (given a transposed 4-D
    view it copies it: 2.6x the time of (1, 1, 512, 256) x (1, 1, 256, 50,176) in bf16 on the CPU); else matmul
    (broadcast dimensions, mixed dtypes). The operands are laid out by :func:`for_products` first."""
    if a.dim() < 3 or a.shape[:-2] != b.shape[:-2] or a.dtype != b.dtype:
        return (a.transpose(-1, -2) if transpose_a else a) @ (b.transpose(-1, -2) if transpose_b else b)
    a, b = for_products(a), for_products(b)
    a3, b3 = (t.reshape(-1, *t.shape[-2:]) for t in (a, b))
    out = torch.bmm(a3.transpose(1, 2) if transpose_a else a3, b3.transpose(1, 2) if transpose_b else b3)
    return out.view(*a.shape[:-2], *out.shape[-2:])


def for_products(t: Tensor) -> Tensor:
    """``t`` laid out for :func:`batched_products`. A head of a Linear layer's output is a strided view: the CPU's
    bf16 and fp16 products (oneDNN) read it at about 70% of their rate, so it becomes a contiguous copy (the
    vision model's latent attention: 1.9 against 2.7 ms per call, copies included); fp32 products on the CPU read
    it in place faster than a copy allows (the language model's cross-attention: 10 against 19 ms), and so do
    GPUs', so there it stays as it is."""
    return t.contiguous() if t.device.type == "cpu" and t.dtype in (torch.bfloat16, torch.float16) else t


def materialized(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, dropout: float, scale: float) -> Tensor:
    """The output of :func:`materialized_with_weights`."""
    return materialized_with_weights(q, k, v, mask=mask, dropout=dropout, scale=scale)[0]
