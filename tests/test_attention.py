import math

import pytest
import torch

from omniperceiver.core import MultiHeadAttention, attend, causal_mask, key_padding_mask


def materialized(q, k, v, mask=None):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def test_attend_equals_materialized_softmax():
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 4)
    out, weights = attend(q, k, v)
    assert weights is None
    torch.testing.assert_close(out, materialized(q, k, v), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(("qk_channels", "v_channels"), [(261, 261), (13, 7), (64, 20)])
def test_attend_handles_unaligned_head_channels(qk_channels, v_channels):
    # on CUDA these are zero-padded to multiples of 8 so that a fused kernel runs
    q, k, v = torch.randn(2, 1, 16, qk_channels), torch.randn(2, 1, 40, qk_channels), torch.randn(2, 1, 40, v_channels)
    mask = key_padding_mask(torch.arange(40) < torch.tensor([[40], [25]]), 2, 40)
    out, _ = attend(q, k, v, mask=mask)
    assert out.shape == (2, 1, 16, v_channels)
    torch.testing.assert_close(out, materialized(q, k, v, mask), atol=1e-5, rtol=1e-4)


def test_key_padding_mask_ignores_masked_keys_exactly():
    q, k, v = torch.randn(2, 1, 4, 8), torch.randn(2, 1, 6, 8), torch.randn(2, 1, 6, 8)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    out, _ = attend(q, k, v, mask=key_padding_mask(mask, 2, 6))
    alone, _ = attend(q[1:], k[1:, :, :3], v[1:, :, :3])
    torch.testing.assert_close(out[1:], alone, atol=1e-6, rtol=1e-5)
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 3:], v2[1, :, 3:] = 1e4, -1e4  # garbage in padded keys changes nothing
    out2, _ = attend(q, k2, v2, mask=key_padding_mask(mask, 2, 6))
    torch.testing.assert_close(out, out2)


def test_fully_masked_rows_are_zero_with_finite_gradients():
    q = torch.randn(2, 2, 3, 8, requires_grad=True)
    k = torch.randn(2, 2, 5, 8, requires_grad=True)
    v = torch.randn(2, 2, 5, 8, requires_grad=True)
    mask = torch.ones(2, 1, 3, 5, dtype=torch.bool)
    mask[0] = False  # every query of the first example sees nothing
    mask[1, :, 1] = False  # one query row of the second example sees nothing
    for need_weights in (False, True):
        out, _ = attend(q, k, v, mask=mask, need_weights=need_weights)
        assert torch.isfinite(out).all()
        assert out[0].abs().max() == 0 and out[1, :, 1].abs().max() == 0
        assert out[1, :, 0].abs().max() > 0
        grads = torch.autograd.grad(out.square().sum(), (q, k, v))
        assert all(torch.isfinite(g).all() for g in grads)
        assert grads[0][0].abs().max() == 0


def test_need_weights_returns_probabilities_matching_the_fused_output():
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
    mask = key_padding_mask(torch.tensor([[True, True, False, True, False, True]]), 1, 6)
    fused, _ = attend(q, k, v, mask=mask)
    out, weights = attend(q, k, v, mask=mask, need_weights=True)
    torch.testing.assert_close(out, fused, atol=1e-6, rtol=1e-5)
    assert weights.shape == (1, 2, 4, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 4))
    assert weights[..., [2, 4]].abs().max() == 0


def test_causal_mask_with_offset_right_aligns_queries():
    expected = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(2, 4), expected)
    assert torch.equal(causal_mask(3, 3), torch.ones(3, 3).tril().bool())
    with pytest.raises(ValueError, match="num_queries <= num_keys"):
        causal_mask(5, 4)


def test_causal_and_padding_masks_compose():
    q, k, v = torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4), torch.randn(1, 1, 3, 4)
    mask = causal_mask(3, 3) & key_padding_mask(torch.tensor([[False, True, True]]), 1, 3)
    out, weights = attend(q, k, v, mask=mask, need_weights=True)
    assert out[0, 0, 0].abs().max() == 0  # the padded first position sees no key
    torch.testing.assert_close(weights[0, 0, 1], torch.tensor([0.0, 1.0, 0.0]))
    torch.testing.assert_close(out[0, 0, 1], v[0, 0, 1])


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.ones(2, 6), r"bool tensor of shape \(B, M\) = \(2, 6\), got torch.float32"),
        (torch.ones(2, 5, dtype=torch.bool), r"\(B, M\) = \(2, 6\), got torch.bool of shape \(2, 5\)"),
        (torch.ones(2, 1, 6, dtype=torch.bool), r"of shape \(2, 1, 6\)"),
        (torch.ones(3, 6, dtype=torch.bool), r"= \(2, 6\), got torch.bool of shape \(3, 6\)"),
    ],
)
def test_bad_padding_masks_are_rejected(mask, message):
    with pytest.raises(ValueError, match=message):
        key_padding_mask(mask, 2, 6)


