"""``train(recipe)`` and ``evaluate(run)``: data, model, Lightning Trainer, test metrics, pictures, the trained
model saved. A run folder holds recipe.yaml, checkpoints/last.ckpt, logs/ (CSV and TensorBoard), model/ and
the pictures; it is written only by its own run. ``fit(build, recipe)`` trains a baseline the same way."""

from __future__ import annotations

import datetime
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import nn

from omniperceiver.core.allocator import keep_freed_memory
from omniperceiver.data.splits import Splits, label_fraction
from omniperceiver.files import atomic_write
from omniperceiver.loading import from_pretrained
from omniperceiver.models.perceiver_ar import PerceiverAR
from omniperceiver.train.checkpoints import AtomicCheckpointIO
from omniperceiver.train.initialize import build_model
from omniperceiver.train.loaders import SplitsData
from omniperceiver.train.metrics_csv import MetricsCSV
from omniperceiver.train.quiet import TrainingProgressBar, quiet
from omniperceiver.train.recipe import Recipe, load_recipe
from omniperceiver.train.tasks.base import Task, TaskModule

RECIPE_FILE = "recipe.yaml"  # the mark of a run folder
LAST_CHECKPOINT = "checkpoints/last.ckpt"
RESUMABLE = (
    "training.checkpoint_every_n_steps",
    "training.checkpoint_every_minutes",
    "training.num_workers",
)  # and more training.epochs


class RecipeRecord(Callback):
    """Stores the run's recipe in every checkpoint, so a resume compares against the recipe of the weights."""

    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe.to_dict()

    def state_dict(self) -> dict[str, Any]:
        return {"recipe": self.recipe}


def _trainer(recipe: Recipe, output_dir: Path, metrics: list[str], progress: bool) -> lightning.Trainer:
    s = recipe.training
    strategy = "ddp" if s.strategy == "auto" and s.world_size > 1 else s.strategy
    triggers = [{"every_n_epochs": 1}]
    if s.checkpoint_every_n_steps:
        triggers.append({"every_n_train_steps": s.checkpoint_every_n_steps})
    if s.checkpoint_every_minutes:
        triggers.append({"train_time_interval": datetime.timedelta(minutes=s.checkpoint_every_minutes)})
    checkpoints = [  # Lightning takes one trigger per ModelCheckpoint; all of them write last.ckpt
        ModelCheckpoint(
            dirpath=output_dir / "checkpoints", save_last=True, save_top_k=0, enable_version_counter=False, **trigger
        )
        for trigger in triggers
    ]
    return lightning.Trainer(
        max_epochs=s.epochs,
        limit_train_batches=s.batches_per_epoch or 1.0,
        precision=s.precision,
        accumulate_grad_batches=s.accumulate_grad_batches,
        strategy=strategy,
        devices=s.devices,
        num_nodes=s.num_nodes,
        use_distributed_sampler=False,  # SplitsData shards the data itself, resumably
        default_root_dir=output_dir,
        logger=[MetricsCSV(output_dir / "logs" / "metrics.csv", metrics), TensorBoardLogger(output_dir, "logs", "")],
        callbacks=[RecipeRecord(recipe), *checkpoints, *([TrainingProgressBar()] if progress else [])],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,  # metrics are logged per epoch, so this only says: an epoch of any length is fine
        deterministic=True,
    )


