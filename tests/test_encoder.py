import pytest
import torch

from omniperceiver.core import EncoderConfig, PerceiverEncoder


def encoder(**overrides) -> PerceiverEncoder:
    options = dict(
        input_channels=12,
        num_latents=8,
        latent_channels=16,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
    )
    options.update(overrides)
    return EncoderConfig(**options).build()


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_latents_are_invariant_to_input_order():
    model = encoder(num_blocks=2, cross_attend_every=1)
    inputs = torch.randn(2, 50, 12)
    permutation = torch.randperm(50)
    torch.testing.assert_close(model(inputs[:, permutation]), model(inputs), atol=1e-5, rtol=0)


def test_padded_batch_equals_each_sample_alone():
    model = encoder(num_blocks=2, cross_attend_every=1).eval()
    lengths = [9, 4, 13]
    samples = [torch.randn(1, n, 12) for n in lengths]
    batch = torch.zeros(3, 13, 12)
    mask = torch.zeros(3, 13, dtype=torch.bool)
    for i, sample in enumerate(samples):
        batch[i, : lengths[i]] = sample[0]
        batch[i, lengths[i] :] = 100.0  # padding content must not matter
        mask[i, : lengths[i]] = True
    together = model(batch, mask)
    for i, sample in enumerate(samples):
        torch.testing.assert_close(together[i : i + 1], model(sample), atol=1e-5, rtol=0)


def test_fully_masked_example_stays_finite_with_finite_gradients():
    model = encoder()
    inputs = torch.randn(2, 10, 12, requires_grad=True)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1] = False
    out = model(inputs, mask)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(inputs.grad).all() and inputs.grad[1].abs().max() == 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(("std", "spread"), [(0.02, 0.02), (1.0, 0.88)])  # a normal cut at +-2 = 2 std: 0.88 std
def test_latents_start_with_the_configured_spread(std, spread):
    torch.manual_seed(0)
    latents = encoder(num_latents=64, latent_channels=64, latent_init_std=std).latents
    assert latents.std().item() == pytest.approx(spread, rel=0.05)
    assert latents.abs().max().item() <= 2


def test_the_cross_attention_starts_with_scores_at_the_square_of_its_qk_gain():
    """Queries and keys at 3x the default initialization: the scores of one example start 9x as large, the
    attention over 512 inputs much sharper (the largest weight of a latent's map, averaged over the maps)."""
    inputs = torch.randn(1, 512, 12)
    largest = {}
    for gain in (1.0, 3.0):
        torch.manual_seed(0)
        model = encoder(num_latents=16, cross_attention_qk_gain=gain, cross_attend_every=2, num_blocks=4)
        for block in model.cross_attentions:  # the shared later cross-attention too
            attention = block.attention
            assert attention.value.weight.abs().max() <= 12**-0.5  # the values keep PyTorch's bound
            for projection in (attention.query, attention.key):
                bound = projection.in_features**-0.5  # PyTorch's default: uniform within +-1/sqrt(fan_in)
                assert projection.weight.abs().max().item() == pytest.approx(gain * bound, rel=0.05)
        with torch.no_grad():
            first_map = model.cross_attention_maps(inputs)[0]  # (B, H, N, M)
        largest[gain] = first_map.amax(-1).mean().item()
    assert largest[3.0] > 4 * largest[1.0]


def test_shared_latent_blocks_do_not_grow_the_parameter_count():
    assert count(encoder(num_blocks=1)) == count(encoder(num_blocks=6))
    one_block = count(encoder(num_blocks=1))
    layers = count(encoder(num_blocks=1).latent_blocks)
    assert count(encoder(num_blocks=3, share_latent_blocks=False)) == one_block + 2 * layers


def test_cross_attend_schedule_shares_all_but_the_first():
    shared = encoder(num_blocks=8, cross_attend_every=1)
    unshared = encoder(num_blocks=8, cross_attend_every=1, share_cross_attention=False)
    once = encoder(num_blocks=8)
    assert len(once.cross_attentions) == 1 and len(shared.cross_attentions) == 2
    assert len(unshared.cross_attentions) == 8
    cross = count(once.cross_attentions[0])
    assert count(shared) == count(once) + cross and count(unshared) == count(once) + 7 * cross
    plan = [cross for cross, _ in shared.schedule()]
    assert plan[0] is shared.cross_attentions[0] and all(c is shared.cross_attentions[1] for c in plan[1:])
    every_third = [cross is not None for cross, _ in encoder(num_blocks=7, cross_attend_every=3).schedule()]
    assert every_third == [True, False, False, True, False, False, True]


def test_shared_layer_gradient_sums_over_its_applications():
    shared = encoder(num_blocks=3)
    unshared = encoder(num_blocks=3, share_latent_blocks=False)
    state = shared.state_dict()
    for block in range(3):  # give every unshared copy the shared weights
        for name, value in state.items():
            if name.startswith("latent_blocks.0."):
                state_name = name.replace("latent_blocks.0.", f"latent_blocks.{block}.", 1)
                unshared.state_dict()[state_name].copy_(value)
            elif not name.startswith("latent_blocks."):
                unshared.state_dict()[name].copy_(value)
    inputs = torch.randn(2, 10, 12)
    out_shared, out_unshared = shared(inputs), unshared(inputs)
    torch.testing.assert_close(out_shared, out_unshared)
    out_shared.square().sum().backward()
    out_unshared.square().sum().backward()
    for name, parameter in shared.latent_blocks[0].named_parameters():
        copies = [dict(unshared.latent_blocks[b].named_parameters())[name].grad for b in range(3)]
        torch.testing.assert_close(parameter.grad, sum(copies), atol=1e-6, rtol=1e-4)
        assert all(c.abs().max() > 0 for c in copies)


