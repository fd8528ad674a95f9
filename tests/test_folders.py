"""Loaders for a user's own data: a subfolder per class, or a CSV table."""

import wave

import numpy as np
import pytest
import torch
from PIL import Image

from omniperceiver import data
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.train.inputs import ImageInput


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


@pytest.mark.parametrize("loader", [data.image_folder, data.hf_image_folder], ids=["folder", "datasets"])
def test_images_are_cropped_at_random_in_training_at_the_centre_elsewhere_and_standardized(tmp_path, loader):
    def write(folder, i, label):  # pixel (y, x) holds 10 y + x: a crop is known by its corner
        pixels = 10 * np.arange(12)[:, None] + np.arange(10)[None, :] + (100 if label == "dog" else 0)
        Image.fromarray(np.repeat(pixels[..., None], 3, axis=2).astype(np.uint8)).save(folder / f"{i}.png")

    root = class_folders(tmp_path / "images", write)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    splits = loader(root, crop=(4, 6), mean=mean, std=std)
    (validation, label), (train, _) = splits.validation[0], splits.train[0]
    assert validation.shape == train.shape == (4, 6, 3)
    corner = validation[0, 0] * torch.tensor(std) + torch.tensor(mean)  # (undo the standardization)
    assert torch.allclose(corner * 255, torch.tensor(10.0 * 4 + 2 + 100 * int(label)).expand(3), atol=1e-3)  # centre
    image_file = root / ("dog" if label else "cat") / "0.png"  # (every image of a class is the same)
    adapter = ImageInput().adapter((validation[None],))
    predicted, _ = ImageInput().read(image_file, adapter, {"crop": (4, 6), "mean": mean, "std": std})
    assert torch.allclose(predicted[0].permute(1, 2, 0), validation)  # predict reads a file as the test part
    corners = set()
    for _ in range(30):
        image = splits.train[0][0][..., 0] * std[0] + mean[0]
        corners.add(round(image[0, 0].item() * 255) % 100)
    assert len(corners) > 5 and all(y <= 8 and x <= 4 for y, x in (divmod(corner, 10) for corner in corners))
    for options, message in (
        ({"crop": (13, 4)}, r"crop=\[13, 4\] is larger than the images"),
        ({"mean": mean}, "mean and std go together"),
        ({"mean": mean, "std": (1.0, 0.0, 1.0)}, "std > 0"),
    ):
        with pytest.raises(ValueError, match=message):
            loader(root, **options)


def test_wav_folder(tmp_path):
    def write(folder, i, label):
        with wave.open(str(folder / f"{i}.wav"), "wb") as clip:
            clip.setnchannels(1)
            clip.setsampwidth(2)
            clip.setframerate(8000)
            clip.writeframes((np.ones(100 + 10 * i) * (1000 if label == "cat" else -1000)).astype(np.int16).tobytes())

    splits = data.wav_folder(class_folders(tmp_path / "audio", write))
    audio, mask, _ = rows_of(splits.train)
    assert (
        audio.shape == mask.shape
        and audio.shape[1] == 190
        and torch.equal(mask.sum(1) >= 100, torch.ones(14, dtype=torch.bool))
    )
    assert torch.allclose(audio[mask].abs(), torch.tensor(1000 / 32768))
    assert rows_of(data.wav_folder(tmp_path / "audio", sample_rate=4000).train)[0].shape[1] == 95


def test_text_folder_refuses_to_cut_a_long_text(tmp_path):
    splits = data.text_folder(
        class_folders(tmp_path / "texts", lambda f, i, label: (f / f"{i}.txt").write_text(f"{label} {i}"))
    )
    ids, mask, _ = rows_of(splits.test)
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
    clouds, labels = rows_of(splits.train)
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


def write_text(folder, i, label):
    (folder / f"{i}.txt").write_text(f"{label} {i}")


def test_a_users_own_validation_and_test_folders_are_those_parts(tmp_path):
    """An official test set is scored as it is; a part not given is cut from the training folder, 70:15."""
    class_folders(tmp_path / "train", write_text, count=40)
    class_folders(tmp_path / "test", lambda f, i, label: write_text(f, 100 + i, label), count=5)
    class_folders(tmp_path / "validation", lambda f, i, label: write_text(f, 200 + i, label), count=3)
    cut = data.text_folder(tmp_path / "train", test=tmp_path / "test")
    assert cut.sizes() == (66, 14, 10) and "(test: " in cut.description  # 80 cut 70:15, the test folder's 10
    ids, _, labels = rows_of(cut.test)
    texts = {bytes((row[row > 5] - 6).tolist()).decode() for row in ids}  # (byte b is id b + 6)
    assert texts == {f"{label} {100 + i}" for label in ("cat", "dog") for i in range(5)}
    assert torch.equal(labels, torch.tensor([0] * 5 + [1] * 5))
    both = data.text_folder(tmp_path / "train", validation=tmp_path / "validation", test=tmp_path / "test")
    assert both.sizes() == (80, 6, 10)
    only_validation = data.text_folder(tmp_path / "train", validation=tmp_path / "validation")
    assert only_validation.sizes() == (66, 6, 14)
    (tmp_path / "test" / "cow").mkdir()
    (tmp_path / "test" / "cow" / "0.txt").write_text("moo")
    with pytest.raises(ValueError, match=r"test has classes the training folder lacks: \['cow'\]"):
        data.text_folder(tmp_path / "train", test=tmp_path / "test")


def test_given_parts_of_images_series_and_corpora(tmp_path):
    def write_image(folder, i, label):
        Image.fromarray(np.full((4, 4, 3), 9 * i, dtype=np.uint8)).save(folder / f"{i}.png")

    class_folders(tmp_path / "images", write_image, count=20)
    class_folders(tmp_path / "images-test", write_image, count=2)
    images = data.image_folder(tmp_path / "images", test=tmp_path / "images-test")
    assert images.sizes() == (32, 8, 4) and images.test.files[0].parent.parent.name == "images-test"

    rows = ["t0,t1,label"] + [f"{i},{-i},{'ab'[i % 2]}" for i in range(40)]
    (tmp_path / "series.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "official.csv").write_text("t0,t1,label\n1,2,a\n3,4,b\n5,6,a\n")
    series = data.csv_series(tmp_path / "series.csv", label_column="label", test=tmp_path / "official.csv")
    assert series.sizes() == (32, 8, 3) and torch.equal(
        series.test.tensors[0][:, :, 0], torch.tensor([[1.0, 2], [3, 4], [5, 6]])
    )
    (tmp_path / "short.csv").write_text("t0,t1,label\n1,,a\n")
    short = data.csv_series(tmp_path / "series.csv", label_column="label", test=tmp_path / "short.csv")
    assert short.test.tensors[1].tolist() == [[True, False]]  # a shorter test series, masked

    for part, text in (("corpus", "training text\n" * 200), ("held-out", "held out\n" * 30)):
        (tmp_path / part).mkdir()
        (tmp_path / part / "a.txt").write_text(text)
    corpus = data.text_corpus(tmp_path / "corpus", length=32, test=tmp_path / "held-out")
    assert corpus.test.data == b"held out\n" * 30 and b"held" not in corpus.train.data + corpus.validation.data
    assert len(corpus.train.data) + len(corpus.validation.data) == len("training text\n" * 200)
