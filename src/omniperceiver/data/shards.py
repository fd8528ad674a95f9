"""Sharded tar archives in the WebDataset format: a recipe's data parts written as shards, read as streams split
over the training processes and their DataLoader workers.

A shard folder holds ``{part}-{k:06d}.tar`` (part: train, validation, test; samples in the part's order), each
sample a file's bytes under its extension (``png``, ``wav``, ``txt``, ...), its class number under ``cls`` and
its name (CLASS/FILE) under ``path``, and ``shards.json``: the dataset that wrote them, the reader of their
files (one of :data:`READERS`) and each part's options for it (a random crop for training, ...), the classes
and each part's shards (name, samples). It is
written last, so that a folder holding it holds every shard.
"""

from __future__ import annotations

import functools
import inspect
import io
import itertools
import json
import os
import re
import tarfile
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, default_collate, get_worker_info

from omniperceiver.core.config import typed_value
from omniperceiver.data.file_dataset import FileDataset
from omniperceiver.data.folders import read_clip, read_cloud, read_image, read_text
from omniperceiver.data.splits import Splits, require_module
from omniperceiver.errors import one_line

PARTS = ("train", "validation", "test")
INDEX = "shards.json"
FORMAT = "omniperceiver shards 1"
READERS = {read.__name__: read for read in (read_image, read_clip, read_text, read_cloud)}
SHARD_NAME = re.compile(r"(train|validation|test)-\d{6}\.tar")
INSTALL = "pip install webdataset"


def _webdataset() -> Any:
    return require_module("webdataset", INSTALL)


def write_shards(
    splits: Splits, dataset: str, folder: str | Path, *, per_shard: int = 1000, progress: Callable | None = None
) -> Path:
    """Write the parts of ``splits`` (FileDatasets of a folder's files, as ``dataset`` read them) into
    ``folder`` as shards of ``per_shard`` samples; ``progress(samples)`` hears each part's samples written."""
    reads = {part: getattr(getattr(splits, part), "read", None) for part in PARTS}
    readers = {read.func.__name__ if isinstance(read, functools.partial) else None for read in reads.values()}
    if len(readers) != 1 or not readers <= set(READERS):
        raise ValueError(f"shards are written from a folder of files; dataset {dataset!r} holds no such folder")
    writer_of = _webdataset().TarWriter
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / INDEX).unlink(missing_ok=True)  # (until every new shard is written)
    parts: dict[str, list[dict]] = {}
    for part in PARTS:
        files: FileDataset = getattr(splits, part)
        parts[part] = []
        for start in range(0, len(files), per_shard):
            rows = range(start, min(start + per_shard, len(files)))
            name = f"{part}-{start // per_shard:06d}.tar"
            temporary = folder / f".{name}.tmp"
            with writer_of(str(temporary)) as writer:
                for row in rows:
                    path = Path(files.files[row])
                    sample = {"__key__": f"{row:09d}", "path": f"{path.parent.name}/{path.name}"}
                    sample[path.suffix.lower().lstrip(".")] = path.read_bytes()
                    writer.write({**sample, "cls": int(files.labels[row])})
            os.replace(temporary, folder / name)
            parts[part].append({"name": name, "samples": len(rows)})
            if progress is not None:
                progress(len(rows))
    options = {
        part: {key: list(value) if isinstance(value, tuple) else value for key, value in read.keywords.items()}
        for part, read in reads.items()
    }
    index = {"format": FORMAT, "dataset": dataset, "reader": readers.pop(), "options": options}
    temporary = folder / f".{INDEX}.tmp"
    temporary.write_text(json.dumps({**index, "classes": list(splits.classes), "parts": parts}, indent=1))
    os.replace(temporary, folder / INDEX)
    written = {shard["name"] for shards in parts.values() for shard in shards}
    for stale in folder.glob("*.tar"):  # (an earlier writing's)
        if SHARD_NAME.fullmatch(stale.name) and stale.name not in written:
            stale.unlink()
    return folder


def is_shard_folder(path: str | Path) -> bool:
    return (Path(path) / INDEX).is_file()


