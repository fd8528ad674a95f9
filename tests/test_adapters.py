"""The modality pieces of the published models, checked against transformers' own functions where it has them."""

import pytest
import torch
import torch.nn.functional as F

import omniperceiver as op
from omniperceiver import zoo
from omniperceiver.adapters.flow import FlowInputConfig, box_blur, frame_patches, normalize_patches
from omniperceiver.adapters.image import ConvStemConfig, ImageInputConfig, space_to_depth
from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.core.position import FourierPositionConfig, grid_coordinates
from omniperceiver.models.pretrained import WEIGHTS_FILE

transformers = pytest.importorskip("transformers")
reference = pytest.importorskip("transformers.models.perceiver.modeling_perceiver")


def test_byte_tokenizer_matches_the_reference_tokenizer():
    theirs = transformers.PerceiverTokenizer()
    ours = ByteTokenizer()
    texts = ["hello", "Perceiver ✓ ünïcode", ""]
    for text in texts:
        assert ours.encode(text) == theirs(text).input_ids
        assert ours.decode(ours.encode(text)) == text
    ids, mask = ours.batch(texts)
    expected = theirs(texts, padding="longest", return_tensors="pt")
    assert torch.equal(ids, expected.input_ids) and torch.equal(mask, expected.attention_mask.bool())
    assert ours.decode([4, 3, 110, 5], skip_special_tokens=False) == "[CLS][MASK]h[SEP]"
    with pytest.raises(ValueError, match="text 0 has 7 tokens, more than max_length=4"):
        ours.batch(["hello"], max_length=4)


def test_space_to_depth_matches_the_reference_for_images_and_videos():
    images = torch.randn(2, 3, 8, 12)
    assert torch.equal(space_to_depth(images, (4, 4)), reference.space_to_depth(images, spatial_block_size=4))
    videos = torch.randn(2, 4, 3, 8, 12)
    expected = reference.space_to_depth(videos, temporal_block_size=2, spatial_block_size=4)
    assert torch.equal(space_to_depth(videos, (2, 4, 4)), expected)
    with pytest.raises(ValueError, match="not divisible into blocks"):
        space_to_depth(images, (3, 3))


def test_frame_patches_match_the_reference_patch_extraction():
    """The published colab's extract_image_patches: TF 'SAME' padding, unfold, channels (kh, kw, C)."""
    frames = torch.randn(2, 2, 3, 6, 7)
    padded = F.pad(frames.flatten(0, 1), (1, 1, 1, 1))
    patches = padded.unfold(2, 3, 1).unfold(3, 3, 1).permute(0, 4, 5, 1, 2, 3).reshape(2, 2, 27, 6, 7)
    expected = patches.permute(0, 3, 4, 1, 2).reshape(2, 6, 7, 54)  # both frames per pixel, frame-major
    assert torch.equal(frame_patches(frames, 3), expected)


def test_spaced_patches_hold_pixels_spacing_apart():
    frames = torch.randn(1, 1, 3, 20, 24)
    patches = frame_patches(frames, 3, spacing=2).view(1, 20, 24, 3, 3, 3)  # (B, H, W, kh, kw, C)
    assert torch.equal(patches[0, 10, 12, 0, 2], frames[0, 0, :, 8, 14])  # kh 0: 2 rows up, kw 2: 2 columns right
    assert torch.equal(patches[0, 0, 0, 0], torch.zeros(3, 3))  # zero padding beyond the frame
    pair = torch.randn(2, 2, 3, 20, 24)
    config = FlowInputConfig((20, 24), patch_size=3, channels=None, normalize=True, levels=2)
    inputs, _ = config.build()(pair)
    assert inputs.shape == (2, 480, 2 * 54) and config.num_channels == 108
    coarse = normalize_patches(frame_patches(box_blur(pair, 3), 3, spacing=2))  # level 1: 3x3 boxes, 2 px apart
    assert torch.allclose(inputs[..., 54:], coarse.flatten(1, 2))
    assert torch.allclose(box_blur(pair, 3)[..., 5, 7], pair[..., 4:7, 6:9].mean((-2, -1)))


