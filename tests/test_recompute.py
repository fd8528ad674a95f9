import contextlib

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from omniperceiver.core import recompute
from omniperceiver.core.blocks import CrossAttentionBlock, SelfAttentionBlock


def keeping_everything() -> contextlib.AbstractContextManager:
    """Outer saved-tensor hooks that keep every tensor: the recompute scope steps aside under them."""
    return torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t)


def live_bytes(step) -> int:
    """Bytes that ``step`` allocated and had not freed when it returned (its output and what autograd keeps)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        kept = step()
    events = prof.profiler.kineto_results.events()
    del kept
    return sum(event.nbytes() for event in events if event.name() == "[memory]")


def blocks():
    torch.manual_seed(0)
    latent = SelfAttentionBlock(channels=64, num_heads=4, widening_factor=2)
    cross = CrossAttentionBlock(query_channels=64, kv_channels=24, num_heads=2, qk_channels=32, v_channels=48)
    x, inputs = torch.randn(3, 16, 64, requires_grad=True), torch.randn(3, 40, 24, requires_grad=True)
    return latent, cross, x, inputs


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("which", ["latent", "cross"])
def test_recomputed_activations_give_identical_gradients(which, autocast):
    latent, cross, x, inputs = blocks()
    grads = []
    for context in (contextlib.nullcontext, keeping_everything):
        with context(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = (latent(x) if which == "latent" else cross(x, inputs)[0]).float()
        params = [x, inputs, *(latent if which == "latent" else cross).parameters()]
        grads.append(torch.autograd.grad((out**2).sum(), params, allow_unused=True))
    for recomputed, kept in zip(*grads, strict=True):
        assert (recomputed is None) == (kept is None)
        if kept is not None:
            assert torch.equal(recomputed, kept)


def test_second_order_gradients_see_through_the_recomputed_activations():
    """autograd re-attaches an unpacked saved tensor to the node that made the original: a penalty on the weight
    gradients (which use LN(x), LN(h), GELU(hidden)) differentiates through the LayerNorms and GELU."""
    torch.manual_seed(0)  # narrow q/k heads: the chunked kernel, whose backward is differentiable
    latent = SelfAttentionBlock(channels=64, num_heads=4, qk_channels=16, v_channels=64, widening_factor=2)
    x = torch.randn(3, 16, 64, requires_grad=True)
    grads = []
    for context in (contextlib.nullcontext, keeping_everything):
        with context():
            out = latent(x)
        params = list(latent.parameters())
        weight_grads = torch.autograd.grad(out.square().sum(), params, create_graph=True)  # they use LN(x) etc.
        penalty = sum(grad.square().sum() for grad in weight_grads)
        grads.append(torch.autograd.grad(penalty, [x, *params]))
    for recomputed, kept in zip(*grads, strict=True):
        torch.testing.assert_close(recomputed, kept, rtol=1e-5, atol=1e-6)


def test_a_latent_layer_keeps_a_third_less_for_backward():
    latent, _, x, _ = blocks()
    x = torch.randn(8, 256, 64, requires_grad=True)
    unit = x.numel() * x.element_size()  # one fp32 (B, N, D) activation
    recomputing = live_bytes(lambda: latent(x)) / unit
    with keeping_everything():
        keeping = live_bytes(lambda: latent(x)) / unit
    # made inside the layer and kept (the MLP hidden is 2 units): q, k, v, attention output, h, hidden and the
    # output = 8, instead of also LN(x), LN(h) and GELU(hidden) = 12; plus LayerNorm statistics
    assert recomputing == pytest.approx(8, abs=0.2)
    assert keeping == pytest.approx(12, abs=0.2)


def test_under_autocast_the_low_precision_copies_are_recomputed_too():
    latent, _, x, _ = blocks()
    x = torch.randn(8, 256, 64, requires_grad=True)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return latent(x)

    unit = x.numel() * 2  # one bf16 (B, N, D) activation
    recomputing = live_bytes(step) / unit
    with keeping_everything():
        keeping = live_bytes(step) / unit
    # bf16 units: q, k, v, attention output, hidden (2), output (1) = 7, h in fp32 (2), LayerNorm statistics;
    # kept as well without recomputation: bf16 copies of LN(x), LN(h) and GELU(hidden) (2) = 4 more
    assert keeping - recomputing == pytest.approx(4, abs=0.2)


def test_nothing_changes_without_autograd():
    latent, _, x, _ = blocks()
    with torch.no_grad():
        plain = latent(x)
        with recompute.scope():
            assert torch.equal(latent(x), plain)
    assert torch.equal(latent(x).detach(), plain)


def test_recomputation_runs_under_the_forward_passs_autocast():
    """Backward runs outside autocast: an op that autocast ran in fp32 (a CUDA LayerNorm of bf16 activations
    with fp32 weights) must be recomputed under the same autocast, or it fails there."""
    states = []

    def norm(t):
        states.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return torch.nn.functional.layer_norm(t, t.shape[-1:])

    x = torch.randn(4, 8, requires_grad=True)
    linear = torch.nn.Linear(8, 8)
    with recompute.scope():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = linear(recompute.linear_input(norm, x * 2))
        out.float().sum().backward()
    assert states == [True, True]  # forward, then the recomputation for the Linear's weight gradient
