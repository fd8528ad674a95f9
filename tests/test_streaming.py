"""Datasets read from their files per example (a folder of images): the same batches as the data held in memory,
with or without worker processes, nothing decoded up front, and a resumed epoch that continues where it stopped."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from omniperceiver import data
from omniperceiver.data.file_dataset import FileDataset, rows_of
from omniperceiver.train.loaders import SplitsData


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamed") / "images"
    generator = np.random.default_rng(0)
    for label in ("a", "b", "c"):
        (root / label).mkdir(parents=True)
        for i in range(30):
            Image.fromarray(generator.integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return root


def in_memory(splits):
    """The same splits with every part decoded into tensors."""
    parts = {part: TensorDataset(*rows_of(getattr(splits, part))) for part in ("train", "validation", "test")}
    return dataclasses.replace(splits, **parts)


def batches(splits, *, num_workers=0, state=None, epoch=0):
    module = SplitsData(splits, batch_size=8, seed=3, num_workers=num_workers)
    if state is not None:
        module.load_state_dict(state)
    loader = module.train_dataloader()
    loader.sampler.set_epoch(epoch if state is None else state["epoch"])
    return list(loader)


def same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x, y) for one, two in zip(a, b, strict=True) for x, y in zip(one, two, strict=True)
    )


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_streamed_folder_gives_the_batches_of_the_same_data_held_in_memory(folder, num_workers):
    splits = data.image_folder(folder)
    assert all(isinstance(part, FileDataset) for part in (splits.train, splits.validation, splits.test))
    assert splits.sizes() == (63, 12, 15)
    for epoch in (0, 1):
        streamed = batches(splits, num_workers=num_workers, epoch=epoch)
        assert same(streamed, batches(in_memory(splits), epoch=epoch))
    assert not same(batches(splits, epoch=0), batches(splits, epoch=1))  # a new order each epoch


def test_nothing_is_decoded_until_an_example_is_used(folder, monkeypatch):
    import omniperceiver.media

    decoded = []
    load_image = omniperceiver.media.load_image
    monkeypatch.setattr(omniperceiver.media, "load_image", lambda path: decoded.append(path) or load_image(path))
    splits = data.image_folder(folder)
    assert decoded == [] and splits.train.labels.shape == (63,)  # the folder is indexed: paths and labels
    batches(splits)
    assert len(decoded) == 63  # one epoch reads each training image once


def test_a_resumed_epoch_continues_where_it_stopped_with_workers(folder):
    splits = data.image_folder(folder)
    whole = batches(splits, epoch=1)
    resumed = batches(splits, num_workers=2, state={"epoch": 1, "batches": 3})
    assert same(resumed, whole[3:])
