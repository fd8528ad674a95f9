"""bf16 products on the fp32 units: for CPUs whose bf16 GEMM is slower than their fp32 GEMM.

Without AMX some x86 CPUs run bf16 GEMMs at about half their fp32 rate (oneDNN's avx512_core_bf16 kernels: 157-172
against 308-329 GFLOP/s on one of this project's machines). There these kernels keep autocast's contract for
memory (bf16 tensors kept for backward, bf16 outputs) but multiply the bf16 values in fp32, where their products
are exact: about twice as fast, and at least as precise as the bf16 GEMM. Whether they run is the compute
policy's decision (:mod:`omniperceiver.core.kernels.policy`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable


class LinearOnFp32Units(torch.autograd.Function):
    """F.linear of x (B, ..., in) under CPU bf16 autocast: x is kept in bf16 (as autocast keeps it), the weight
    as it is (fp32); the products run in fp32 and the output is bf16. Gradients come from fp32 GEMMs."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        x_bf16 = x.bfloat16()  # what autocast would make and keep (x itself where x is already bf16)
        ctx.save_for_backward(x_bf16, weight)
        ctx.input_dtype, ctx.has_bias = x.dtype, bias is not None
        with torch.autocast("cpu", enabled=False):
            return F.linear(x_bf16.float(), weight.float(), None if bias is None else bias.float()).bfloat16()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x_bf16, weight = ctx.saved_tensors
        grad = grad_out.float().flatten(0, -2)  # (B·N, out)
        grad_x = grad_weight = grad_bias = None
        with torch.autocast("cpu", enabled=False):
            if ctx.needs_input_grad[0]:
                grad_x = (grad @ weight.float()).view(*x_bf16.shape).to(ctx.input_dtype)
            if ctx.needs_input_grad[1]:
                grad_weight = (grad.T @ x_bf16.flatten(0, -2).float()).to(weight.dtype)
            if ctx.has_bias and ctx.needs_input_grad[2]:
                grad_bias = grad.sum(0).to(weight.dtype)
        return grad_x, grad_weight, grad_bias


class FlashOnFp32Units(torch.autograd.Function):
    """SDPA's CPU flash kernel on bf16 q, k, v (B, H, O|M, d), unmasked, run in fp32; q, k, v and the output are
    kept for backward in bf16, as the bf16 kernel keeps them."""

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
    @once_differentiable
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
