"""Data loading that survives a restart and splits over processes.

Every epoch visits the training examples in a permutation seeded by (seed, epoch), dealt round-robin to the
processes, so N processes with batch b see exactly the examples that one process with batch N·b sees. The
data module's state (the epoch and how many batches it has finished) is stored in every checkpoint; after a
restart the sampler skips what the interrupted epoch had already trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import lightning
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from omniperceiver.data.file_dataset import FileDataset
from omniperceiver.data.shards import ShardShare, ShardStream
from omniperceiver.data.splits import Splits


class EpochSampler(Sampler[int]):
    """Indices of one process' share of ``size`` examples: a seeded permutation per epoch (or the natural
    order), rows ``rank``, ``rank + replicas``, ... of it, starting after ``skip`` of them. Shuffled (training)
    shares are cut to equal lengths, so every process takes the same number of optimizer steps. ``on_epoch``
    (a dataset's ``set_epoch``) hears each epoch's number before its indices are drawn."""

    def __init__(
        self,
        size: int,
        *,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        replicas: int = 1,
        on_epoch: Callable[[int], None] | None = None,
    ) -> None:
        self.size, self.shuffle, self.seed, self.rank, self.replicas = size, shuffle, seed, rank, replicas
        self.on_epoch = on_epoch
        self.used = size - size % replicas if shuffle else size
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.skip = 0
        self.epoch = epoch
        if self.on_epoch is not None:  # (here, before the epoch's worker processes copy the dataset)
            self.on_epoch(epoch)

    def __len__(self) -> int:
        return (self.used - self.rank + self.replicas - 1) // self.replicas

    def __iter__(self) -> Iterator[int]:
        if self.on_epoch is not None:
            self.on_epoch(self.epoch)
        if self.shuffle:
            order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        else:
            order = torch.arange(self.size)
        yield from order[: self.used][self.rank :: self.replicas][self.skip :].tolist()


class EpochLoader(DataLoader):
    """A DataLoader over a :class:`ShardShare` that tells it the trainer's epoch each time an epoch starts
    reading it (Lightning tells samplers, and a stream has none), before its worker processes copy it."""

    def __init__(self, share: ShardShare, trainer: lightning.Trainer | None, num_workers: int) -> None:
        super().__init__(share, batch_size=None, num_workers=num_workers)
        self.trainer = trainer

    def __iter__(self):
        if self.trainer is not None:
            self.dataset.set_epoch(self.trainer.current_epoch)
        return super().__iter__()


class SplitsData(lightning.LightningDataModule):
    """Loaders over a dataset's splits with a global ``batch_size`` shared by the trainer's processes; datasets
    read from files are read by ``num_workers`` worker processes (the sampler, and so the order, stays here);
    shards (:class:`ShardStream`) are split over the processes and their workers by :class:`ShardShare`."""

    def __init__(self, splits: Splits, batch_size: int, seed: int, num_workers: int = 0) -> None:
        super().__init__()
        self.splits, self.batch_size, self.seed, self.num_workers = splits, batch_size, seed, num_workers
        self.resume: dict[str, int] | None = None

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if isinstance(dataset, ShardStream):
            return self._stream_loader(dataset, shuffle, rank, replicas)
        sampler = EpochSampler(
            len(dataset),
            shuffle=shuffle,
            seed=self.seed,
            rank=rank,
            replicas=replicas,
            on_epoch=getattr(dataset, "set_epoch", None) if shuffle else None,
        )
        if shuffle and self.resume is not None:
            sampler.epoch = self.resume["epoch"]
            sampler.skip = self.resume["batches"] * self.batch_size // replicas
            self.resume = None
        workers = self.num_workers if isinstance(dataset, FileDataset) else 0  # (tensors in memory need none)
        return DataLoader(dataset, batch_size=self.batch_size // replicas, sampler=sampler, num_workers=workers)

    def _stream_loader(self, stream: ShardStream, shuffle: bool, rank: int, replicas: int) -> DataLoader:
        batch = self.batch_size // replicas
        share = ShardShare(
            stream, batch=batch, rank=rank, replicas=replicas, workers=self.num_workers, shuffle=shuffle, seed=self.seed
        )
        if shuffle and self.resume is not None:
            share.epoch, share.skip = self.resume["epoch"], self.resume["batches"]
            self.resume = None
        return EpochLoader(share, self.trainer, self.num_workers)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.splits.train, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.splits.validation, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.splits.test, shuffle=False)

    def state_dict(self) -> dict[str, int]:
        """Where training stands: the epoch and the batches of it already trained on (none when the checkpoint
        is saved after an epoch's end, where the count still is the finished epoch's)."""
        loop = self.trainer.fit_loop
        finished = loop.epoch_progress.current.completed == loop.epoch_progress.current.started
        batches = 0 if finished else loop.epoch_loop.batch_progress.current.processed
        return {"epoch": self.trainer.current_epoch, "batches": batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.resume = dict(state)
