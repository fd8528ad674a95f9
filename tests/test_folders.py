"""Loaders for a user's own data: a subfolder per class, or a CSV table."""

import wave

import numpy as np
import pytest
import torch
from PIL import Image

from omniperceiver import data
from omniperceiver.data.file_dataset import rows_of


def class_folders(root, write, count=10):
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(count):
            write(root / label, i, label)
    return root


def test_image_folder(tmp_path):
    def write(folder, i, label):
        value = 30 if label == "cat" else 220
        Image.fromarray(np.full((12, 10, 3), value + i, dtype=np.uint8)).save(folder / f"{i}.png")

    splits = data.image_folder(class_folders(tmp_path / "images", write))
    images, labels = rows_of(splits.train)
    assert splits.classes == ("cat", "dog") and splits.sizes() == (14, 2, 4) and images.shape[1:] == (12, 10, 3)
    assert torch.equal(images.mean((1, 2, 3)) > 0.5, labels == 1)  # the pixels travel with their label
    Image.fromarray(np.zeros((5, 5, 3), dtype=np.uint8)).save(tmp_path / "images" / "cat" / "small.png")
    with pytest.raises(ValueError, match="differ in size"):
        data.image_folder(tmp_path / "images")
    assert rows_of(data.image_folder(tmp_path / "images", size=(8, 8)).train)[0].shape[1:] == (8, 8, 3)
    (tmp_path / "images" / "dog" / "broken.png").write_text("no image")
    with pytest.raises(ValueError, match=r"broken\.png"):
        data.image_folder(tmp_path / "images", size=(8, 8))


def test_wav_folder(tmp_path):
    def write(folder, i, label):
        with wave.open(str(folder / f"{i}.wav"), "wb") as clip:
            clip.setnchannels(1)
            clip.setsampwidth(2)
            clip.setframerate(8000)
            clip.writeframes((np.ones(100 + 10 * i) * (1000 if label == "cat" else -1000)).astype(np.int16).tobytes())

    splits = data.wav_folder(class_folders(tmp_path / "audio", write))
    audio, mask, _ = splits.train.tensors
    assert (
        audio.shape == mask.shape
        and audio.shape[1] == 190
        and torch.equal(mask.sum(1) >= 100, torch.ones(14, dtype=torch.bool))
    )
    assert torch.allclose(audio[mask].abs(), torch.tensor(1000 / 32768))
    assert data.wav_folder(tmp_path / "audio", sample_rate=4000).train.tensors[0].shape[1] == 95


def test_text_folder_refuses_to_cut_a_long_text(tmp_path):
    splits = data.text_folder(
        class_folders(tmp_path / "texts", lambda f, i, label: (f / f"{i}.txt").write_text(f"{label} {i}"))
    )
    ids, mask, _ = splits.test.tensors
    assert ids.shape[1] == mask.shape[1] and splits.classes == ("cat", "dog")
    (tmp_path / "texts" / "cat" / "long.txt").write_text("x" * 100)
    with pytest.raises(ValueError, match=r"long\.txt has 102 tokens, more than max_length=50"):
        data.text_folder(tmp_path / "texts", max_length=50)


def test_point_cloud_folder_reads_npy_ply_and_off(tmp_path):
    rng = np.random.default_rng(0)

    def write(folder, i, label):
        cloud = rng.normal(size=(40, 3)) * (1 if label == "cat" else 3)
        kind = i % 3
        if kind == 0:
            np.save(folder / f"{i}.npy", cloud)
        elif kind == 1:
            vertices = "\n".join(" ".join(map(str, p)) for p in cloud)
            properties = "property float x\nproperty float y\nproperty float z"
            header = f"ply\nformat ascii 1.0\nelement vertex {len(cloud)}\n{properties}\nend_header\n"
            (folder / f"{i}.ply").write_text(header + vertices + "\n")
        else:
            vertices = "\n".join(" ".join(map(str, p)) for p in cloud)
            (folder / f"{i}.off").write_text(f"OFF\n{len(cloud)} 0 0\n{vertices}\n")

    splits = data.point_cloud_folder(class_folders(tmp_path / "clouds", write), points=32)
    clouds, labels = splits.train.tensors
    assert clouds.shape[1:] == (32, 3) and clouds.mean(1).abs().max() < 1e-5
    assert (clouds[labels == 1].std() > 2 * clouds[labels == 0].std()).item()
    with pytest.raises(ValueError, match="fewer than points=64"):
        data.point_cloud_folder(tmp_path / "clouds", points=64)


def test_csv_series(tmp_path):
    rows = ["t0,t1,t2,kind"] + [f"{i},{i + 1},{i + 2},{'up' if i % 2 else 'down'}" for i in range(20)]
    (tmp_path / "series.csv").write_text("\n".join(rows) + "\n")
    splits = data.csv_series(tmp_path / "series.csv", label_column="kind")
    assert splits.classes == ("down", "up") and splits.train.tensors[0].shape[1:] == (3, 1)
    with pytest.raises(ValueError, match=r"no column 'label'; its columns: \['t0', 't1', 't2', 'kind'\]"):
        data.csv_series(tmp_path / "series.csv", label_column="label")


def test_a_folder_without_classes_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(ValueError, match="needs a subfolder per class"):
        data.image_folder(tmp_path)
