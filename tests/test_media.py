import colorsys
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from omniperceiver.media import flow_to_rgb, imagenet_preprocess, load_image, save_npy, save_png


def _random_image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("height, width", [(300, 400), (480, 640), (224, 224), (100, 37), (37, 100), (257, 256)])
def test_imagenet_preprocess_equals_transformers(height, width):
    transformers = pytest.importorskip("transformers")
    processor = transformers.PerceiverImageProcessorPil()
    image = _random_image(height, width, seed=height * 1000 + width)
    reference = torch.from_numpy(processor(image)["pixel_values"][0])
    ours = imagenet_preprocess(image)
    assert ours.shape == (3, 224, 224) and ours.dtype == torch.float32
    # the same uint8 resize and the same float arithmetic: bit for bit equal
    assert torch.equal(ours, reference)
    # a PIL image gives the same result as its array
    assert torch.equal(imagenet_preprocess(Image.fromarray(image)), reference)


def test_imagenet_preprocess_crops_the_center_before_resizing():
    # a 256x512 image whose center 224x224 square is one colour: the output is that colour, normalized
    image = np.zeros((256, 512, 3), dtype=np.uint8)
    image[16:240, 144:368] = (255, 128, 0)
    out = imagenet_preprocess(image)
    expected = (torch.tensor([255, 128, 0]) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor(
        [0.229, 0.224, 0.225]
    )
    torch.testing.assert_close(out, expected.cpu()[:, None, None].expand(3, 224, 224), atol=1e-5, rtol=0)


def test_imagenet_preprocess_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        imagenet_preprocess(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        imagenet_preprocess(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="too small"):
        imagenet_preprocess(np.zeros((1, 10, 3), dtype=np.uint8))


def test_load_image_converts_rgba_and_grayscale(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.dtype == np.uint8 and loaded.shape == (5, 7, 3)
    np.testing.assert_array_equal(loaded, rgba[..., :3])

    gray = np.random.default_rng(2).integers(0, 256, (6, 4), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    loaded = load_image(str(tmp_path / "gray.png"))
    assert loaded.dtype == np.uint8 and loaded.shape == (6, 4, 3)
    np.testing.assert_array_equal(loaded, np.repeat(gray[..., None], 3, axis=-1))


def test_load_image_converts_palette_images(tmp_path):
    palette = Image.new("P", (3, 2))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putdata([0, 1, 0, 1, 1, 0])
    palette.save(tmp_path / "palette.png")
    expected = np.array([[[10, 20, 30], [200, 100, 50], [10, 20, 30]], [[200, 100, 50], [200, 100, 50], [10, 20, 30]]])
    np.testing.assert_array_equal(load_image(tmp_path / "palette.png"), expected)


def test_load_image_raises_value_error_naming_the_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=re.escape(str(text))) as info:
        load_image(text)
    assert "not a recognized image format" in str(info.value)
    truncated = tmp_path / "truncated.png"
    Image.fromarray(_random_image(64, 64)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(ValueError, match=re.escape(str(truncated))):
        load_image(truncated)
    missing = tmp_path / "missing.png"
    with pytest.raises(ValueError, match=re.escape(str(missing))) as info:
        load_image(missing)
    assert "No such file" in str(info.value)


def _saturation(rgb):
    return colorsys.rgb_to_hsv(*(np.asarray(rgb, dtype=np.float64) / 255))[1]


def _hue(rgb):
    return colorsys.rgb_to_hsv(*(np.asarray(rgb, dtype=np.float64) / 255))[0]


def test_flow_to_rgb_zero_flow_is_white():
    rgb = flow_to_rgb(np.zeros((4, 5, 2)))
    assert rgb.dtype == np.uint8 and rgb.shape == (4, 5, 3)
    assert (rgb == 255).all()


def test_flow_to_rgb_hue_follows_direction():
    flow = np.zeros((1, 4, 2), dtype=np.float32)
    flow[0, 0] = (1, 0)  # right
    flow[0, 1] = (-1, 0)  # left
    flow[0, 2] = (0, 1)  # down
    flow[0, 3] = (0, -1)  # up
    rgb = flow_to_rgb(flow)
    # entries of the 55-colour Middlebury wheel (RY 15, YG 6, GC 4, CB 11, BM 13, MR 6) at angle
    # atan2(-v, -u): right is entry 0, left entry 27, down halfway between 13 and 14, up between 40 and 41
    np.testing.assert_array_equal(rgb[0, 0], (255, 0, 0))
    np.testing.assert_array_equal(rgb[0, 1], (0, 255 - 255 * 2 // 11, 255))
    np.testing.assert_array_equal(rgb[0, 2], (255, (255 * 13 // 15 + 255 * 14 // 15) // 2, 0))
    np.testing.assert_array_equal(rgb[0, 3], ((255 * 4 // 13 + 255 * 5 // 13) // 2, 0, 255))
    hues = [_hue(color) for color in rgb[0]]
    assert len({round(h, 2) for h in hues}) == 4


def test_flow_to_rgb_magnitude_sets_saturation():
    flow = np.zeros((1, 3, 2))
    flow[0, :, 0] = (0.5, 1.0, 2.0)
    flow[0, :, 1] = (0.25, 0.5, 1.0)  # one direction, three magnitudes
    rgb = flow_to_rgb(flow)
    saturations = [_saturation(color) for color in rgb[0]]
    assert saturations[0] < saturations[1] < saturations[2]
    assert saturations[2] == pytest.approx(1.0, abs=0.01)
    assert saturations[0] == pytest.approx(0.25, abs=0.01)
    # same hue: only the distance from white changes
    assert max(_hue(color) for color in rgb[0]) - min(_hue(color) for color in rgb[0]) < 0.01
    distance_from_white = (255 - rgb[0].astype(int)).sum(axis=-1)
    assert (np.diff(distance_from_white) > 0).all()


def test_flow_to_rgb_normalizes_by_the_largest_vector_and_accepts_torch():
    flow = torch.randn(8, 9, 2, generator=torch.Generator().manual_seed(0), device="cpu")
    rgb = flow_to_rgb(flow)
    np.testing.assert_array_equal(rgb, flow_to_rgb(flow.numpy() * 10))
    np.testing.assert_array_equal(rgb, flow_to_rgb(flow.double().numpy()))


def test_flow_to_rgb_draws_unknown_flow_as_zero():
    flow = np.ones((2, 2, 2))
    flow[0, 0] = (np.nan, 1.0)
    flow[1, 1] = (np.inf, 0.0)
    rgb = flow_to_rgb(flow)
    assert (rgb[0, 0] == 255).all() and (rgb[1, 1] == 255).all()
    np.testing.assert_array_equal(rgb[0, 1], rgb[1, 0])
    assert _saturation(rgb[0, 1]) > 0.9


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3), (2, 4, 5, 2), (2, 4, 5)])
def test_flow_to_rgb_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match=re.escape("(H, W, 2)") + ".*" + re.escape(str(shape))):
        flow_to_rgb(np.zeros(shape))


def test_save_png_round_trips_without_leftovers(tmp_path):
    rgb = _random_image(6, 9, seed=3)
    path = tmp_path / "flow.png"
    save_png(path, rgb)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), rgb)
    save_png(path, torch.from_numpy(rgb[::-1].copy()))  # overwrite in place
    with Image.open(path) as image:
        np.testing.assert_array_equal(np.asarray(image), rgb[::-1])
    assert os.listdir(tmp_path) == ["flow.png"]
    with pytest.raises(ValueError, match="uint8"):
        save_png(tmp_path / "bad.png", rgb.astype(np.float32))
    assert os.listdir(tmp_path) == ["flow.png"]


def test_save_npy_round_trips_without_leftovers(tmp_path):
    array = np.random.default_rng(4).standard_normal((3, 4, 2)).astype(np.float32)
    path = tmp_path / "flow.data"  # no .npy suffix is added
    save_npy(path, array)
    loaded = np.load(path)
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, array)
    save_npy(tmp_path / "tensor.npy", torch.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(np.load(tmp_path / "tensor.npy"), np.arange(6).reshape(2, 3))
    assert sorted(os.listdir(tmp_path)) == ["flow.data", "tensor.npy"]


def test_failed_write_removes_the_temporary_file(tmp_path):
    with pytest.raises(ValueError):
        save_npy(tmp_path / "objects.npy", np.array([object()]))
    assert os.listdir(tmp_path) == []
