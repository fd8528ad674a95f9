"""The run's logs/metrics.csv, appended to: a resumed run continues the history of the run before it
(Lightning's CSVLogger deletes an existing metrics.csv)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only


class MetricsCSV(Logger):
    """One row per logging call (``epoch``, ``step`` and ``metrics``; blank where a row has no value), written
    to disk at once; a new file gets a header of the sorted columns, an existing one keeps its own."""

    def __init__(self, path: Path, metrics: Sequence[str]) -> None:
        super().__init__()
        self.path, self.columns = Path(path), sorted(["epoch", "step", *metrics])

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Nothing: the run's hyperparameters are its recipe.yaml."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        fresh = not self.path.is_file()
        if fresh:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            columns = self.columns
        else:
            with self.path.open(newline="") as file:
                columns = next(csv.reader(file))
        with self.path.open("a", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=columns)
            if fresh:
                writer.writeheader()
            writer.writerow({**metrics, "step": step})