def test_multi_head_attention_checks_head_divisibility():
    with pytest.raises(ValueError, match=r"qk_channels \(10\) must be divisible by num_heads \(4\)"):
        MultiHeadAttention(
            query_channels=8, kv_channels=8, qk_channels=10, v_channels=8, output_channels=8, num_heads=4
        )


def test_padding_lets_the_cpu_flash_kernel_take_different_qk_and_v_head_widths():
    """Where the chunked kernel does not serve (dropout), q and k (d = 32) are zero-padded to v's width (160)."""
    from omniperceiver.core.kernels.sdpa import pad_head_channels

    q, k, v = torch.randn(2, 4, 8, 32), torch.randn(2, 4, 16, 32), torch.randn(2, 4, 16, 160)
    padded = pad_head_channels(q, k, v)
    assert [t.shape[-1] for t in padded] == [160, 160, 160]
    assert torch._fused_sdp_choice(*padded) != 0  # not the math kernel
    out = torch.nn.functional.scaled_dot_product_attention(*padded, scale=32**-0.5)
    torch.testing.assert_close(out, materialized(q, k, v), atol=1e-5, rtol=1e-4)


def test_bf16_heads_are_padded_to_a_multiple_of_32_channels_for_the_cpu_flash_kernel():
    """The CPU flash kernel's bf16 products run 1.7-2.7x slower at 261 channels than padded to 288 (AMX); fp32
    heads keep their width (as fast at any width). The output is the unpadded heads' attention."""
    from omniperceiver.core.kernels.sdpa import pad_head_channels, sdpa

    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 8, 261), torch.randn(1, 2, 16, 261), torch.randn(1, 2, 16, 261)
    assert [t.shape[-1] for t in pad_head_channels(q, k, v)] == [261] * 3
    q16, k16, v16 = (t.bfloat16() for t in (q, k, v))
    assert [t.shape[-1] for t in pad_head_channels(q16, k16, v16)] == [288] * 3
    out = sdpa(q16, k16, v16, mask=None, dropout=0.0, scale=261**-0.5)
    assert out.shape == (1, 2, 8, 261) and out.dtype == torch.bfloat16
    expected = materialized(*(t.float() for t in (q16, k16, v16)))
    torch.testing.assert_close(out.float(), expected, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("threads", [1, 2])
def test_sdpa_on_the_cpu_runs_in_groups_of_heads_whose_k_and_v_copies_fit_a_block(monkeypatch, threads):
    """The CPU flash kernel copies k and v (and padding copies them again): a call over many keys runs in groups
    of heads whose padded k and v hold at most a block of values (at least one head per thread), with the whole
    call's values and gradients (masked, bf16), and needs a fraction of the memory above its inputs (masked: unmasked
    calls without autograd run over blocks of keys instead)."""
    from omniperceiver.core.kernels import sdpa as sdpa_module
    from omniperceiver.memory import allocated_peak_mb

    spy, calls = torch.nn.functional.scaled_dot_product_attention, []
    monkeypatch.setattr(
        sdpa_module.F,
        "scaled_dot_product_attention",
        lambda *a, **kw: calls.append(tuple(a[1].shape[:2])) or spy(*a, **kw),
    )

    def grouped(block_values, run):
        """run() with blocks of ``block_values`` on ``threads`` threads; the (B, H) of each SDPA call it made."""
        monkeypatch.setattr(sdpa_module, "values_per_block", lambda device: block_values)
        calls.clear()
        saved = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return run(), list(calls)
        finally:
            torch.set_num_threads(saved)

    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 2, n, 40).bfloat16().requires_grad_() for n in (16, 8192, 8192))  # padded to 64
    mask = torch.rand(4, 1, 1, 8192) > 0.3
    out, shapes = grouped(3 * 8192 * 128, lambda: sdpa_module.sdpa(q, k, v, mask=mask, dropout=0.0, scale=40**-0.5))
    assert shapes == [(1, 2)] * 4  # 3 padded heads' k and v fit a block: whole examples of 2 heads
    wide = [t.detach().float().requires_grad_() for t in (q, k, v)]
    exact = materialized(*wide, mask=mask)
    torch.testing.assert_close(out.float(), exact, atol=2e-2, rtol=2e-2)
    (out.float() * exact.detach()).sum().backward()
    (exact * exact.detach()).sum().backward()
    for t, w in zip((q, k, v), wide, strict=True):
        torch.testing.assert_close(t.grad.float(), w.grad, atol=5e-2, rtol=5e-2)

    def peak():
        with torch.no_grad():
            return allocated_peak_mb(lambda: sdpa_module.sdpa(q, k, v, mask=mask, dropout=0.0, scale=1.0))

    small, shapes = grouped(1, peak)
    assert set(shapes) == {(1, threads)}  # not one head fits: a head a thread
    whole, shapes = grouped(1 << 30, peak)
    assert shapes == [(4, 2)]
    assert small < whole * threads / 4, (small, whole)  # the copies of 8 heads at once -> of `threads` heads


