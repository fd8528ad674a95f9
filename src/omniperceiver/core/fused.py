"""Linear layers after a LayerNorm or an activation that keep only the cheap op's input for the backward pass.

Autograd would keep both the input and the output of a LayerNorm (or GELU) feeding a Linear: the output
for the Linear's weight gradient. These functions keep the input alone and recompute the output in the
backward pass, a memory-bound op that is cheap next to the matmuls: about a third less activation memory
per Perceiver layer in training. Without gradients they are the plain composition. Under autocast the
backward pass recomputes with the forward pass's autocast state, so the numerics are the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


def _linear_grads(
    grads: Sequence[Tensor | None], hidden: Tensor, linears: Sequence[nn.Linear]
) -> tuple[Tensor, list[Tensor]]:
    """The gradient of ``hidden`` (..., C) and of every Linear's weight (and bias), from the outputs' grads."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    grad_hidden = torch.zeros_like(hidden)
    params: list[Tensor] = []
    for grad, linear in zip(grads, linears, strict=True):
        if grad is None:
            grad = torch.zeros(*hidden.shape[:-1], linear.out_features, dtype=hidden.dtype, device=hidden.device)
        grad = grad.to(hidden.dtype)
        grad_hidden += grad @ linear.weight.to(hidden.dtype)
        flat_grad = grad.reshape(-1, grad.shape[-1])
        params.append((flat_grad.T @ flat).to(linear.weight.dtype))
        if linear.bias is not None:
            params.append(flat_grad.sum(0).to(linear.bias.dtype))
    return grad_hidden, params


class _Recomputed(torch.autograd.Function):
    """outputs_i = linear_i(op(x)) for a module op (LayerNorm, GELU); saves x only and recomputes op(x)."""

    @staticmethod
    def forward(ctx, x: Tensor, op: nn.Module, linears: tuple[nn.Linear, ...], *params: Tensor):
        ctx.op, ctx.linears = op, linears
        ctx.autocast = torch.is_autocast_enabled(x.device.type), torch.get_autocast_dtype(x.device.type)
        ctx.save_for_backward(x)
        hidden = op(x)
        return tuple(linear(hidden) for linear in linears)

    @staticmethod
    def backward(ctx, *grads: Tensor):
        (x,) = ctx.saved_tensors
        op_params = list(ctx.op.parameters())
        enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(x.device.type, dtype=dtype, enabled=enabled):
            source = x.detach().requires_grad_(True)
            hidden = ctx.op(source)
            seen = hidden.detach().to(dtype) if enabled else hidden.detach()  # the Linears' input under autocast
            grad_hidden, linear_grads = _linear_grads(grads, seen, ctx.linears)
            grad_x, *op_grads = torch.autograd.grad(hidden, [source, *op_params], grad_hidden.to(hidden.dtype))
        return (grad_x if ctx.needs_input_grad[0] else None, None, None, *op_grads, *linear_grads)


def recomputed_linears(x: Tensor, op: nn.Module | None, linears: Sequence[nn.Linear]) -> tuple[Tensor, ...]:
    """``linear(op(x))`` for each linear, keeping only x (not op(x)) for the backward pass; ``op=None`` is
    the plain ``linear(x)``. Under ``torch.compile`` it is the plain composition: the compiler's own
    partitioner chooses what to recompute."""
    modules = [m for m in (op, *linears) if m is not None]
    needs_grad = x.requires_grad or any(p.requires_grad for m in modules for p in m.parameters())
    if op is None or torch.compiler.is_compiling() or not (torch.is_grad_enabled() and needs_grad):
        hidden = x if op is None else op(x)
        return tuple(linear(hidden) for linear in linears)
    params = [p for m in modules for p in m.parameters()]
    return _Recomputed.apply(x, op, tuple(linears), *params)