@quiet()
def train(
    recipe: Recipe, output_dir: str | Path, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> dict[str, float]:
    """Train on the recipe's dataset, test on its test split, save the model to ``output_dir``/model and the
    pictures beside it. ``output_dir`` must be new or empty, or a run folder (one holding recipe.yaml) that
    ``resume`` continues from its last checkpoint or ``overwrite`` replaces. Returns the test metrics and the
    training time in seconds (``train_seconds``)."""
    task = recipe.task
    output_dir = Path(output_dir)
    keep_freed_memory()
    if rank_zero_only.rank == 0:  # DDP processes started by this one see the run folder it prepared
        _check_output(output_dir, recipe, resume=resume, overwrite=overwrite)
    s = recipe.training
    lightning.seed_everything(s.seed, workers=True, verbose=False)
    splits = label_fraction(recipe.splits(), s.label_fraction, seed=s.seed)
    model, origin = build_model(recipe, task, splits)
    splits = task.evaluation_splits(splits, model)
    module = task.module(model, task, s)
    data = SplitsData(splits, s.batch_size, s.seed, s.num_workers)
    trainer = _trainer(recipe, output_dir, module.metric_names, progress)
    if trainer.is_global_zero:
        _prepare_output(output_dir, recipe, overwrite=overwrite)
        _record_origin(output_dir, origin, progress)
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=output_dir / LAST_CHECKPOINT if resume else None)
    seconds = time.perf_counter() - start
    metrics = _test(trainer, module, data)
    if trainer.is_global_zero:
        model.save_pretrained(output_dir / "model")
        task.save(output_dir / "model", splits)
        task.pictures(output_dir, module, splits)
    return {**metrics, "train_seconds": seconds}


@quiet()
def fit(
    build: Callable[[Splits], nn.Module], recipe: Recipe, *, task: Task | None = None, progress: bool = False
) -> tuple[nn.Module, dict[str, float]]:
    """Train a model that is no Perceiver (a baseline: forward(x, mask) -> outputs, as the task's models) as
    :func:`train` trains the recipe's model: ``build(splits)`` builds it after the seed is set, and it trains
    on the recipe's data with ``task``'s loss, metric and input (default: the recipe's task), the recipe's
    training settings, optimizer and schedule. No run folder: returns the trained model and its test metrics
    with the training time in seconds (``train_seconds``)."""
    task = task or recipe.task
    s = recipe.training
    keep_freed_memory()
    lightning.seed_everything(s.seed, workers=True, verbose=False)
    splits = recipe.splits()
    model = build(splits)
    module = task.module(model, task, s)
    data = SplitsData(splits, s.batch_size, s.seed, s.num_workers)
    trainer = lightning.Trainer(
        max_epochs=s.epochs,
        limit_train_batches=s.batches_per_epoch or 1.0,
        precision=s.precision,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=True,
    )
    start = time.perf_counter()
    trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - start
    return model, {**_test(trainer, module, data), "train_seconds": seconds}


def _record_origin(output_dir: Path, lines: list[str], progress: bool) -> None:
    """Write where the model's weights came from to logs/initialization.txt, and say it unless quiet."""
    if not lines:
        return
    text = "".join(f"{line}\n" for line in lines)
    (output_dir / "logs").mkdir(parents=True, exist_ok=True)
    atomic_write(output_dir / "logs" / "initialization.txt", lambda file: file.write(text.encode()))
    if progress:
        print(text, end="", file=sys.stderr)


def _check_output(output_dir: Path, recipe: Recipe, *, resume: bool, overwrite: bool) -> None:
    """Raise unless the run may write ``output_dir``: a new or empty folder, or a run folder that the run
    resumes (with a recipe it may resume) or overwrites."""
    if resume and overwrite:
        raise ValueError("--resume continues a run and --overwrite replaces it: give one of them")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{output_dir} is a file, not a run folder")
    if not (output_dir / RECIPE_FILE).is_file() and output_dir.is_dir() and any(output_dir.iterdir()):
        raise ValueError(
            f"{output_dir} is not empty and not an omniperceiver run folder (it has no {RECIPE_FILE}); "
            "choose a new or empty folder"
        )
    if (output_dir / RECIPE_FILE).is_file() and not (resume or overwrite):
        raise ValueError(f"{output_dir} holds a run: --resume continues it, --overwrite replaces it")
    if resume:
        checkpoint = output_dir / LAST_CHECKPOINT
        if not checkpoint.is_file():
            raise FileNotFoundError(f"cannot resume: {checkpoint} does not exist (--overwrite starts the run anew)")
        _check_resumable(_saved_recipe(checkpoint), recipe.to_dict(), output_dir)