def backward_keeping(model, inputs) -> int:
    """Run model(inputs).square().sum() and its backward pass; return the bytes autograd kept between them."""
    kept = 0

    def keep(tensor):
        nonlocal kept
        kept += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
        loss = model(inputs).square().sum()
    loss.backward()
    return kept


def test_activation_checkpointing_keeps_little_for_backward_and_gives_identical_gradients():
    """Checkpointed blocks keep no activations for backward (they run again in it); the gradients are the same."""
    plain = encoder(num_blocks=2, cross_attend_every=1)
    checkpointed = encoder(num_blocks=2, cross_attend_every=1, activation_checkpointing=True)
    checkpointed.load_state_dict(plain.state_dict())
    inputs = torch.randn(2, 10, 12)
    kept = [backward_keeping(model, inputs) for model in (plain, checkpointed)]
    assert kept[1] < 0.1 * kept[0], kept  # bytes: 119,552 plain, 9,088 checkpointed
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_cross_attention_maps_are_probabilities_over_the_inputs():
    model = encoder(num_blocks=2, cross_attend_every=1, num_cross_attention_heads=2)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[0, 7:] = False
    maps = model.cross_attention_maps(torch.randn(2, 10, 12), mask)
    assert len(maps) == 2 and maps[0].shape == (2, 2, 8, 10)
    torch.testing.assert_close(maps[1].sum(-1), torch.ones(2, 2, 8))
    assert maps[0][0, :, :, 7:].abs().max() == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            dict(num_cross_attention_heads=5),
            r"num_cross_attention_heads=5 is invalid: expected a divisor of cross_attention_qk_channels \(12\)",
        ),
        (
            dict(num_self_attention_heads=3),
            r"num_self_attention_heads=3 .* self_attention_qk_channels \(16\)",
        ),
        (dict(num_latents=0), r"num_latents=0 is invalid: expected a positive integer"),
        (dict(dropout=1.5), r"dropout=1.5 is invalid"),
        (dict(latent_init_std=0.0), r"latent_init_std=0.0 is invalid: expected a positive finite number"),
        (dict(latent_init_std=float("inf")), r"latent_init_std=inf is invalid: expected a positive finite number"),
        (dict(cross_attention_qk_gain=-1.0), r"cross_attention_qk_gain=-1.0 is invalid: expected a positive finite"),
        (
            dict(cross_attention_v_channels=10, num_cross_attention_heads=4),
            r"cross_attention_v_channels \(10\)",
        ),
    ],
)
def test_invalid_configs_name_the_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        encoder(**overrides)


@pytest.mark.parametrize(
    ("inputs", "mask", "message"),
    [
        (torch.randn(2, 10), None, r"inputs must have shape \(B, M, C=12\), got \(2, 10\)"),
        (torch.randn(2, 10, 11), None, r"C=12\), got \(2, 10, 11\)"),
        (
            torch.randn(2, 10, 12),
            torch.ones(2, 9, dtype=torch.bool),
            r"\(B, M\) = \(2, 10\), got torch.bool of shape \(2, 9\)",
        ),
        (torch.randn(2, 10, 12), torch.ones(2, 10), r"bool tensor .* got torch.float32"),
        (torch.randn(2, 10, 12), torch.ones(3, 10, dtype=torch.bool), r"\(2, 10\), got torch.bool of shape \(3, 10\)"),
    ],
)
def test_bad_inputs_name_expected_and_actual_shapes(inputs, mask, message):
    with pytest.raises(ValueError, match=message):
        encoder()(inputs, mask)


def test_weights_are_cast_once_across_forward_passes_under_inference_autocast():
    """Without autograd, Linear layers keep their bf16 weight copies (core/linear.py): a second forward pass, under
    inference_mode or no_grad, casts only activations. (Where the fp32 units serve bf16 products,
    core/kernels/fp32_units.py, the weights are not cast: test autocast's path.)"""
    from omniperceiver import zoo
    from omniperceiver.core.kernels import Policy, use_policy
    from omniperceiver.core.linear import Linear

    model = zoo.create("vision-perceiver-fourier", reduced=True).eval()
    images = torch.randn(1, 3, 16, 16)

    def casts_and_output(mode):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16)
        with use_policy(Policy(linear_units="bf16")), mode(), autocast, torch.profiler.profile() as profile:
            output = model(images)
        return sum(e.count for e in profile.key_averages() if e.key == "aten::_to_copy"), output

    first, first_output = casts_and_output(torch.inference_mode)
    again, again_output = casts_and_output(torch.inference_mode)
    no_grad, no_grad_output = casts_and_output(torch.no_grad)
    kept = sum(1 + (m.bias is not None) for m in model.modules() if isinstance(m, Linear))  # 48: every core layer's
    assert first - again >= kept and no_grad == again
    assert torch.equal(again_output, first_output) and torch.equal(no_grad_output, first_output)
