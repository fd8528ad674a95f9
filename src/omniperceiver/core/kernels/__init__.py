"""The compute policy (:mod:`.policy`) and the kernels it picks among: SDPA's fused kernels (:mod:`.sdpa`),
materialized attention (:mod:`.materialized`), the chunked kernel (:mod:`.chunked`) and the fp32-units paths
(:mod:`.fp32_units`). Nothing outside this package decides which kernel runs."""

from omniperceiver.core.kernels.policy import (
    KERNELS,
    AttentionCall,
    Choice,
    CostTable,
    Policy,
    active_policy,
    use_policy,
)

__all__ = ["KERNELS", "AttentionCall", "Choice", "CostTable", "Policy", "active_policy", "use_policy"]
