"""Lightning checkpoints written atomically: a checkpoint file is the old one or a complete new one, even when
the process is killed while writing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from omniperceiver.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Saves through a temporary file in the checkpoint's own directory, flushed and renamed into place."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda file: torch.save(checkpoint, file))
