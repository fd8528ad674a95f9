"""SDPA's fused kernels (``torch.nn.functional.scaled_dot_product_attention``), with head channels padded where
a fused kernel needs them, and its CPU flash kernel on the fp32 units."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from omniperceiver.core.kernels.chunked import head_groups, mask_block, needs_autograd, values_per_block
from omniperceiver.core.kernels.fp32_units import FlashOnFp32Units

# bf16 and fp16 head widths on the CPU are padded to a multiple of this: the flash kernel's reduced-precision
# products run up to 2.7x slower at other widths (AMX Xeon, one head of 512 x 50,176: 85 ms at 261 channels, 32 ms
# padded to 264 and 35 ms to 288; 512 x 16,384: 250 channels 12.0 ms, 256 9.2 ms; 100 and 200 channels as fast as
# 128 and 224), while fp32 runs as fast at any width (261 channels 109 ms, 288 118 ms)
CPU_REDUCED_ALIGNMENT = 32
REDUCED = (torch.bfloat16, torch.float16)


def padded_widths(device_type: str, d: int, dv: int, *, reduced: bool = False) -> tuple[int, int]:
    """The q/k (d) and v (dv) head widths that :func:`pad_head_channels` pads to on ``device_type`` (``reduced``:
    for bf16 or fp16 heads)."""
    if device_type == "cuda":
        return d + -d % 8, dv + -dv % 8
    if device_type == "cpu":
        width = max(d, dv)
        width += -width % CPU_REDUCED_ALIGNMENT if reduced else 0
        return width, width
    return d, dv


def pad_head_channels(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Zero-pad head channels so that SDPA can run a fused kernel instead of its math kernel, which
    materializes the (B, H, O, M) probabilities: on CUDA to multiples of 8 (aligned channels); on the CPU,
    whose flash kernel needs one width for q, k and v, q and k (d) or v (dv) to the larger of the two, and
    bf16 or fp16 heads to a multiple of ``CPU_REDUCED_ALIGNMENT`` (where its products run at their rate).

    Zero channels add nothing to q·k, and the extra output channels that v's padding produces are cut off by
    the caller (who keeps the 1/sqrt(d) scale of the unpadded width).
    """
    d, dv = padded_widths(q.device.type, q.shape[-1], v.shape[-1], reduced=q.dtype in REDUCED)
    return _pad_to(q, d), _pad_to(k, d), _pad_to(v, dv)


def _pad_to(t: Tensor, width: int) -> Tensor:
    """``t`` (..., C) with zero channels up to ``width`` (itself where it has them)."""
    return F.pad(t, (0, width - t.shape[-1])) if width > t.shape[-1] else t


def sdpa(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, dropout: float, scale: float) -> Tensor:
    """SDPA of q (B, H, O, d) over k (B, H, M, d), v (B, H, M, dv): (B, H, O, dv), head channels padded.

    The CPU flash kernel packs a copy of k and v, and padding makes another: on the CPU a call runs in groups of
    heads (:func:`~omniperceiver.core.kernels.chunked.head_groups`) whose k and v hold at most a block of the
    chunked kernel's values, or one head per thread (the kernel's work is split over heads and query blocks), so
    that the copies stay near that size (the vision model's cross-attention at batch 8 in bf16 on 2 AMX cores:
    888 MB above its inputs in one call, 225 MB in groups of 2 examples, 0.57 s either way). A group whose k and v
    still exceed a block (one head over many keys) runs, without autograd, unmasked and without dropout, over
    blocks of its keys (:func:`_over_key_blocks`)."""
    if q.device.type != "cpu" or torch.compiler.is_compiling():  # (a compiled graph plans its own memory)
        return _padded_sdpa(q, k, v, mask=mask, dropout=dropout, scale=scale)
    batch, heads, keys = k.shape[0], k.shape[1], k.shape[2]
    d, dv = padded_widths("cpu", q.shape[-1], v.shape[-1], reduced=_run_dtype(q) in REDUCED)
    budget = values_per_block("cpu")
    groups = head_groups(batch, heads, keys * (d + dv), budget, torch.get_num_threads())
    grad = needs_autograd(q, k, v)

    def run(examples: slice, group: slice) -> Tensor:
        qg, kg, vg = q[examples, group], k[examples, group], v[examples, group]
        keys_per_block = budget // (math.prod(kg.shape[:2]) * (d + dv))
        if keys_per_block < keys and mask is None and not dropout and not grad:
            return _over_key_blocks(qg, kg, vg, scale=scale, keys_per_block=max(keys_per_block, 1))
        part_mask = mask_block(mask, examples, group, slice(None))
        return _padded_sdpa(qg, kg, vg, mask=part_mask, dropout=dropout, scale=scale)

    if len(groups) == 1:
        return run(*groups[0])
    out = None
    for examples, group in groups:
        part = run(examples, group)
        out = part.new_empty(*q.shape[:-1], part.shape[-1]) if out is None else out
        out[examples, group] = part
    return out


def _over_key_blocks(q: Tensor, k: Tensor, v: Tensor, *, scale: float, keys_per_block: int) -> Tensor:
    """Unmasked SDPA without autograd of q (B, H, O, d) over blocks of ``keys_per_block`` keys of k (B, H, M, d)
    and v (B, H, M, dv), each block's output weighed by its share of the log-sum-exp of all scores: the flash
    kernel's copies are a block's (the vision model's cross-attention at batch 1, one head over 50,176 pixels)."""
    q, k, v = (t.to(_run_dtype(t)) for t in (q, k, v))
    head_channels = v.shape[-1]
    q = _pad_to(q, padded_widths("cpu", q.shape[-1], head_channels, reduced=q.dtype in REDUCED)[0])  # (once)
    out = lse = None
    for start in range(0, k.shape[2], keys_per_block):
        keys = slice(start, start + keys_per_block)
        padded = pad_head_channels(q, k[:, :, keys], v[:, :, keys])  # (q as it is: padded already)
        part, part_lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(*padded, scale=scale)
        part = part[..., :head_channels].float()
        if out is None:
            out, lse = part, part_lse
            continue
        total = torch.logaddexp(lse, part_lse)
        out = out * torch.exp(lse - total)[..., None] + part * torch.exp(part_lse - total)[..., None]
        lse = total
    return out.to(q.dtype)


def _run_dtype(t: Tensor) -> torch.dtype:
    """The dtype that F.scaled_dot_product_attention runs ``t`` in on the CPU: autocast's, for all but fp64."""
    if torch.is_autocast_enabled("cpu") and t.dtype != torch.float64:
        return torch.get_autocast_dtype("cpu")
    return t.dtype


def _padded_sdpa(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, dropout: float, scale: float) -> Tensor:
    head_channels = v.shape[-1]
    q, k, v = pad_head_channels(q, k, v)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, scale=scale)
    return out[..., :head_channels]


def sdpa_on_fp32_units(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, dropout: float, scale: float) -> Tensor:
    """The CPU flash kernel in fp32 on bf16 q, k, v of one head width, unmasked, without dropout."""
    assert mask is None and not dropout and q.shape[-1] == v.shape[-1], "the policy checks what this kernel takes"
    return FlashOnFp32Units.apply(q, k, v, scale)
