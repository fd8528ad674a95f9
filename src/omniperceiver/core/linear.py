"""nn.Linear whose products under CPU bf16 autocast run on the units that the compute policy picks (and
:func:`linear` for a product with a weight that no such layer holds). Every Linear product of the models goes
through one of them: elsewhere bf16 autocast would run it on the bf16 units whatever the policy says.

Where a CPU's bf16 GEMM is the slower (no AMX), the policy (:mod:`omniperceiver.core.kernels.policy`) puts the
products of bf16 autocast on the fp32 units (:class:`~omniperceiver.core.kernels.fp32_units.LinearOnFp32Units`:
autocast's dtypes kept, about twice as fast there). On the bf16 units, without autograd, the layer keeps the bf16
copy of its weight and bias that autocast would make on every call, until they change (their version counter):
the same values, without the cast (a third of the language model's bf16 forward at batch 1 on an AMX Xeon:
107 casts of 1280 x 1280 weights, 117 of 349 ms). Elsewhere, and under ``torch.compile``, a plain nn.Linear.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omniperceiver.core.kernels.fp32_units import LinearOnFp32Units
from omniperceiver.core.kernels.policy import active_policy


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """F.linear of x (B, ..., in) by weight (out, in): under CPU bf16 autocast, on the units the policy picks (a
    product with a weight that no :class:`Linear` holds, such as tied token logits)."""
    if _under_cpu_bf16_autocast(x) and _on_fp32_units(x):
        return LinearOnFp32Units.apply(x, weight, bias)
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear (B, ..., in) -> (B, ..., out); under CPU bf16 autocast, on the units the policy picks."""

    _bf16: tuple[tuple[int, ...], Tensor, Tensor | None] | None = None  # (what it was cast from, weight, bias)

    def forward(self, x: Tensor) -> Tensor:
        if not _under_cpu_bf16_autocast(x):
            return super().forward(x)
        if _on_fp32_units(x):
            return LinearOnFp32Units.apply(x, self.weight, self.bias)
        if torch.is_grad_enabled():
            self._bf16 = None  # (training: the weights change every step)
            return super().forward(x)
        weight, bias = self._bf16_weights()
        return F.linear(x.to(torch.bfloat16), weight, bias)

    def _bf16_weights(self) -> tuple[Tensor, Tensor | None]:
        """The bf16 weight and bias, cast again only when either has changed since."""
        source = tuple(value for p in (self.weight, self.bias) if p is not None for value in (p.data_ptr(), p._version))
        if self._bf16 is None or self._bf16[0] != source:
            with torch.inference_mode(False):  # (plain tensors, usable outside inference mode too)
                weight = self.weight.detach().to(torch.bfloat16)
                bias = None if self.bias is None else self.bias.detach().to(torch.bfloat16)
            self._bf16 = source, weight, bias
        return self._bf16[1], self._bf16[2]


def _under_cpu_bf16_autocast(x: Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
        and not torch.compiler.is_compiling()
    )


def _on_fp32_units(x: Tensor) -> bool:
    return active_policy(x.device).linear(x.device).name == "fp32"