def test_conv_stem_turns_224_pixels_into_55_squared_tokens():
    image = ImageInputConfig((224, 224), stem=ConvStemConfig(), position=FourierPositionConfig(64, (56, 56)))
    assert image.array.index_shape == (55, 55) and image.num_channels == 322
    inputs, _ = image.build().eval()(torch.randn(1, 3, 224, 224))
    assert inputs.shape == (1, 3025, 322)


def test_subsampled_grid_is_the_references_minus_one_plus_two_i_over_n():
    coordinates = grid_coordinates((3, 4), endpoint=False)
    assert torch.equal(coordinates[:, 0].unique(), -1 + 2 * torch.arange(3) / 3)
    assert torch.equal(coordinates[:, 1].unique(), torch.tensor([-1.0, -0.5, 0.0, 0.5]))


def test_tied_embedding_is_saved_once_and_stays_tied(tmp_path):
    from safetensors.torch import load_file

    model = zoo.create("language-perceiver", reduced=True)
    assert model.output_adapter.embedding is model.input_adapter.embedding
    model.save_pretrained(tmp_path)
    stored = load_file(tmp_path / WEIGHTS_FILE)
    assert "input_adapter.embedding.weight" in stored and "output_adapter.embedding.weight" not in stored
    loaded = op.from_pretrained(tmp_path)
    assert loaded.output_adapter.embedding is loaded.input_adapter.embedding
    assert torch.equal(loaded.input_adapter.embedding.weight, model.input_adapter.embedding.weight)


def test_a_fully_masked_modality_is_ignored_and_an_unmasked_one_is_read():
    model = zoo.create("multimodal-perceiver", reduced=True).eval()
    inputs = {"audio": torch.randn(1, 64), "image": torch.randn(1, 2, 3, 16, 16), "label": torch.zeros(1, 10)}
    indices = {"label": torch.tensor([0])}
    with torch.no_grad():
        base = model(inputs, output_indices=indices)["label"]
        other_label = model({**inputs, "label": torch.ones(1, 10)}, output_indices=indices)["label"]
        other_audio = model({**inputs, "audio": torch.randn(1, 64)}, output_indices=indices)["label"]
    assert torch.equal(base, other_label)  # mask_probability 1: the label input never reaches the model
    assert not torch.allclose(base, other_audio)
    with pytest.raises(ValueError, match=r"expected a dict with the modalities \['audio', 'image', 'label'\]"):
        model({"audio": inputs["audio"]})
    with pytest.raises(ValueError, match="unknown modalities"):
        model(inputs, output_indices={"video": torch.tensor([0])})


def test_text_inputs_are_checked():
    model = zoo.create("text-classifier", reduced=True)
    with pytest.raises(ValueError, match="exceeds max_length=48"):
        model(torch.zeros(1, 49, dtype=torch.long))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 262\)"):
        model(torch.full((1, 4), 262))
    with pytest.raises(ValueError, match="expected token ids"):
        model(torch.zeros(1, 4))


def test_every_zoo_model_builds_at_reduced_size_and_round_trips(tmp_path):
    for name in zoo.PUBLISHED:
        config = zoo.config(name, reduced=True)
        assert op.PerceiverIOConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown model 'vision'; known models: language-perceiver"):
        zoo.config("vision")


def test_patch_stem_is_space_to_depth_then_an_optional_projection():
    from omniperceiver.adapters.image import PatchStemConfig

    images = torch.randn(2, 3, 8, 12)
    plain = ImageInputConfig((8, 12), stem=PatchStemConfig(patch_size=4)).build()
    inputs, _ = plain(images)
    assert torch.equal(inputs, reference.space_to_depth(images, spatial_block_size=4).flatten(1, 2))
    projected = ImageInputConfig((8, 12), stem=PatchStemConfig(patch_size=4, channels=16)).build()
    assert projected(images)[0].shape == (2, 6, 16) and projected.config.num_channels == 16
    with pytest.raises(ValueError, match="a padding mask needs the pixel stem"):
        projected(images, torch.ones(2, 8, 12, dtype=torch.bool))
