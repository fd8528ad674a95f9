"""Sharded tar archives (WebDataset format): written from a folder's splits, split over processes and workers."""

import numpy as np
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from omniperceiver import data
from omniperceiver.data.shards import ShardStream, shard_splits, write_shards

pytest.importorskip("webdataset")


def test_shards_split_disjointly_and_completely_over_two_processes_with_two_workers(tmp_path):
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(40):
            value = i + (100 if label == "b" else 0)
            Image.fromarray(np.full((4, 4, 3), value, dtype=np.uint8)).save(tmp_path / "images" / label / f"{i}.png")
    splits = data.image_folder(tmp_path / "images")
    write_shards(splits, tmp_path / "shards", per_shard=7)  # 56 training images: 8 shards of 7
    train = shard_splits(tmp_path / "shards").train
    seen = []
    for rank in (0, 1):
        stream = ShardStream(train.folder, train.shards, shuffle=True, rank_world=(rank, 2))
        values = [round(image[0, 0, 0].item() * 255) for image, _ in DataLoader(stream, batch_size=None, num_workers=2)]
        assert len(values) == 28  # 2 workers x 2 shards of 7 each
        seen.append(values)
    assert not set(seen[0]) & set(seen[1])  # disjoint
    expected = {round(image[0, 0, 0].item() * 255) for image, _ in (splits.train[i] for i in range(len(splits.train)))}
    assert set(seen[0]) | set(seen[1]) == expected  # complete (the shards held equal counts)
