"""Linear layers after a LayerNorm or GELU keep only the cheap op's input for backward, with equal gradients."""

import pytest
import torch
from torch import nn

import omniperceiver.core.attention as attention_module
import omniperceiver.core.blocks as blocks_module
from omniperceiver.core.blocks import SelfAttentionBlock
from omniperceiver.core.fused import recomputed_linears


def plain_linears(x, op, linears):
    hidden = x if op is None else op(x)
    return tuple(linear(hidden) for linear in linears)


def saved_bytes(run) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of ``run()``."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return sum(storages.values())


@pytest.mark.parametrize("autocast", [False, True])
def test_gradients_equal_the_plain_composition(autocast):
    torch.manual_seed(0)
    norm, linears = nn.LayerNorm(16), [nn.Linear(16, 8), nn.Linear(16, 4)]
    nn.init.normal_(norm.weight, 1.0, 0.1)
    nn.init.normal_(norm.bias, 0.0, 0.1)
    x = torch.randn(2, 5, 16, requires_grad=True)
    params = [x, *norm.parameters(), *(p for linear in linears for p in linear.parameters())]
    gradients = []
    for implementation in (recomputed_linears, plain_linears):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            outputs = implementation(x, norm, linears)
        gradients.append(torch.autograd.grad(sum((o.float() ** 2).sum() for o in outputs), params))
    for ours, plain in zip(*gradients, strict=True):
        # bf16: the two sum the Linears' input gradients in a different order (one bf16 rounding)
        assert torch.allclose(ours, plain, rtol=1e-2 if autocast else 1e-6, atol=1e-2 if autocast else 1e-6)


def test_a_latent_layer_keeps_a_third_less_for_backward(monkeypatch):
    layer = SelfAttentionBlock(channels=64, num_heads=4)
    x = torch.randn(4, 32, 64, requires_grad=True)
    fused = saved_bytes(lambda: layer(x).sum())
    fused_grads = torch.autograd.grad(layer(x).sum(), [x, *layer.parameters()])
    monkeypatch.setattr(attention_module, "recomputed_linears", plain_linears)
    monkeypatch.setattr(blocks_module, "recomputed_linears", plain_linears)
    plain = saved_bytes(lambda: layer(x).sum())
    plain_grads = torch.autograd.grad(layer(x).sum(), [x, *layer.parameters()])
    assert fused <= 0.75 * plain
    for ours, reference in zip(fused_grads, plain_grads, strict=True):
        assert torch.allclose(ours, reference, atol=1e-5)
