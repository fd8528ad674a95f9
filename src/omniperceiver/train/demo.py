"""``omniperceiver demo``: one Perceiver IO family trained and tested on every modality, each beside a simple
baseline measured on the same split (logistic regression on raw features; zero flow for optical flow)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from omniperceiver.data.splits import Splits, require_module
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.run import train
from omniperceiver.train.tasks import Task, get_task


@dataclasses.dataclass(frozen=True)
class DemoTask:
    """A shipped recipe, the result it must reach (at least, or for errors at most) and the shorter training
    of ``--quick``."""

    recipe: str
    threshold: float
    quick: tuple[str, ...]


DEMO = (
    DemoTask("mnist", 0.93, ("training.epochs=3",)),
    DemoTask("spoken-digits", 0.95, ("training.epochs=3",)),
    DemoTask("fortunes", 0.97, ("training.epochs=2",)),
    DemoTask("shapes", 0.90, ("training.epochs=10",)),
    DemoTask("audiovisual-image", 0.0, ("training.epochs=3",)),
    DemoTask("audiovisual-audio", 0.0, ("training.epochs=3",)),
    DemoTask("audiovisual-digits", 0.0, ("training.epochs=3",)),
    DemoTask("flow-pairs", 0.5, ("training.epochs=3",)),
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

    @property
    def lower_is_better(self) -> bool:
        return self.metric == "epe"

    @property
    def passed(self) -> bool:
        if self.lower_is_better:
            return self.result <= self.threshold and self.result < self.baseline
        return self.result >= self.threshold and self.result > self.baseline


def baseline(task: Task, splits: Splits) -> float:
    """Test accuracy of logistic regression on the task's raw features, or the end-point error of zero flow."""
    if task.kind == "flow":
        return float(splits.test.tensors[-1].norm(dim=-1).mean())
    linear_model = require_module("sklearn.linear_model", "pip install scikit-learn")
    preprocessing = require_module("sklearn.preprocessing", "pip install scikit-learn")
    scaler = preprocessing.StandardScaler().fit(task.features(splits.train.tensors).numpy())
    model = linear_model.LogisticRegression(max_iter=2000)
    model.fit(scaler.transform(task.features(splits.train.tensors).numpy()), splits.train.tensors[-1].numpy())
    predicted = model.predict(scaler.transform(task.features(splits.test.tensors).numpy()))
    return float(np.mean(predicted == splits.test.tensors[-1].numpy()))


def run_demo(output_dir: str | Path, *, quick: bool = False, progress: bool = True) -> list[DemoResult]:
    """Train every demo recipe into ``output_dir``/RECIPE and measure its baseline; returns the results."""
    results = []
    for demo in DEMO:
        recipe = load_recipe(demo.recipe, list(demo.quick) if quick else [])
        task = get_task(recipe.dataset)
        splits = task.load()
        metrics = train(recipe, Path(output_dir) / demo.recipe, progress=progress)
        metric = "epe" if task.kind == "flow" else "accuracy"
        result = DemoResult(
            task=demo.recipe,
            modality=task.modality,
            inputs_per_example=task.inputs_per_example(splits),
            metric=metric,
            baseline=baseline(task, splits),
            result=metrics[f"test_{metric}"],
            threshold=demo.threshold,
            train_seconds=metrics["train_seconds"],
        )
        results.append(result)
        if progress:
            print(format_table([result]))
    return results


def format_table(results: list[DemoResult]) -> str:
    """A markdown table of demo results."""
    lines = [
        "| task | modality | inputs per example | metric | baseline | result | threshold | train time |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        sign = "<=" if r.lower_is_better else ">="
        mark = "pass" if r.passed else "FAIL"
        lines.append(
            f"| {r.task} | {r.modality} | {r.inputs_per_example:,} | {r.metric} | {r.baseline:.3f} | {r.result:.3f} "
            f"| {sign} {r.threshold:g} {mark} | {r.train_seconds:.0f} s |"
        )
    return "\n".join(lines)
