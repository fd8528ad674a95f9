"""Cheap activations recomputed in the backward pass instead of kept for it.

A Linear layer keeps its input for its weight gradient. When that input is the output of a cheap op whose own
input autograd keeps anyway (LayerNorm keeps x, GELU keeps its argument), keeping the output as well costs one
more activation per op, to save a few elementwise passes. Inside :func:`scope`, an output made with
:func:`linear_input` is saved for backward as a recipe (the op and its arguments) and recomputed, once, when
backward first needs it. (Under autocast the Linear would keep the low-precision copy of its input that it
makes; :func:`linear_input` makes that copy itself, so the same applies.) Matmuls and attention are never
recomputed, so the time cost is a few percent; the memory of a pre-norm transformer layer falls by about a
third.

The scope steps aside where other saved-tensor hooks are active (activation checkpointing keeps nothing inside
its regions anyway) and under ``torch.compile`` (whose partitioner makes the same choice); without autograd it
does nothing.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.utils.weak import WeakTensorKeyDictionary

_state = threading.local()


class _Recipe:
    """How to make a cheap op's output again: ``fn(*args)``, computed at most once, under the autocast state of
    the forward pass (backward runs outside autocast: a CUDA LayerNorm of bf16 activations with fp32 weights,
    which autocast ran in fp32, would fail there)."""

    def __init__(self, fn: Callable[..., Tensor], args: tuple[Tensor, ...]) -> None:
        self.fn, self.args, self.value = fn, args, None
        device = args[0].device.type
        enabled = torch.is_autocast_enabled(device)
        self.autocast = torch.autocast(device, dtype=torch.get_autocast_dtype(device), enabled=enabled)

    def __call__(self) -> Tensor:
        if self.value is None:
            with torch.no_grad(), self.autocast:
                self.value = self.fn(*self.args)
        return self.value


def linear_input(fn: Callable[..., Tensor], *args: Tensor) -> Tensor:
    """``fn(*args)`` for use as the input of Linear layers only: under autocast already cast to the autocast
    dtype (as the Linear would cast it), and inside a :func:`scope` recomputed for backward instead of kept.

    ``fn`` must be cheap and deterministic and return a fresh contiguous tensor (a LayerNorm, an activation)."""
    device = args[0].device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        fn = functools.partial(_cast, fn, dtype)
    out = fn(*args)
    outputs = getattr(_state, "outputs", None)
    if outputs is not None and out.requires_grad and out.is_contiguous() and out.storage_offset() == 0:
        outputs[out] = _Recipe(fn, tuple(arg.detach() for arg in args))
    return out


def _cast(fn: Callable[..., Tensor], dtype: torch.dtype, *args: Tensor) -> Tensor:
    return fn(*args).to(dtype)


def _pack(tensor: Tensor) -> Tensor | tuple:
    recipe = _state.outputs.get(tensor)
    if recipe is None and tensor._base is not None:  # a view, e.g. the flattened input of a Linear
        recipe = _state.outputs.get(tensor._base)
    if recipe is None:
        return tensor
    return recipe, tensor.shape, tensor.stride(), tensor.storage_offset()


def _unpack(packed: Tensor | tuple) -> Tensor:
    if isinstance(packed, Tensor):
        return packed
    recipe, shape, stride, offset = packed
    return recipe().as_strided(shape, stride, offset)


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Recompute the outputs of :func:`linear_input` ops made inside this block in the backward pass."""
    if (
        torch.compiler.is_compiling()  # the compiler decides for itself what to keep
        or not torch.is_grad_enabled()
        or getattr(_state, "outputs", None) is not None
        or torch._C._autograd._top_saved_tensors_default_hooks(False) is not None
    ):
        yield
        return
    _state.outputs = WeakTensorKeyDictionary()
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            yield
    finally:
        _state.outputs = None
