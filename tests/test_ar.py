import pytest
import torch

from omniperceiver.core import ARConfig


def ar_core(**overrides):
    options = dict(channels=32, num_latents=96, num_heads=4, num_self_attention_layers=2)
    options.update(overrides)
    return ARConfig(**options).build().eval()


def test_output_t_has_zero_gradient_wrt_later_inputs():
    model = ar_core(num_latents=12)
    x = torch.randn(2, 30, 32, requires_grad=True)
    out = model(x, num_latents=12)  # latents = positions 18..29
    weights = torch.randn(32)  # a sum of LayerNorm outputs would have ~zero gradient
    for latent in (0, 5, 11):
        position = 18 + latent
        (grad,) = torch.autograd.grad((out[:, latent] @ weights).sum(), x, retain_graph=True)
        assert grad[:, position + 1 :].abs().sum() == 0
        assert grad[:, : position + 1].abs().amax(-1).min() > 0  # every earlier position matters


def test_changing_later_tokens_leaves_earlier_outputs_unchanged():
    model = ar_core(num_latents=12)
    x = torch.randn(1, 30, 32)
    changed = x.clone()
    changed[:, 25:] = torch.randn(1, 5, 32)
    out, out_changed = model(x, num_latents=12), model(changed, num_latents=12)
    torch.testing.assert_close(out[:, :7], out_changed[:, :7])
    assert (out[:, 7:] - out_changed[:, 7:]).abs().amax(-1).min() > 0


def test_64_cached_steps_equal_full_recomputation():
    model = ar_core()
    x = torch.randn(2, 100 + 64, 32)
    cache = model.new_cache()
    prompt = model(x[:, :100], num_latents=20, cache=cache)
    torch.testing.assert_close(prompt, model(x[:, :100], num_latents=20))
    for t in range(100, 164):
        step = model(x[:, t : t + 1], cache=cache)
        full = model(x[:, : t + 1], num_latents=20 + t - 99)[:, -1:]
        torch.testing.assert_close(step, full, atol=2e-5, rtol=0)
    assert cache.length == 164 and len(cache.layers[0]) == 84


def test_prompt_shorter_than_the_latents_and_multi_token_steps():
    model = ar_core()
    x = torch.randn(1, 12, 32)
    cache = model.new_cache()
    model(x[:, :3], cache=cache)  # 3 positions, all latents
    torch.testing.assert_close(model(x[:, 3:8], cache=cache), model(x[:, :8])[:, 3:], atol=2e-5, rtol=0)


def test_cached_self_attention_window_slides_at_num_latents():
    model = ar_core(num_latents=8)
    x = torch.randn(1, 20, 32)
    cache = model.new_cache()
    model(x[:, :8], cache=cache)
    for t in range(8, 20):
        out = model(x[:, t : t + 1], cache=cache)
        assert torch.isfinite(out).all()
        assert len(cache.layers[0]) == 8 and cache.length == t + 1
    # the window holds exactly the last 8 latents: the first layer's keys equal a fresh prompt's over them
    fresh = model.new_cache()
    model(x, num_latents=8, cache=fresh)
    torch.testing.assert_close(cache.layers[0].keys, fresh.layers[0].keys, atol=2e-5, rtol=0)
    torch.testing.assert_close(cache.cross.keys, fresh.cross.keys, atol=2e-5, rtol=0)


def test_left_padded_batch_equals_each_sequence_alone():
    model = ar_core(num_latents=12)
    lengths = [10, 7, 4]
    sequences = [torch.randn(1, n, 32) for n in lengths]
    batch = torch.zeros(3, 10, 32)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    for i, sequence in enumerate(sequences):
        batch[i, 10 - lengths[i] :] = sequence[0]
        batch[i, : 10 - lengths[i]] = 50.0
        mask[i, 10 - lengths[i] :] = True
    together = model(batch, num_latents=4, mask=mask)
    assert torch.isfinite(together).all()
    for i, sequence in enumerate(sequences):
        torch.testing.assert_close(together[i : i + 1], model(sequence, num_latents=4), atol=2e-5, rtol=0)
    cache = model.new_cache()  # and the same through the cache, one step at a time
    model(batch[:, :6], num_latents=2, mask=mask[:, :6], cache=cache)
    for t in range(6, 10):
        step = model(batch[:, t : t + 1], mask=mask[:, t : t + 1], cache=cache)
        full = model(batch[:, : t + 1], num_latents=t - 3, mask=mask[:, : t + 1])[:, -1:]
        torch.testing.assert_close(step, full, atol=2e-5, rtol=0)
    alone = model(sequences[2], num_latents=4)[:, -1:]  # 4 real tokens: the latents are exactly them
    torch.testing.assert_close(step[2:], alone, atol=2e-5, rtol=0)


def test_ar_config_and_input_errors():
    with pytest.raises(ValueError, match=r"num_heads=5 is invalid: expected a divisor of channels \(32\)"):
        ar_core(num_heads=5)
    with pytest.raises(ValueError, match=r"rotary_channels=3 is invalid"):
        ar_core(rotary_channels=3)
    for bad in (0, 97):
        with pytest.raises(
            ValueError, match=rf"num_latents={bad} is invalid: expected None or an integer in \[1, 96\]"
        ):
            ar_core()(torch.randn(1, 5, 32), num_latents=bad)
    with pytest.raises(ValueError, match=r"x must have shape \(B, L, D=32\), got \(1, 5, 31\)"):
        ar_core()(torch.randn(1, 5, 31))
    with pytest.raises(ValueError, match=r"mask must be a bool tensor of shape \(B, L\) = \(1, 5\)"):
        ar_core()(torch.randn(1, 5, 32), mask=torch.ones(1, 4, dtype=torch.bool))
