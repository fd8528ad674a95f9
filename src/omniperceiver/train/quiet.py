"""Training prints one progress bar and its results, not Lightning's chatter: within ``quiet``, Lightning's info
lines (the accelerator banner, advertising tips, "`Trainer.fit` stopped", "Initializing distributed") are
hidden, and so are warnings raised inside Lightning itself that its user cannot act on, by message and module
(every other warning is shown); the ``TrainingProgressBar`` shows training, not the test after it."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

import lightning
from lightning.pytorch.callbacks import RichProgressBar

# Lightning's info lines go through these loggers (rank_zero_info, and each process' "Initializing
# distributed" line); its warnings through ``warnings``.
LIGHTNING_INFO_LOGGERS = (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning.fabric.utilities.distributed",
)

# (message, category, module) of warnings that Lightning raises about its own code, which its user cannot act on.
LIGHTNING_WARNINGS = (
    # torch >= 2.10 deprecates the LeafSpec class that Lightning's pytree helpers still build.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree"),
    # Every stream of shards has a length: ShardShare splits the shards over the workers itself.
    (r"Your `IterableDataset` has `__len__` defined", UserWarning, r"lightning\.pytorch\.utilities\.data"),
)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Within it (or a function it decorates), Lightning's info lines and its own warnings are not shown."""
    loggers = [logging.getLogger(name) for name in LIGHTNING_INFO_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        for message, category, module in LIGHTNING_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


class TrainingProgressBar(RichProgressBar):
    """Lightning's rich progress bar for training: the test that follows shows none."""

    def on_test_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        self.disable()