def _prepare_output(output_dir: Path, recipe: Recipe, *, overwrite: bool) -> None:
    """Write the recipe into ``output_dir``; ``overwrite`` first removes the old run's files but its checkpoint,
    which stays until the new run's first checkpoint replaces it."""
    if overwrite and output_dir.is_dir():
        for old in output_dir.iterdir():
            if old.name == "checkpoints":
                continue
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old)
            else:
                old.unlink()
    output_dir.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(recipe.to_dict(), sort_keys=False)
    atomic_write(output_dir / RECIPE_FILE, lambda file: file.write(text.encode()))


def _saved_recipe(checkpoint: Path) -> dict[str, Any]:
    """The recipe of the run that wrote ``checkpoint`` (from the checkpoint, or from the run's recipe.yaml for
    checkpoints written before they held it)."""
    state = AtomicCheckpointIO().load_checkpoint(checkpoint)
    record = state.get("callbacks", {}).get(RecipeRecord.__qualname__)
    recipe = record.get("recipe") if isinstance(record, dict) else load_recipe(checkpoint.parents[1] / RECIPE_FILE)
    if isinstance(recipe, Recipe):
        return recipe.to_dict()
    if not isinstance(recipe, dict):
        raise ValueError(f"{checkpoint} holds no recipe of its run (got {type(recipe).__name__})")
    return recipe


def _check_resumable(saved: dict[str, Any], given: dict[str, Any], output_dir: Path) -> None:
    """Raise ValueError naming every change from the ``saved`` recipe to the ``given`` one that a resumed run
    cannot take: anything but more epochs and the checkpoint intervals."""
    old, new = _flat(saved), _flat(given)
    unsafe = [
        f"{key} {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
        and key not in RESUMABLE
        and not (key == "training.epochs" and new[key] > old.get(key, new[key]))
    ]
    if unsafe:
        raise ValueError(
            f"cannot resume {output_dir} with a changed recipe: {'; '.join(unsafe)} (a resumed run may only train "
            f"more training.epochs and change {' and '.join(RESUMABLE)}; --overwrite starts the run anew)"
        )


def _flat(recipe: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested recipe as {"section.key": value}."""
    flat = {}
    for key, value in recipe.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return flat


def _test(trainer: lightning.Trainer, module: TaskModule, data: SplitsData) -> dict[str, float]:
    (metrics,) = trainer.test(module, datamodule=data, verbose=False)
    return {key: float(value) for key, value in metrics.items()}


@quiet()
def evaluate(run_dir: str | Path, *, num_latents: int | None = None, progress: bool = True) -> dict[str, float]:
    """Test metrics of a trained run folder (its recipe.yaml and model/) on its dataset's test split; a
    Perceiver AR may be read with another ``num_latents`` than it trained with."""
    run_dir = Path(run_dir)
    if not (run_dir / RECIPE_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run folder: {RECIPE_FILE} is missing")
    recipe = load_recipe(run_dir / RECIPE_FILE)
    task = recipe.task.reading_as(run_dir / "model")
    keep_freed_memory()
    model = from_pretrained(run_dir / "model")
    if num_latents is not None:
        if not isinstance(model, PerceiverAR):
            raise ValueError(f"num_latents applies to Perceiver AR models; {run_dir} holds a {type(model).__name__}")
        model = model.with_num_latents(num_latents)
    module = task.module(model, task, recipe.training)
    splits = task.splits(recipe.data_path, recipe.validation_path, recipe.test_path, recipe.data)
    splits = task.evaluation_splits(splits, model)
    data = SplitsData(splits, recipe.training.batch_size, recipe.training.seed, recipe.training.num_workers)
    trainer = lightning.Trainer(logger=False, enable_progress_bar=progress, enable_model_summary=False, devices=1)
    with torch.inference_mode():
        return _test(trainer, module, data)
