"""Sharded tar archives (WebDataset format): written from a recipe's folder by ``omniperceiver shards``, split
disjointly and completely over processes x workers, resumed mid-epoch, trained and evaluated on like the folder."""

import json
import shutil
import wave

import numpy as np
import pytest
import torch
from PIL import Image

from omniperceiver import data
from omniperceiver.cli import main
from omniperceiver.data.shards import ShardShare, shard_splits, write_shards
from omniperceiver.train import evaluate, load_recipe, train
from omniperceiver.train.loaders import SplitsData

pytest.importorskip("webdataset")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A folder of 2 x 40 tiny images, each pixel value its own (0-39 and 100-139), so a sample is known by it."""
    root = tmp_path_factory.mktemp("shards") / "images"
    for label, offset in (("dark", 0), ("bright", 100)):
        (root / label).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(np.full((4, 4, 3), offset + i, dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def values(batches):
    """The sample values (pixel values) of batches of images (B, H, W, C) in [0, 1]."""
    return [round(v * 255) for images, _ in batches for v in images[:, 0, 0, 0].tolist()]


def test_shards_split_disjointly_and_completely_over_two_processes_with_two_workers(images, tmp_path):
    splits = data.image_folder(images)
    write_shards(splits, "image-folder", tmp_path, per_shard=7)  # 56 training images: 8 shards of 7
    train_part = shard_splits(tmp_path, "image-folder").train
    seen = []
    for rank in (0, 1):
        share = ShardShare(train_part, batch=2, rank=rank, replicas=2, workers=2, shuffle=True, seed=0)
        loader = torch.utils.data.DataLoader(share, batch_size=None, num_workers=2)
        assert len(loader) == 14  # 2 workers x 2 shards of 7, in batches of 2
        seen.append(values(loader))
        assert len(seen[-1]) == 28 == len(set(seen[-1]))
    assert not set(seen[0]) & set(seen[1])  # disjoint
    assert sorted(seen[0] + seen[1]) == sorted(values(stream_rows(splits.train)))  # complete
    for part in ("validation", "test"):  # evaluation: every sample once, whatever the split
        stream = getattr(shard_splits(tmp_path, "image-folder"), part)
        shares = [ShardShare(stream, batch=2, rank=r, replicas=2, workers=2, shuffle=False, seed=0) for r in (0, 1)]
        read = [v for share in shares for v in values(torch.utils.data.DataLoader(share, None, num_workers=2))]
        assert sorted(read) == sorted(values(stream_rows(getattr(splits, part))))


def stream_rows(dataset):
    return [(dataset[i][0][None], None) for i in range(len(dataset))]


def test_a_resumed_epoch_continues_where_it_stopped_and_each_epoch_has_its_order(images, tmp_path):
    # 56 training images: 12 shards (11 of 5, 1 of 1)
    write_shards(data.image_folder(images), "image-folder", tmp_path, per_shard=5)
    splits = shard_splits(tmp_path, "image-folder")

    def epoch(number, state=None):
        module = SplitsData(splits, batch_size=4, seed=3, num_workers=2)
        if state is not None:
            module.load_state_dict(state)
        loader = module.train_dataloader()
        if state is None:
            loader.dataset.set_epoch(number)
        return values(loader)

    whole = epoch(1)
    assert len(whole) == 52  # 2 workers x 26: 6 shards each, one of them perhaps the last (1 image)
    assert epoch(1, {"epoch": 1, "batches": 3}) == whole[12:]
    assert epoch(1) == whole and epoch(2) != whole  # seeded: the same epoch, the same order; a new one, another


def test_a_recipe_trains_on_the_shards_the_command_wrote_and_scores_their_test_part_as_the_folders(
    images, tmp_path, capsys
):
    recipe = tmp_path / "mine.yaml"
    training = "{epochs: 6, batch_size: 8, num_workers: 2}"
    recipe.write_text(f"dataset: image-folder\ndata_path: {images}\ntraining: {training}\n")
    assert main(["shards", str(recipe), str(tmp_path / "shards"), "--per-shard", "10", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "train 56, validation 12, test 12 samples, 10 shards" in out
    assert f"omniperceiver train {recipe} data_path={tmp_path / 'shards'}" in out
    sharded = load_recipe(recipe, [f"data_path={tmp_path / 'shards'}"])
    metrics = train(sharded, tmp_path / "run", progress=False)
    assert metrics["test_accuracy"] == 1.0
    shutil.copytree(tmp_path / "run", tmp_path / "on-folder")  # the same model, its recipe reading the folder
    written = (tmp_path / "on-folder" / "recipe.yaml").read_text()
    (tmp_path / "on-folder" / "recipe.yaml").write_text(written.replace(str(tmp_path / "shards"), str(images)))
    on_folder = evaluate(tmp_path / "on-folder", progress=False)
    assert on_folder == pytest.approx(evaluate(tmp_path / "run", progress=False))  # the same 12 test samples
    with pytest.raises(ValueError, match="fixed when they were written: remove validation_path, test_path, data"):
        load_recipe(recipe, [f"data_path={tmp_path / 'shards'}", "data.size=[8, 8]"]).splits()
    (tmp_path / "shards" / "test-000000.tar").write_bytes(b"not a tar")
    with pytest.raises(ValueError, match=r"cannot read the shard .*test-000000\.tar: "):
        list(shard_splits(tmp_path / "shards", "image-folder").test)
    with pytest.raises(ValueError, match="holds shards of dataset 'image-folder', not of 'text-folder'"):
        shard_splits(tmp_path / "shards", "text-folder")
    with pytest.raises(ValueError, match="6 training shards cannot be split over 1 processes x 8 workers"):
        ShardShare(shard_splits(tmp_path / "shards", "image-folder").train, batch=1, rank=0, replicas=1, workers=8,
                   shuffle=True, seed=0)  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"reader": "os.system"}, r"reader: expected one of \['read_clip', 'read_cloud', 'read_image', 'read_text'\]"),
        ({"options": {"train": {"size": "big"}}}, r"options.train.size: expected"),
        ({"options": {"train": {"shell": 1}}}, r"options.train: expected read_image options among \['size', 'crop'"),
        ({"parts": {"train": [{"name": "../../etc/passwd", "samples": 1}]}}, r"expected shard names train-NNNNNN"),
        ({"parts": {"train": [{"name": "train-000000.tar", "samples": -1}]}}, r"samples > 0, got -1"),
        ({"format": "other"}, r"expected a mapping with format"),
    ],
)
def test_a_bad_shard_index_is_one_line_naming_it(images, tmp_path, change, message):
    write_shards(data.image_folder(images), "image-folder", tmp_path, per_shard=40)
    index = json.loads((tmp_path / "shards.json").read_text())
    (tmp_path / "shards.json").write_text(json.dumps({**index, **change}))
    with pytest.raises(ValueError, match=rf"shards.json: .*{message}"):
        shard_splits(tmp_path, "image-folder")


def test_audio_texts_and_point_clouds_read_from_shards_as_from_their_folders(tmp_path):
    generator = np.random.default_rng(0)
    for label in ("a", "b"):
        for kind in ("audio", "texts", "clouds"):
            (tmp_path / kind / label).mkdir(parents=True)
        for i in range(10):
            with wave.open(str(tmp_path / "audio" / label / f"{i}.wav"), "wb") as clip:
                clip.setnchannels(1), clip.setsampwidth(2), clip.setframerate(8000)
                clip.writeframes(generator.integers(-999, 999, 100 + 10 * i, dtype=np.int16).tobytes())
            (tmp_path / "texts" / label / f"{i}.txt").write_text(f"{label} é {i}" * i)
            np.save(tmp_path / "clouds" / label / f"{i}.npy", generator.normal(size=(20 + i, 3)))
    for splits, name in (
        (data.wav_folder(tmp_path / "audio", sample_rate=4000), "audio-folder"),
        (data.text_folder(tmp_path / "texts"), "text-folder"),
        (data.point_cloud_folder(tmp_path / "clouds", points=8), "point-cloud-folder"),
    ):
        write_shards(splits, name, tmp_path / name, per_shard=3)
        test = shard_splits(tmp_path / name, name).test
        for row, sample in zip(range(len(splits.test)), test, strict=True):
            assert all(torch.equal(a, b) for a, b in zip(splits.test[row], sample, strict=True))
