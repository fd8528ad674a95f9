import numpy as np
import pytest
import torch
from PIL import Image

from omniperceiver import zoo
from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.cli import main
from omniperceiver.inference import estimate_flow, fill_masks, parse_masked, tile_origins
from omniperceiver.media import imagenet_preprocess, load_image


def save_image(path, height, width, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def test_image_classification_reports_each_file_and_survives_bad_ones(tmp_path, capsys):
    labels = tuple(f"class {i}" for i in range(10))
    model = zoo.create("vision-perceiver-conv", reduced=True, labels=labels).eval()
    model.save_pretrained(tmp_path / "model")
    first = save_image(tmp_path / "a.png", 40, 50, 0)
    second = save_image(tmp_path / "b.png", 64, 48, 1)
    (tmp_path / "notes.txt").write_text("not an image")
    assert main(["predict", str(tmp_path / "model"), str(first), str(tmp_path / "notes.txt"), str(second)]) == 1
    out, err = capsys.readouterr()
    assert "notes.txt" in err and "not a recognized image format" in err
    with torch.no_grad():
        probabilities = model(imagenet_preprocess(load_image(second), size=32)[None]).softmax(-1)[0]
    best = int(probabilities.argmax())
    section = out.split(str(second))[1]
    assert f"{probabilities[best].item():7.2%}  class {best}" in section.splitlines()[1]
    assert out.count("class ") == 10  # top 5 for each of the two images


def test_masked_bytes_are_filled_with_the_most_likely_bytes(tmp_path):
    model = zoo.create("language-perceiver", reduced=True).eval()
    ids, masked = parse_masked("ab[MASK*3]c[MASK]")
    assert ids[:3] == [4, ord("a") + 6, ord("b") + 6] and masked == [3, 4, 5, 7] and ids[-1] == 5
    filled = fill_masks(model, "ab[MASK*3]c[MASK]")
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0]
    for position in masked:
        ids[position] = int(logits[position, 6:].argmax()) + 6  # bytes only, never a special id
    assert filled == ByteTokenizer().decode(ids)
    assert filled.startswith("ab")
    with pytest.raises(ValueError, match="no \\[MASK\\]"):
        fill_masks(model, "nothing to fill")


def test_tiled_flow_covers_the_frame_and_equals_the_model_on_one_tile(tmp_path, capsys):
    model = zoo.create("optical-flow-perceiver", reduced=True).eval()
    frames = torch.rand(2, 3, 12, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(estimate_flow(model, frames), model(frames[None])[0], atol=1e-6)
    assert tile_origins((20, 30), (12, 16), 4) == [(0, 0), (0, 12), (0, 14), (8, 0), (8, 12), (8, 14)]
    assert tile_origins((20, 30), (12, 16), 3) == [(y, x) for y in (0, 8) for x in (0, 13, 14)]
    with pytest.raises(ValueError, match="smaller than the model's training size"):
        tile_origins((10, 30), (12, 16), 4)
    model.save_pretrained(tmp_path / "flow")
    first, second = save_image(tmp_path / "f1.png", 20, 30, 0), save_image(tmp_path / "f2.png", 20, 30, 1)
    out_dir = tmp_path / "out"
    assert main(["predict", str(tmp_path / "flow"), str(first), str(second), "--output-dir", str(out_dir)]) == 0
    flow = np.load(out_dir / "f1_flow.npy")
    assert flow.shape == (20, 30, 2) and np.isfinite(flow).all()
    assert np.asarray(Image.open(out_dir / "f1_flow.png")).shape == (20, 30, 3)
    assert main(["predict", str(tmp_path / "flow"), str(first)]) == 1
    assert "frames in pairs" in capsys.readouterr().err


def test_a_flow_model_without_positions_reads_frames_smaller_than_its_training_size():
    from omniperceiver import data
    from omniperceiver.train.recipe import load_recipe
    from omniperceiver.train.run import build_model

    recipe = load_recipe("flow-pairs")
    model, _ = build_model(recipe, recipe.task, data.flow_pairs(pairs_per_photo=1, size=(16, 20)))
    model.eval()
    frames = torch.rand(2, 3, 9, 12) * 2 - 1
    with torch.no_grad():
        alone = model(frames[None], output_indices=torch.arange(9 * 12))
    assert torch.allclose(estimate_flow(model, frames), alone.view(9, 12, 2), atol=1e-6)
    assert estimate_flow(model, torch.rand(2, 3, 8, 40)).shape == (8, 40, 2)  # tiles 8 x 20, overlapping
    with pytest.raises(ValueError, match="7x12 pixels are too small: at least 8 a side"):
        estimate_flow(model, torch.rand(2, 3, 7, 12))


def test_multimodal_clip_is_reconstructed(tmp_path, capsys):
    model = zoo.create("multimodal-perceiver", reduced=True).eval()
    model.save_pretrained(tmp_path / "mm")
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    audio = rng.uniform(-1, 1, 64).astype(np.float32)
    np.savez(tmp_path / "clip.npz", video=video, audio=audio)
    np.savez(tmp_path / "short.npz", video=video, audio=np.zeros(10, np.float32))
    clips = [str(tmp_path / "clip.npz"), str(tmp_path / "short.npz")]
    assert main(["predict", str(tmp_path / "mm"), *clips, "--output-dir", str(tmp_path)]) == 1
    out, err = capsys.readouterr()
    assert "audio must have 64 samples" in err
    inputs = {
        "image": torch.from_numpy(video).permute(0, 3, 1, 2)[None].float() / 255,
        "audio": torch.from_numpy(audio)[None],
        "label": torch.zeros(1, 10),
    }
    with torch.no_grad():
        expected = model(inputs, chunk_size=100)  # the whole clip at once, in chunks of another size
    with np.load(tmp_path / "clip_reconstruction.npz") as result:
        assert np.allclose(result["video"], expected["image"][0].reshape(2, 16, 16, 3).clamp(0, 1), atol=1e-5)
        assert np.allclose(result["audio"], expected["audio"][0], atol=1e-5)
        assert np.allclose(result["label"], expected["label"][0].softmax(-1), atol=1e-6)
    assert "video mean |error|" in out


def test_a_text_input_is_a_file_and_a_literal_text_is_given_with_text(tmp_path, capsys):
    zoo.create("text-classifier", reduced=True, labels=("x", "y", "z")).save_pretrained(tmp_path / "model")
    (tmp_path / "note.txt").write_text("hello")
    args = ["predict", str(tmp_path / "model"), "--quiet", "--top", "2"]
    assert main([*args, str(tmp_path / "note.txt"), "--text", "hello"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(tmp_path / "note.txt") and lines[3] == "hello"
    assert lines[1:3] == lines[4:6]  # the file's text and the same literal text: the same classes
    assert main([*args, "hello"]) == 1
    assert "hello: no such file (a literal text is given with --text 'hello')" in capsys.readouterr().err
