"""``omniperceiver demo``: one Perceiver IO family trained and tested on every modality, each beside a simple
baseline measured on the same split (each task's own: logistic regression on raw features, zero flow, ...)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path

from omniperceiver.train.jobs import run_jobs
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.run import train


@dataclasses.dataclass(frozen=True)
class DemoTask:
    """A shipped recipe, the result it must reach (at least; for errors at most), its training time in seconds
    on one thread of this project's 2-core machine (``--jobs`` starts the longest first), the shorter training of
    ``--quick`` and the recipes whose results it must beat too. A ``reference`` task (a single modality that
    fusion must beat) must reach its threshold, so that beating it means something, but not its baseline."""

    recipe: str
    threshold: float
    seconds: float
    quick: tuple[str, ...]
    beats: tuple[str, ...] = ()
    reference: bool = False


DEMO = (  # each threshold at least 3 standard deviations of its result over seeds from its mean: docs/demo-seeds.md
    DemoTask("mnist", 0.94, 195, ("training.epochs=3",)),
    DemoTask("spoken-digits", 0.96, 92, ("training.epochs=4",)),
    DemoTask("fortunes", 0.97, 49, ("training.epochs=2",)),
    DemoTask("shapes", 0.95, 79, ("training.epochs=10",)),
    DemoTask("audiovisual-image", 0.60, 67, ("training.epochs=3",), reference=True),
    DemoTask("audiovisual-audio", 0.67, 60, ("training.epochs=3",), reference=True),
    DemoTask("audiovisual-digits", 0.87, 69, ("training.epochs=3",), beats=("audiovisual-image", "audiovisual-audio")),
    DemoTask("pasted-shapes", 0.23, 206, ("training.epochs=1",)),
    DemoTask("flow-pairs", 0.53, 112, ("training.epochs=1",)),
    DemoTask("fortunes-lm", 2.8, 271, ("training.epochs=1", "training.batches_per_epoch=100")),
)


@dataclasses.dataclass(frozen=True)
class DemoResult:
    task: str
    modality: str
    inputs_per_example: int
    metric: str
    baseline: float
    result: float
    threshold: float
    train_seconds: float
    lower_is_better: bool = False
    to_beat: tuple[float, ...] = ()
    reference: bool = False

    @property
    def passed(self) -> bool:
        """Whether the result reaches the threshold and beats every result it must beat: the baseline's (unless
        a reference) and those in ``to_beat``."""
        to_beat = self.to_beat if self.reference else (self.baseline, *self.to_beat)
        if self.lower_is_better:
            return self.result <= self.threshold and all(self.result < r for r in to_beat)
        return self.result >= self.threshold and all(self.result > r for r in to_beat)


def run_demo(
    output_dir: str | Path,
    *,
    quick: bool = False,
    progress: bool = True,
    overrides: Sequence[str] = (),
    tasks: Sequence[DemoTask] = DEMO,
    jobs: int = 1,
) -> list[DemoResult]:
    """Train the demo recipes (every one, or ``tasks``, which must include the ones they beat) into
    ``output_dir``/RECIPE (replacing a run there), with ``overrides`` (``training.seed=1``) applied to each,
    and measure their baselines; returns the results in the order of ``tasks``. ``jobs`` > 1 trains that many
    recipes at a time in worker processes that share this process's CPU threads (small models gain little
    from a second thread); their progress is one table row per finished recipe."""
    output_dir = Path(output_dir)
    results: dict[str, DemoResult] = {}
    longest_first = sorted(tasks, key=lambda demo: -demo.seconds) if jobs > 1 else tasks
    progressing = progress and jobs == 1  # (workers show no progress bars: a table row per finished recipe)
    calls = [functools.partial(run_task, demo, output_dir, quick, overrides, progressing) for demo in longest_first]
    for result in run_jobs(calls, jobs):
        results[result.task] = result
        if progress:  # without a verdict: the results it must beat may not be in yet
            print(format_table([result], quick=True), flush=True)
    return [
        dataclasses.replace(results[demo.recipe], to_beat=tuple(results[name].result for name in demo.beats))
        for demo in tasks
    ]


def run_task(demo: DemoTask, output_dir: Path, quick: bool, overrides: Sequence[str], progress: bool) -> DemoResult:
    """Train one demo recipe into ``output_dir``/RECIPE and measure it beside its baseline (``to_beat`` is
    filled in by ``run_demo``, which has every result)."""
    recipe = load_recipe(demo.recipe, [*(demo.quick if quick else ()), *overrides])
    task = recipe.task
    splits = recipe.splits()
    metrics = train(recipe, output_dir / demo.recipe, overwrite=True, progress=progress)
    return DemoResult(
        task=demo.recipe,
        modality=task.modality,
        inputs_per_example=task.inputs_per_example(splits),
        metric=task.metric,
        lower_is_better=task.lower_is_better,
        baseline=task.baseline(splits),
        result=metrics[f"test_{task.metric}"],
        threshold=demo.threshold,
        train_seconds=metrics["train_seconds"],
        reference=demo.reference,
    )


def format_table(results: list[DemoResult], *, quick: bool = False) -> str:
    """A markdown table of demo results; thresholds are marked pass or FAIL for full runs only."""
    lines = [
        "| task | modality | inputs per example | metric | baseline | result | threshold | train time |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        goal = f"{'<=' if r.lower_is_better else '>='} {r.threshold:g}"
        goal += "" if quick else (" pass" if r.passed else " FAIL")
        goal += f", > {' and '.join(f'{v:.3f}' for v in r.to_beat)}" if r.to_beat else ""
        goal += " (reference)" if r.reference else ""
        lines.append(
            f"| {r.task} | {r.modality} | {r.inputs_per_example:,} | {r.metric} | {r.baseline:.3f} | {r.result:.3f} "
            f"| {goal} | {r.train_seconds:.0f} s |"
        )
    return "\n".join(lines)
