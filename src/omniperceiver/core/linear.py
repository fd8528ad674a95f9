"""nn.Linear whose products under CPU bf16 autocast run on the units that the compute policy picks.

Where a CPU's bf16 GEMM is the slower (no AMX), the policy (:mod:`omniperceiver.core.kernels.policy`) puts the
products of bf16 autocast on the fp32 units (:class:`~omniperceiver.core.kernels.fp32_units.LinearOnFp32Units`:
autocast's dtypes kept, about twice as fast there); elsewhere, and under ``torch.compile``, the layer is a plain
nn.Linear.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omniperceiver.core.kernels.fp32_units import LinearOnFp32Units
from omniperceiver.core.kernels.policy import active_policy


class Linear(nn.Linear):
    """nn.Linear (B, ..., in) -> (B, ..., out); under CPU bf16 autocast, on the units the policy picks."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.device.type == "cpu"
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and not torch.compiler.is_compiling()
            and active_policy(x.device).linear(x.device).name == "fp32"
        ):
            return LinearOnFp32Units.apply(x, self.weight, self.bias)
        return super().forward(x)
