"""A reproduced table: its rows (the seed's figures and ours), printed as markdown and drawn as a bar chart."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

from omniperceiver.files import atomic_write


@dataclasses.dataclass(frozen=True)
class Table:
    """A table of ``columns`` with one row per model: (name, value per column, NaN where the row has none),
    the seed's rows first; ``caption`` says what the values measure; ``more``: tables that follow it."""

    title: str
    columns: tuple[str, ...]
    seed_rows: tuple[tuple[str, tuple[float, ...]], ...]
    rows: tuple[tuple[str, tuple[float, ...]], ...]
    caption: str
    more: tuple[Table, ...] = ()

    def markdown(self) -> str:
        def cells(values: tuple[float, ...]) -> str:
            return " | ".join("-" if math.isnan(v) else f"{v:.3f}" if v <= 1 else f"{v:.1f}" for v in values)

        lines = [f"| model / inputs | {' | '.join(self.columns)} |", "|---|" + "---:|" * len(self.columns)]
        lines += [f"| seed: {name} | {cells(values)} |" for name, values in self.seed_rows]
        lines += [f"| ours: {name} | {cells(values)} |" for name, values in self.rows]
        text = f"{self.title}\n\n" + "\n".join(lines) + f"\n\n{self.caption}\n"
        return "\n".join([text, *(table.markdown() for table in self.more)])

    def write(self, output_dir: Path) -> list[Path]:
        """table.md and table.png (our rows as grouped bars, a panel per table) in ``output_dir``."""
        from matplotlib.figure import Figure

        paths = [output_dir / "table.md", output_dir / "table.png"]
        atomic_write(paths[0], lambda file: file.write(self.markdown().encode()))
        tables = (self, *self.more)
        figure = Figure(figsize=(6.4, 3.6 * len(tables)), layout="constrained")
        for table, axes in zip(tables, figure.subplots(len(tables), squeeze=False)[:, 0], strict=True):
            table.draw(axes)
        atomic_write(paths[1], lambda file: figure.savefig(file, format="png", dpi=110))
        return paths

    def draw(self, axes) -> None:
        """Our rows as bars grouped by column on matplotlib ``axes``."""
        width = 0.8 / len(self.rows)
        for k, (name, values) in enumerate(self.rows):
            x = [i + (k - (len(self.rows) - 1) / 2) * width for i in range(len(self.columns))]
            axes.bar(x, [0 if math.isnan(v) else v for v in values], width, label=name)
        axes.set_xticks(range(len(self.columns)), self.columns)
        axes.set_title(self.title)
        axes.legend(fontsize="small")


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """A named table: ``run(output_dir, quick, jobs)`` trains its models into ``output_dir`` and returns it."""

    name: str
    description: str
    run: Callable[[Path, bool, int], Table]