def shard_splits(folder: str | Path, dataset: str) -> Splits:
    """The parts of a shard folder written by :func:`write_shards` from ``dataset``, as :class:`ShardStream` s.
    ``shards.json`` is untrusted: a bad value is a ValueError naming it."""
    folder = Path(folder)
    where = folder / INDEX
    try:
        index = json.loads(where.read_text())
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise ValueError(f"expected a mapping with format {FORMAT!r}")
        options, parts = index.get("options"), index.get("parts")
        if not (isinstance(options, dict) and isinstance(parts, dict)):
            raise ValueError(f"options and parts: expected a mapping of {list(PARTS)} each")
        reads = {part: _reader(index.get("reader"), options.get(part), part) for part in PARTS}
        classes = typed_value(tuple[str, ...], index.get("classes"), "classes", named=False)
        parts = {part: _shards(parts.get(part), part) for part in PARTS}
    except (OSError, ValueError) as error:
        raise ValueError(f"{where}: {one_line(error)}") from error
    if index.get("dataset") != dataset:
        raise ValueError(f"{folder} holds shards of dataset {index.get('dataset')!r}, not of {dataset!r}")
    streams = {part: ShardStream(folder, shards, reads[part]) for part, shards in parts.items()}
    sizes = ", ".join(f"{part} {len(stream):,}" for part, stream in streams.items())
    return Splits(folder.name, **streams, classes=classes, description=f"shards in {folder} ({sizes})")


def _reader(name: Any, options: Any, part: str) -> Callable:
    """The reader ``name`` of :data:`READERS` with a part's ``options``, each checked against its type hint."""
    if name not in READERS:
        raise ValueError(f"reader: expected one of {sorted(READERS)}, got {name!r}")
    read = READERS[name]
    hints = typing.get_type_hints(read)
    known = [p.name for p in inspect.signature(read).parameters.values()][1:]  # (after the file)
    if not isinstance(options, dict) or not set(options) <= set(known):
        raise ValueError(f"options.{part}: expected {name} options among {known}, got {options!r}")
    typed = {k: typed_value(hints[k], value, f"options.{part}.{k}", named=False) for k, value in options.items()}
    return functools.partial(read, **typed)


def _shards(shards: Any, part: str) -> list[dict]:
    """A part's list of shards ({"name": "PART-000000.tar", "samples": count}), checked."""
    if not isinstance(shards, list) or not shards:
        raise ValueError(f"parts.{part}: expected a list of shards, got {shards!r}")
    for shard in shards:
        name, samples = (shard.get("name"), shard.get("samples")) if isinstance(shard, dict) else (None, None)
        if not (isinstance(name, str) and SHARD_NAME.fullmatch(name) and name.startswith(part)):
            raise ValueError(f"parts.{part}: expected shard names {part}-NNNNNN.tar, got {name!r}")
        if not (type(samples) is int and samples > 0):
            raise ValueError(f"parts.{part}: {name}: expected a number of samples > 0, got {samples!r}")
    return shards


def _tar_samples(url: Path) -> Iterator[dict]:
    """The samples of one shard as webdataset groups them; a missing or corrupt shard is a ValueError naming it."""
    reading = _webdataset().WebDataset(str(url), shardshuffle=False, nodesplitter=None, workersplitter=None)
    try:
        yield from reading
    except (OSError, tarfile.TarError) as error:
        raise ValueError(f"cannot read the shard {url}: {one_line(error)}") from error


