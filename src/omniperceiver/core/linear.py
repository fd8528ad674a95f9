"""nn.Linear whose bf16 autocast products run on the fp32 units of CPUs where bf16 matmuls are the slower.

Without AMX an x86 CPU's bf16 GEMM runs at about half its fp32 rate (oneDNN's avx512_core_bf16 kernels: 157-172
against 308-329 GFLOP/s on this project's machines). There this layer keeps autocast's contract for memory (its
input is kept for backward in bf16, its output is bf16) but multiplies the bf16 input by the fp32 weight on the
fp32 units: about twice as fast, and at least as precise as the bf16 GEMM, whose products of bf16-rounded
weights it would otherwise compute. Gradients come from fp32 GEMMs of the same operands.

Which units serve is decided once per process by timing both GEMMs; outside CPU bf16 autocast, or under
``torch.compile``, the layer is a plain nn.Linear.
"""

from __future__ import annotations

import functools
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

SLOWER_BY = 1.25  # bf16 GEMMs at least this much slower than fp32 ones take the fp32 units


@functools.cache
def bf16_matmuls_are_slower() -> bool:
    """Whether this CPU's bf16 GEMM takes SLOWER_BY times the time of its fp32 GEMM (a (256, 1024) x (1024, 1024)
    product, best of 3), measured once."""

    def best_time(a: Tensor, b: Tensor) -> float:
        a @ b
        times = []
        for _ in range(3):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
        return min(times)

    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        a, b = torch.randn(256, 1024), torch.randn(1024, 1024)
        return best_time(a.bfloat16(), b.bfloat16()) >= SLOWER_BY * best_time(a, b)


def bf16_products_on_fp32_units(device: torch.device) -> bool:
    """Whether bf16 products on ``device`` run on the fp32 units: on a CPU whose bf16 GEMM is the slower, outside
    ``torch.compile`` (the one test for this module, the chunked kernel and the flash kernel alike)."""
    return device.type == "cpu" and not torch.compiler.is_compiling() and bf16_matmuls_are_slower()


class _Bf16OnFp32Units(torch.autograd.Function):
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


class Linear(nn.Linear):
    """nn.Linear (B, ..., in) -> (B, ..., out); under CPU bf16 autocast, on the fp32 units where those are the
    faster (see the module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and bf16_products_on_fp32_units(x.device)
        ):
            return _Bf16OnFp32Units.apply(x, self.weight, self.bias)
        return super().forward(x)
