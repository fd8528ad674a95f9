"""``omniperceiver demo``: one Perceiver IO family trained and tested on every modality, each beside a simple
baseline measured on the same split (logistic regression on raw features; zero flow for optical flow)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.data.splits import Splits, require_module
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.run import train
from omniperceiver.train.tasks import Task, get_task


@dataclasses.dataclass(frozen=True)
class DemoTask:
    """A shipped recipe, the result it must reach (at least; for errors at most), the recipes whose results it
    must beat too, and the shorter training of ``--quick``. A ``reference`` task (a single modality that fusion
    must beat) must reach its threshold, so that beating it means something, but not its baseline."""

    recipe: str
    threshold: float
    quick: tuple[str, ...]
    beats: tuple[str, ...] = ()
    reference: bool = False


DEMO = (  # each threshold at least 3 standard deviations of its result over seeds from its mean: docs/demo-seeds.md
    DemoTask("mnist", 0.94, ("training.epochs=3",)),
    DemoTask("spoken-digits", 0.96, ("training.epochs=4",)),
    DemoTask("fortunes", 0.97, ("training.epochs=2",)),
    DemoTask("shapes", 0.95, ("training.epochs=10",)),
    DemoTask("audiovisual-image", 0.60, ("training.epochs=3",), reference=True),
    DemoTask("audiovisual-audio", 0.67, ("training.epochs=3",), reference=True),
    DemoTask("audiovisual-digits", 0.87, ("training.epochs=3",), beats=("audiovisual-image", "audiovisual-audio")),
    DemoTask("flow-pairs", 0.53, ("training.epochs=1",)),
    DemoTask("fortunes-lm", 3.2, ("training.epochs=1",)),
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
    to_beat: tuple[float, ...] = ()
    reference: bool = False

    @property
    def lower_is_better(self) -> bool:
        return self.metric in ("epe", "bits_per_byte")

    @property
    def passed(self) -> bool:
        """Whether the result reaches the threshold and beats every result it must beat: the baseline's (unless
        a reference) and those in ``to_beat``."""
        to_beat = self.to_beat if self.reference else (self.baseline, *self.to_beat)
        if self.lower_is_better:
            return self.result <= self.threshold and all(self.result < r for r in to_beat)
        return self.result >= self.threshold and all(self.result > r for r in to_beat)


def baseline(task: Task, splits: Splits) -> float:
    """Test accuracy of logistic regression on the task's raw features, the end-point error of zero flow, or
    the bits per byte of the training bytes' frequencies (a unigram model)."""
    if task.kind == "flow":
        return float(splits.test.tensors[-1].norm(dim=-1).mean())
    if task.kind == "language-model":
        return unigram_bits_per_byte(splits)
    linear_model = require_module("sklearn.linear_model", "pip install scikit-learn")
    preprocessing = require_module("sklearn.preprocessing", "pip install scikit-learn")
    scaler = preprocessing.StandardScaler().fit(task.features(splits.train.tensors).numpy())
    model = linear_model.LogisticRegression(max_iter=2000)
    model.fit(scaler.transform(task.features(splits.train.tensors).numpy()), splits.train.tensors[-1].numpy())
    predicted = model.predict(scaler.transform(task.features(splits.test.tensors).numpy()))
    return float(np.mean(predicted == splits.test.tensors[-1].numpy()))


def unigram_bits_per_byte(splits: Splits) -> float:
    """Cross-entropy in bits of the test bytes under the training bytes' frequencies (add-one smoothed)."""

    def counts(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scored = ids[mask & (ids >= ByteTokenizer.OFFSET)]
        return torch.bincount(scored, minlength=ByteTokenizer.vocab_size).double()

    probabilities = counts(*splits.train.tensors[:2]) + 1
    probabilities /= probabilities.sum()
    test = counts(*splits.test.tensors[:2])
    return float(-(test * probabilities.log2()).sum() / test.sum())


def run_demo(
    output_dir: str | Path,
    *,
    quick: bool = False,
    progress: bool = True,
    overrides: Sequence[str] = (),
    tasks: Sequence[DemoTask] = DEMO,
) -> list[DemoResult]:
    """Train the demo recipes (every one, or ``tasks``, which must include the ones they beat) into
    ``output_dir``/RECIPE (replacing a run there), with ``overrides`` (``training.seed=1``) applied to each,
    and measure their baselines; returns the results."""
    results: dict[str, DemoResult] = {}
    for demo in tasks:
        recipe = load_recipe(demo.recipe, [*(demo.quick if quick else ()), *overrides])
        task = get_task(recipe.dataset)
        splits = task.splits(recipe.data_path)
        metrics = train(recipe, Path(output_dir) / demo.recipe, overwrite=True, progress=progress)
        metric = {"flow": "epe", "language-model": "bits_per_byte"}.get(task.kind, "accuracy")
        result = DemoResult(
            task=demo.recipe,
            modality=task.modality,
            inputs_per_example=task.inputs_per_example(splits, recipe.model),
            metric=metric,
            baseline=baseline(task, splits),
            result=metrics[f"test_{metric}"],
            threshold=demo.threshold,
            train_seconds=metrics["train_seconds"],
            to_beat=tuple(results[name].result for name in demo.beats),
            reference=demo.reference,
        )
        results[demo.recipe] = result
        if progress:
            print(format_table([result], quick=quick))
    return list(results.values())


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
