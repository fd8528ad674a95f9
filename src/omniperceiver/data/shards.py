"""Sharded tar archives in the WebDataset format: written from a folder's splits, read as streams split over
the training processes and their DataLoader workers (WORK IN PROGRESS: not yet a task or a command).

A shard folder holds ``{part}-{k:06d}.tar`` (part: train, validation, test), each sample a file's bytes under
its own extension and its class number under ``cls``, and ``dataset.json`` (the classes and, per part, each
shard's name and number of samples).
"""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from omniperceiver.data.file_dataset import FileDataset
from omniperceiver.data.splits import Splits, require_module

PARTS = ("train", "validation", "test")
INSTALL = "pip install webdataset"


def write_shards(splits: Splits, folder: str | Path, *, per_shard: int = 1000) -> Path:
    """Write ``splits`` (FileDatasets of paths) as shards of ``per_shard`` samples into ``folder``; its
    ``dataset.json`` is written last, so that a folder with one holds every shard."""
    webdataset = require_module("webdataset", INSTALL)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    described: dict = {"classes": list(splits.classes), "parts": {}}
    for part in PARTS:
        dataset = getattr(splits, part)
        if not isinstance(dataset, FileDataset):
            raise ValueError(f"shards are written from files; the {part} part holds {type(dataset).__name__}")
        shards = []
        for start in range(0, len(dataset), per_shard):
            name = f"{part}-{start // per_shard:06d}.tar"
            temporary = folder / f".{name}.tmp"
            rows = range(start, min(start + per_shard, len(dataset)))
            with webdataset.TarWriter(str(temporary)) as writer:
                for row in rows:
                    path = Path(dataset.files[row])
                    extension = path.suffix.lower().lstrip(".")
                    sample = {"__key__": f"{row:09d}", extension: path.read_bytes(), "cls": int(dataset.labels[row])}
                    writer.write(sample)
            os.replace(temporary, folder / name)
            shards.append({"name": name, "samples": len(rows)})
        described["parts"][part] = shards
    temporary = folder / ".dataset.json.tmp"
    temporary.write_text(json.dumps(described, indent=1))
    os.replace(temporary, folder / "dataset.json")
    return folder


def _process() -> tuple[int, int]:
    """(rank, world size) of this training process."""
    distributed = torch.distributed
    if distributed.is_available() and distributed.is_initialized():
        return distributed.get_rank(), distributed.get_world_size()
    return 0, 1


class ShardStream(IterableDataset):
    """The samples of one part's shards (name, samples) in ``folder`` as (image (H, W, 3) in [0, 1], label):
    each (process, worker) reads its own shards (shard i goes to the (rank, worker) pair i modulo their number,
    after a shuffle seeded by (``seed``, epoch) when ``shuffle``), and every pair yields the same number of
    samples (the fewest any pair holds), so that every process takes the same number of steps."""

    def __init__(self, folder: Path, shards: list[dict], *, shuffle: bool, seed: int = 0, rank_world=None) -> None:
        self.folder, self.shards, self.shuffle, self.seed = folder, shards, shuffle, seed
        self.rank_world = rank_world  # (rank, world) for tests; else the process group's
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _assignment(self, workers: int) -> tuple[list[list[int]], int]:
        rank, world = self.rank_world or _process()
        order = list(range(len(self.shards)))
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(order), generator=generator).tolist()
        pairs = world * workers
        if len(order) < pairs:
            raise ValueError(f"{len(order)} shards cannot be split over {world} processes x {workers} workers")
        owned = [order[pair::pairs] for pair in range(pairs)]
        fewest = min(sum(self.shards[i]["samples"] for i in shards) for shards in owned)
        return owned[rank * workers : (rank + 1) * workers], fewest

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        from omniperceiver.media import load_image

        webdataset = require_module("webdataset", INSTALL)
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        owned, fewest = self._assignment(workers)
        urls = [str(self.folder / self.shards[shard]["name"]) for shard in owned[worker]]
        samples = webdataset.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None)
        for sample in itertools.islice(samples, fewest):
            image_key = next(key for key in sample if not key.startswith("__") and key != "cls")
            image = torch.from_numpy(load_image(io.BytesIO(sample[image_key]))).float() / 255
            yield image, torch.tensor(int(sample["cls"]))


def shard_splits(folder: str | Path, *, seed: int = 0) -> Splits:
    """The parts of a shard folder written by :func:`write_shards`, as :class:`ShardStream` s."""
    folder = Path(folder)
    described = json.loads((folder / "dataset.json").read_text())
    parts = {part: ShardStream(folder, described["parts"][part], shuffle=part == "train", seed=seed) for part in PARTS}
    total = {part: sum(s["samples"] for s in shards) for part, shards in described["parts"].items()}
    description = f"shards in {folder} ({', '.join(f'{p} {n:,}' for p, n in total.items())})"
    return Splits(folder.name, **parts, classes=tuple(described["classes"]), description=description)
