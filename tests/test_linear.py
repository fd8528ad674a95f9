import pytest
import torch
from fake_costs import FAST_BF16, SLOW_BF16

from omniperceiver.core.kernels import Policy, use_policy
from omniperceiver.core.linear import Linear


def layers():
    torch.manual_seed(0)
    ours = Linear(64, 48)
    plain = torch.nn.Linear(64, 48)
    plain.load_state_dict(ours.state_dict())
    return ours, plain


def saved_for_backward(fn):
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        fn()
    return saved


def test_outside_bf16_autocast_it_is_nn_linear():
    ours, plain = layers()
    x = torch.randn(3, 5, 64)
    assert torch.equal(ours(x), plain(x))


@pytest.mark.parametrize("policy", [Policy(), Policy(FAST_BF16)], ids=["default", "fast bf16"])
def test_under_bf16_autocast_without_slower_bf16_matmuls_it_is_autocasts_linear(policy):
    ours, plain = layers()
    x = torch.randn(3, 5, 64)
    with use_policy(policy), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(ours(x), plain(x))


def test_on_the_fp32_units_it_keeps_autocasts_dtypes_and_is_closer_to_fp32():
    ours, plain = layers()
    x = torch.randn(4, 50, 64, requires_grad=True)
    exact = plain(x)
    with use_policy(Policy(SLOW_BF16)), torch.autocast("cpu", dtype=torch.bfloat16):
        out, autocast_out = ours(x), plain(x)
        kept = saved_for_backward(lambda: ours(x))
    assert out.dtype == torch.bfloat16
    # kept for backward: the bf16 copy of the input (as autocast keeps it) and the fp32 weight itself
    assert sorted(str(t.dtype) for t in kept) == ["torch.bfloat16", "torch.float32"]
    assert any(t is ours.weight for t in kept)
    error, autocast_error = (out.float() - exact).abs().max(), (autocast_out.float() - exact).abs().max()
    assert error <= autocast_error and error <= 0.02
    params = (x, ours.weight, ours.bias)
    grads = torch.autograd.grad(out.float().square().sum(), params)
    want = torch.autograd.grad(exact.square().sum(), (x, plain.weight, plain.bias))
    for grad, param, reference in zip(grads, params, want, strict=True):
        assert grad.dtype == param.dtype
        assert (grad - reference).norm() <= 0.01 * reference.norm()


@pytest.mark.parametrize("table", [None, FAST_BF16, SLOW_BF16], ids=["default", "fast bf16", "slow bf16"])
def test_attention_blocks_under_bf16_autocast_stay_close_to_fp32(table):
    from omniperceiver.core import SelfAttentionBlock

    torch.manual_seed(0)
    block = SelfAttentionBlock(channels=64, num_heads=4, qk_channels=16, v_channels=64)  # chunked attention too
    x = torch.randn(2, 32, 64, requires_grad=True)
    exact = block(x)
    with use_policy(Policy(table)), torch.autocast("cpu", dtype=torch.bfloat16):
        out = block(x)
    assert (out.float() - exact).abs().max() <= 0.05 * exact.abs().max()
    params = (x, *block.parameters())
    grads = torch.cat([g.flatten() for g in torch.autograd.grad(out.float().square().sum(), params)])
    want = torch.cat([g.flatten() for g in torch.autograd.grad(exact.square().sum(), params)])
    assert (grads - want).norm() <= 0.05 * want.norm()  # (the key bias's gradient is 0 up to rounding)


@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode])
def test_without_autograd_on_the_bf16_units_the_weights_are_cast_once_until_they_change(no_grad):
    """The bf16 copy autocast makes on every call is kept: the same values, one cast while the weights stay."""
    ours, plain = layers()
    x = torch.randn(3, 5, 64)

    def autocasts(layer: torch.nn.Module) -> torch.Tensor:  # (a fresh autocast region: its own cast cache)
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            return layer(x)

    with use_policy(Policy(FAST_BF16)), torch.autocast("cpu", dtype=torch.bfloat16), no_grad():
        first, again = ours(x), ours(x)
        kept = ours._bf16[1]
        assert torch.equal(first, autocasts(plain)) and torch.equal(again, first)
        assert kept.dtype == torch.bfloat16 and ours(x) is not None and ours._bf16[1] is kept  # not cast again
        with torch.no_grad():
            ours.weight.add_(1.0)  # (an optimizer step, a loaded state dict: the version counter moves)
            plain.weight.add_(1.0)
        changed = ours(x)
    assert ours._bf16[1] is not kept and torch.equal(changed, autocasts(plain))
    with use_policy(Policy(FAST_BF16)), torch.autocast("cpu", dtype=torch.bfloat16):
        trained = ours(x)  # with autograd: autocast's own cast, through which gradients flow
    assert trained.requires_grad and ours._bf16 is None
    trained.float().sum().backward()
    assert ours.weight.grad is not None