class ShardStream(IterableDataset):
    """The samples (``read(file)``..., label) of one part's ``shards`` in ``folder``, in order (its length:
    their number). :meth:`samples` reads some of the shards, each shuffled or not; :class:`ShardShare` splits
    them over processes and workers for training and evaluation."""

    def __init__(self, folder: Path, shards: list[dict], read: Callable) -> None:
        self.folder, self.shards, self.read = folder, shards, read

    def __len__(self) -> int:
        return sum(shard["samples"] for shard in self.shards)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        return self.samples(range(len(self.shards)))

    def samples(self, shards: list[int] | range, shuffle_seed: list[int] | None = None) -> Iterator[tuple[Tensor, ...]]:
        """The samples of ``shards`` (indices), one shard after the other; with ``shuffle_seed``, each shard's
        samples in an order seeded by it and the shard (a shard's encoded files are held at once)."""
        for shard in shards:
            url = self.folder / self.shards[shard]["name"]
            samples: typing.Iterable[dict] = _tar_samples(url)
            if shuffle_seed is not None:
                held = list(samples)
                samples = [held[i] for i in np.random.default_rng([*shuffle_seed, shard]).permutation(len(held))]
            for sample in samples:
                yield self._decoded(sample, url)

    def _decoded(self, sample: dict, url: Path) -> tuple[Tensor, ...]:
        name = sample.get("path", b"").decode()
        data = [key for key in sample if not key.startswith("__") and key not in ("path", "cls")]
        try:
            if len(data) != 1 or "cls" not in sample:
                raise ValueError(f"expected one file, a cls and a path, got {sorted(sample)}")
            opened = io.BytesIO(sample[data[0]])
            opened.name = name
            return (*self.read(opened), torch.tensor(int(sample["cls"])))
        except (OSError, ValueError, EOFError) as error:
            raise ValueError(f"cannot read {name or sample.get('__key__')} in {url}: {one_line(error)}") from error


class ShardShare(IterableDataset):
    """One process' batches of a :class:`ShardStream`: shard i (of the training part, after a shuffle seeded by
    (``seed``, epoch), each shard's samples shuffled too) goes to the pair (rank, worker) i modulo the number
    of pairs, and each worker collates batches of ``batch`` of its own samples. For training every pair yields
    the same number of samples (the fewest any pair can hold, whatever the shuffle), so that every process
    takes the same number of steps, and the first ``skip`` batches of the process (an
    interrupted epoch's, on resume) are left out; evaluation reads every sample once."""

    def __init__(
        self, stream: ShardStream, *, batch: int, rank: int, replicas: int, workers: int, shuffle: bool, seed: int
    ) -> None:
        self.stream, self.batch, self.rank, self.shuffle, self.seed = stream, batch, rank, shuffle, seed
        self.workers = max(workers, 1)
        self.pairs = replicas * self.workers
        self.epoch = self.skip = 0
        if shuffle and len(stream.shards) < self.pairs:
            raise ValueError(
                f"{len(stream.shards)} training shards cannot be split over {replicas} processes x {self.workers}"
                f" workers: write at least {self.pairs} shards (a smaller --per-shard)"
            )
        counts = sorted(shard["samples"] for shard in stream.shards)
        self.per_pair = sum(counts[: len(counts) // self.pairs])  # (the fewest a pair holds; for training)

    def set_epoch(self, epoch: int) -> None:
        """Read the shards in epoch ``epoch``'s order (a new epoch starts at its first batch)."""
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch

    def _owned(self, pair: int) -> list[int]:
        order = list(range(len(self.stream.shards)))
        if self.shuffle:
            order = torch.randperm(len(order), generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        return order[pair :: self.pairs]

    def _batches(self, worker: int) -> int:
        """The number of batches ``worker`` yields in this process."""
        samples = self.per_pair
        if not self.shuffle:
            samples = sum(self.stream.shards[s]["samples"] for s in self._owned(self.rank * self.workers + worker))
        return -(-samples // self.batch)

    def __len__(self) -> int:
        return sum(self._batches(worker) for worker in range(self.workers))

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        info = get_worker_info()
        worker = 0 if info is None else info.id
        if info is not None and info.num_workers != self.workers:
            raise ValueError(f"shared for {self.workers} workers, read by {info.num_workers}")
        # The loader takes batches from its workers in turn, from worker 0 on: after ``skip`` batches, the next
        # is that of the worker in the turn skip % workers of the epoch, so worker 0 takes that turn's share.
        turn = (worker + self.skip) % self.workers
        seed = [self.seed, self.epoch] if self.shuffle else None
        samples = self.stream.samples(self._owned(self.rank * self.workers + turn), seed)
        if self.shuffle:  # (the batches of this turn given before an interruption)
            done = self.skip // self.workers + (turn < self.skip % self.workers)
            samples = itertools.islice(samples, done * self.batch, self.per_pair)
        while rows := list(itertools.islice(samples, self.batch)):
            yield default_collate(rows)