def test_sdpa_without_autograd_runs_one_head_over_many_keys_in_blocks_of_keys(monkeypatch):
    """One head over many keys (batch 1: no heads to split into groups) runs, without autograd, over blocks of
    keys whose padded k and v hold at most a block of values, merged by their log-sum-exp: the whole call's
    values (bf16 and fp32, under autocast as F.scaled_dot_product_attention), a fraction of the memory."""
    from omniperceiver.core.kernels import sdpa as sdpa_module
    from omniperceiver.memory import allocated_peak_mb

    pad, blocks = sdpa_module.pad_head_channels, []  # (once per call of a kernel: the keys it gets)
    monkeypatch.setattr(sdpa_module, "pad_head_channels", lambda q, k, v: blocks.append(k.shape[2]) or pad(q, k, v))
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 1, 64, 40), torch.randn(1, 1, 20_000, 40), torch.randn(1, 1, 20_000, 40)
    monkeypatch.setattr(sdpa_module, "values_per_block", lambda device: 4096 * 128)  # bf16: padded to 64 channels
    for dtype in (torch.bfloat16, torch.float32):
        blocks.clear()
        qd, kd, vd = (t.to(dtype) for t in (q, k, v))
        with torch.no_grad():
            out = sdpa_module.sdpa(qd, kd, vd, mask=None, dropout=0.0, scale=40**-0.5)
        assert out.dtype == dtype and out.shape == (1, 1, 64, 40)
        assert blocks == ([4096] * 4 + [3616] if dtype == torch.bfloat16 else [6553] * 3 + [341])
        exact = materialized(*(t.float() for t in (qd, kd, vd)))
        tolerance = 2e-2 if dtype == torch.bfloat16 else 1e-5
        torch.testing.assert_close(out.float(), exact, atol=tolerance, rtol=tolerance)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = sdpa_module.sdpa(q, k, v, mask=None, dropout=0.0, scale=40**-0.5)
    assert out.dtype == torch.bfloat16 and blocks[-1] == 3616
    torch.testing.assert_close(out.float(), materialized(q, k, v), atol=2e-2, rtol=2e-2)

    def peak():  # (bf16: padding copies k and v)
        q16, k16, v16 = (t.bfloat16() for t in (q, k, v))
        with torch.no_grad():
            return allocated_peak_mb(lambda: sdpa_module.sdpa(q16, k16, v16, mask=None, dropout=0.0, scale=1.0))

    in_blocks = peak()
    monkeypatch.setattr(sdpa_module, "values_per_block", lambda device: 1 << 30)
    blocks.clear()
    whole = peak()
    assert blocks == [20_000] and in_blocks < whole / 2, (in_blocks, whole)


def test_bf16_flash_runs_on_the_fp32_units_and_keeps_bf16_for_backward():
    """Where bf16 matmuls are the slower, unmasked bf16 attention runs the flash kernel in fp32: its output is
    fp32 attention over the bf16 values, rounded to bf16; q, k, v and the output are kept in bf16."""
    from fake_costs import SLOW_BF16

    from omniperceiver.core.kernels import Policy, use_policy

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, n, 16).bfloat16().requires_grad_() for n in (24, 40, 40))
    exact = materialized(*(t.float() for t in (q, k, v)))
    saved = []
    policy = Policy(SLOW_BF16)
    hooks = torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t)
    with use_policy(policy), policy.record() as calls, hooks:
        out, _ = attend(q, k, v)
    assert policy.attention(calls[0]).name == "sdpa-fp32"
    assert out.dtype == torch.bfloat16
    assert (out.float() - exact).abs().max() <= 2**-8 * exact.abs().max()  # one rounding to bf16
    assert sorted(str(t.dtype) for t in saved) == ["torch.bfloat16"] * 4 + ["torch.float32"]  # + logsumexp
    grads = torch.autograd.grad(out.float().square().sum(), (q, k, v))
    want = torch.autograd.grad(exact.square().sum(), (q, k, v))
    for grad, reference in zip(grads, want, strict=True):
        assert grad.dtype == torch.bfloat16
        assert (grad.float() - reference).norm() <= 0.01 * reference.norm()
