import json

import pytest
import torch
from helpers import small_classifier
from safetensors.torch import load_file, save_file

import omniperceiver as op
from omniperceiver.core import Config
from omniperceiver.models.pretrained import WEIGHTS_FILE


def test_classifier_logits_are_invariant_to_element_order_with_positions_attached():
    image_model = small_classifier().eval()
    pixels = torch.randn(2, 6, 5, 3)
    elements, _ = image_model.input_adapter(pixels)  # (B, 30, 3 + F): each pixel with its Fourier features
    set_config = op.PerceiverIOConfig.classifier(
        op.ArrayInputConfig(index_shape=(30,), in_channels=elements.shape[-1], position=None),
        7,
        num_latents=8,
        latent_channels=16,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
    )
    set_model = set_config.build().eval()
    set_model.load_state_dict(image_model.state_dict())
    logits = image_model(pixels)
    torch.testing.assert_close(set_model(elements), logits, atol=1e-5, rtol=0)
    permuted = elements[:, torch.randperm(30)]
    torch.testing.assert_close(set_model(permuted), logits, atol=1e-5, rtol=0)


def test_a_training_step_reaches_every_parameter():
    model = small_classifier(num_blocks=3, cross_attend_every=1, share_cross_attention=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 6, 5, 3)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().max() > 0, name
    optimizer.step()
    assert all(not torch.equal(before[name], p) for name, p in model.named_parameters())


def test_save_and_load_round_trip(tmp_path):
    model = small_classifier(num_blocks=2, cross_attend_every=1).eval()
    x = torch.randn(3, 6, 5, 3)
    model.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["config.json", "model.safetensors"]
    for loaded in (op.from_pretrained(tmp_path / "model"), op.PerceiverIO.from_pretrained(tmp_path / "model")):
        assert not loaded.training and loaded.config == model.config
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


def test_loading_refuses_weights_that_do_not_fit(tmp_path):
    small_classifier().save_pretrained(tmp_path)
    weights = load_file(tmp_path / WEIGHTS_FILE)
    weights["encoder.extra"] = torch.zeros(1)
    weights["encoder.latents"] = torch.zeros(9, 16)
    del weights["decoder.projection.bias"]
    save_file(weights, tmp_path / WEIGHTS_FILE)
    message = (
        r"missing \['decoder.projection.bias'\], unexpected \['encoder.extra'\], "
        r"mis-shaped \['encoder.latents: stored \(9, 16\), model \(8, 16\)'\]"
    )
    with pytest.raises(ValueError, match=message):
        op.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        op.from_pretrained(tmp_path / "nowhere")


def test_configs_round_trip_through_json_and_reject_unknown_fields():
    config = small_classifier(num_blocks=3, cross_attend_every=2).config
    text = config.to_json()
    assert op.PerceiverIOConfig.from_json(text) == config == Config.from_json(text)
    data = json.loads(text)
    assert data["input"]["position"]["type"] == "FourierPositionConfig"
    data["encoder"]["num_latens"] = 3
    with pytest.raises(ValueError, match=r"config.encoder.num_latens: unknown key; valid keys: \['activation"):
        Config.from_dict(data)
    with pytest.raises(ValueError, match=r"config\.type: expected one of \[.EncoderConfig.\], got DecoderConfig"):
        op.EncoderConfig.from_dict(config.decoder.to_dict())
    with pytest.raises(ValueError, match=r"config\.type: unknown config type 'os:nothing_here'"):
        Config.from_dict({"type": "os:nothing_here"})


def test_composition_checks_channel_agreement():
    config = small_classifier().config
    with pytest.raises(ValueError, match=r"encoder.input_channels=5 is invalid: expected the input adapter's channels"):
        op.PerceiverIOConfig(input=config.input, encoder=op.EncoderConfig(input_channels=5), decoder=config.decoder)


@pytest.mark.parametrize(
    ("x", "mask", "message"),
    [
        (torch.randn(2, 30, 3), None, r"shape \(B, n0, n1, C=3\) for index shape \(6, 5\), got \(2, 30, 3\)"),
        (torch.randn(2, 6, 5, 4), None, r"C=3\) for index shape \(6, 5\), got \(2, 6, 5, 4\)"),
        (torch.randn(2, 6, 5, 3), torch.ones(2, 30, dtype=torch.bool), r"\(B, \*index_shape\) = \(2, 6, 5\), got"),
        (torch.randn(2, 6, 5, 3), torch.ones(2, 6, 5), r"bool tensor .* got torch.float32"),
    ],
)
def test_bad_model_inputs_name_expected_and_actual(x, mask, message):
    with pytest.raises(ValueError, match=message):
        small_classifier()(x, mask)


def test_fourier_model_reads_other_image_sizes_and_ignores_masked_pixels():
    model = small_classifier().eval()
    assert model(torch.randn(1, 9, 4, 3)).shape == (1, 7)
    x = torch.randn(2, 6, 5, 3)
    mask = torch.ones(2, 6, 5, dtype=torch.bool)
    mask[1, 3:] = False  # the bottom half of the second image is padding
    out = model(x, mask)
    garbage = x.clone()
    garbage[1, 3:] = 1e3
    torch.testing.assert_close(model(garbage, mask), out)
    inputs, _ = model.input_adapter(x)
    alone = model.decoder(model.encoder(inputs[1:2, :15]), inputs[1:2, :15])[:, 0]  # only the real pixels
    torch.testing.assert_close(out[1:2], alone, atol=1e-5, rtol=0)


def test_torch_compile_matches_eager():
    model = small_classifier(num_blocks=2, cross_attend_every=1).eval()
    x = torch.randn(2, 6, 5, 3)
    mask = torch.ones(2, 6, 5, dtype=torch.bool)
    mask[0, 4:] = False
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x, mask), model(x, mask), atol=1e-5, rtol=1e-5)


def test_value_projection_runs_before_the_position_features():
    config = op.ArrayInputConfig(
        index_shape=(4, 3), in_channels=2, position=op.FourierPositionConfig(num_bands=2), project_channels=6
    )
    adapter = config.build()
    assert config.num_channels == adapter.num_channels == 6 + 2 + 2 * 2 * 2
    x = torch.randn(2, 4, 3, 2)
    inputs, _ = adapter(x)
    torch.testing.assert_close(inputs[..., :6], adapter.projection(x.flatten(1, 2)))
    torch.testing.assert_close(inputs[0, :, 6:], op.FourierPositionConfig(num_bands=2).build((4, 3))())


def test_bf16_autocast_stays_close_to_fp32():
    model = small_classifier(num_blocks=2, cross_attend_every=1).eval()
    x = torch.randn(4, 6, 5, 3)
    mask = torch.ones(4, 6, 5, dtype=torch.bool)
    mask[1, 3:] = False
    reference = model(x, mask)
    with torch.autocast(x.device.type, dtype=torch.bfloat16):
        low = model(x, mask)
    assert low.dtype == torch.bfloat16
    assert (low.float() - reference).abs().max() <= 0.03 * reference.abs().max()
