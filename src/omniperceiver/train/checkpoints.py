"""Lightning checkpoints written atomically: a checkpoint file is the old one or a complete new one, even when
the process is killed while writing. Read back weights-only: a checkpoint is data, never code."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from omniperceiver.files import atomic_write
from omniperceiver.models.pretrained import read_torch_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves through a temporary file in the checkpoint's own directory, flushed and renamed into place; loads
    weights-only (our checkpoints hold tensors, containers and plain values, which torch's own weights-only
    allow-list covers: no extra globals), whatever ``weights_only`` Lightning passes."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: torch.save(checkpoint, file))

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None, weights_only: Any = None) -> dict:
        checkpoint = read_torch_file(path, map_location=map_location or "cpu")
        if not isinstance(checkpoint, dict):
            raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a Lightning checkpoint")
        return checkpoint
