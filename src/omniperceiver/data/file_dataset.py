"""Examples read from their files when they are used: a dataset as large as the disk, not the memory."""

from __future__ import annotations

import itertools
import wave
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset

from omniperceiver.errors import one_line

Read = Callable[[Path | int], tuple[Tensor, ...]]  # a file -> the example's tensors (its label left out)


class FileDataset(Dataset):
    """Rows (``read(file)``..., label) of ``files`` and their ``labels`` (N,): each file (a path, or a row
    number of a memory-mapped table that ``read`` holds) is read and decoded when its row is asked for, in the
    DataLoader's worker processes where it has them, so that memory holds the paths and the labels, not the
    examples. ``read`` is a module-level function (or a partial of one), so that it reaches worker processes.
    A file that cannot be read is a ValueError naming it."""

    def __init__(self, files: Sequence[Path | int], labels: Tensor, read: Read) -> None:
        if len(files) != len(labels):
            raise ValueError(f"{len(files)} files but {len(labels)} labels")
        self.files, self.labels, self.read = list(files), labels, read

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        path = self.files[index]
        try:
            values = self.read(path)
        except (OSError, ValueError, wave.Error) as error:
            raise ValueError(f"cannot read {path}: {one_line(error)}") from error
        return (*values, self.labels[index])

    def reading(self, read: Read) -> FileDataset:
        """The same rows, read by ``read``."""
        return FileDataset(self.files, self.labels, read)

    def subset(self, rows: Tensor) -> FileDataset:
        """The rows ``rows`` (indices), in that order."""
        return FileDataset([self.files[i] for i in rows.tolist()], self.labels[rows], self.read)


def rows_of(dataset: Dataset, count: int | None = None) -> tuple[Tensor, ...]:
    """The first ``count`` rows of ``dataset`` (all: None) as stacked tensors: a TensorDataset's own tensors,
    or a FileDataset's files (a stream's samples) read and stacked (what shapes and baselines are made from)."""
    tensors = getattr(dataset, "tensors", None)
    if tensors is not None:
        return tuple(t[:count] for t in tensors)
    if isinstance(dataset, IterableDataset):  # (a stream: its first rows)
        rows = list(itertools.islice(dataset, count))
    else:
        rows = [dataset[i] for i in range(len(dataset) if count is None else min(count, len(dataset)))]
    return tuple(torch.stack(column) for column in zip(*rows, strict=True))
