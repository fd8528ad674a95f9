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


class BF16Products(torch.utils._python_dispatch.TorchDispatchMode):
    """Records the 2-D products (a Linear layer's mm / addmm) that run on bf16 operands."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default) and any(
            t.dtype == torch.bfloat16 for t in tensors
        ):
            self.seen.append([tuple(t.shape) for t in tensors])
        return func(*args, **(kwargs or {}))


def test_every_linear_layer_of_the_models_runs_on_the_units_the_policy_picks():
    """Where bf16 GEMMs are the slower, no product of a model's Linear layers runs in bf16 under autocast, in
    training or not: output layers, projections and heads are the policy's Linear too (a plain nn.Linear ran the
    Perceiver AR's logits at an AVX2 CPU's emulated 1 GFLOP/s)."""
    import omniperceiver as op
    from omniperceiver import zoo
    from omniperceiver.adapters.points import PointCloudInputConfig
    from omniperceiver.core import ARConfig

    torch.manual_seed(0)
    array = op.ArrayInputConfig(index_shape=(4, 3), in_channels=2, position=None, project_channels=6)
    ar = ARConfig(channels=32, num_latents=8, num_heads=4, num_self_attention_layers=2)
    cases = [
        (op.PerceiverARConfig(vocab_size=40, max_seq_len=32, ar=ar).build(), (torch.randint(0, 40, (2, 16)),)),
        (zoo.create("language-perceiver", reduced=True), (torch.randint(6, 262, (2, 32)),)),
        (array.build(), (torch.randn(2, 4, 3, 2),)),
        (PointCloudInputConfig(num_bands=2, feature_channels=3, project_features=4).build(), (torch.randn(2, 5, 6),)),
    ]
    for model, inputs in cases:
        with use_policy(Policy(SLOW_BF16)), torch.autocast("cpu", dtype=torch.bfloat16), BF16Products() as products:
            out = model(*inputs)
            out = out[0] if isinstance(out, tuple) else out
            out.float().sum().backward()
        assert products.seen == [], (type(model).__name__, products.seen)
    for name in zoo.PUBLISHED:
        model = zoo.create(name, reduced=True)
        plain = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
        assert plain == [], (name, plain)
