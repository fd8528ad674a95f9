"""Point clouds (the seed's ModelNet40 table: PointNet++ 91.9 %, Transformer (44x44) 82.1, ViT-B-2 78.9,
Perceiver 85.7): on the shapes set, the Perceiver beside a transformer over all points (attention over every
pair of points, the Perceiver's width) and a PointNet, all three reading the points through the Perceiver's
input adapter (the same features) and trained alike; test accuracy, then the time and tensor memory of one
example's forward pass as the number of points grows from 512 to 8,192: linear against quadratic."""

from __future__ import annotations

import functools
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from omniperceiver.core.adapter import InputAdapterConfig
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.data.splits import Splits
from omniperceiver.loading import from_pretrained
from omniperceiver.memory import allocated_peak_mb
from omniperceiver.reproduce.baselines import PointNet, PointTransformer
from omniperceiver.reproduce.table import Reproduction, Table
from omniperceiver.train.jobs import run_jobs
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.run import fit, train

RECIPE = "shapes"
MODELS = ("Perceiver", "Transformer over all points", "PointNet")
POINTS = (512, 1024, 2048, 4096, 8192)
EPOCHS = ("training.epochs=30",)  # (half the recipe's: the transformer over all points trains for 6 minutes)
QUICK = ("training.epochs=3",)
QUICK_POINTS = (512, 2048)


def _adapter(splits: Splits) -> InputAdapterConfig:
    """The input adapter the shapes recipe's Perceiver reads the points with."""
    task = load_recipe(RECIPE).task
    return task.input.adapter(task.inputs(rows_of(splits.train, 1)))


def _transformer(splits: Splits) -> nn.Module:
    return PointTransformer(_adapter(splits), len(splits.classes))


def _pointnet(splits: Splits) -> nn.Module:
    return PointNet(_adapter(splits), len(splits.classes))


def train_one(model: str, output_dir: Path, quick: bool) -> tuple[str, float, nn.Module]:
    """Train one model of the table on the shapes recipe's data and settings; its test accuracy, and the model."""
    recipe = load_recipe(RECIPE, list(QUICK if quick else EPOCHS))
    if model == "Perceiver":
        metrics = train(recipe, output_dir / RECIPE, overwrite=True, progress=False)
        return model, metrics["test_accuracy"], from_pretrained(output_dir / RECIPE / "model")
    trained, metrics = fit(_transformer if model == MODELS[1] else _pointnet, recipe)
    return model, metrics["test_accuracy"], trained


@torch.inference_mode()
def cost(model: nn.Module, points: int) -> tuple[float, float]:
    """Milliseconds (the median of 3 runs after one) and tensor memory in MB (its peak beyond the weights) of
    one forward pass of ``model`` over a cloud of ``points`` points."""
    model.eval()
    cloud = torch.nn.functional.normalize(torch.randn(1, points, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    memory = allocated_peak_mb(lambda: model(cloud))
    times = []
    for _ in range(3):
        start = time.perf_counter()
        model(cloud)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), memory


def point_clouds(output_dir: Path, quick: bool, jobs: int) -> Table:
    calls = [functools.partial(train_one, model, output_dir, quick) for model in MODELS]
    trained = {model: (accuracy, net) for model, accuracy, net in run_jobs(calls, jobs)}
    sizes = QUICK_POINTS if quick else POINTS
    costs = {model: [cost(net, points) for points in sizes] for model, (_, net) in trained.items()}
    columns = tuple(f"{points:,} points" for points in sizes)
    rows = []
    for model in MODELS:
        rows.append((f"{model}, ms", tuple(ms for ms, _ in costs[model])))
        rows.append((f"{model}, MB", tuple(mb for _, mb in costs[model])))
    growth = ", ".join(f"{model} {costs[model][-1][0] / costs[model][0][0]:.0f}x" for model in MODELS)
    per_point = Table(
        title="Time and tensor memory of one example's forward pass",
        columns=columns,
        seed_rows=(),
        rows=tuple(rows),
        caption=f"Ours: milliseconds (median of 3) and the peak of the tensor memory beyond the weights (MB), batch"
        f" 1, on this machine's CPU threads ({torch.get_num_threads()}). From {sizes[0]:,} to {sizes[-1]:,} points"
        f" ({sizes[-1] // sizes[0]}x) the time grew: {growth}. (The transformer's fused attention kernel never"
        " holds all of its scores at once: its memory grows linearly, its time quadratically.)",
    )
    return Table(
        title="Point clouds (shapes; seed: ModelNet40)",
        columns=("test accuracy",),
        seed_rows=(
            ("PointNet++, %", (91.9,)),
            ("Transformer (44x44), %", (82.1,)),
            ("ViT-B-2, %", (78.9,)),
            ("Perceiver, %", (85.7,)),
        ),
        rows=tuple((model, (trained[model][0],)) for model in MODELS),
        caption="Ours: test accuracy on 7 shapes in random poses, sizes and stretches (512 surface points each);"
        " every model reads the points through the Perceiver's input adapter (Fourier features of the coordinates"
        " in the cloud's principal axes) and trains with the same recipe (optimizer, schedule, random rotations)"
        f" for {(QUICK if quick else EPOCHS)[0].split('=')[1]} epochs.",
        more=(per_point,),
    )


POINT_CLOUDS = Reproduction(
    "point-clouds", "a Perceiver, a transformer over all points and a PointNet on point clouds", point_clouds
)
