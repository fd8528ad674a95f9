"""``train(recipe)`` and ``evaluate(run)``: data, model, Lightning Trainer, test metrics, pictures, the trained
model saved. A run folder holds recipe.yaml, checkpoints/last.ckpt, logs/ (CSV and TensorBoard), model/ and
the pictures."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path

import lightning
import torch
import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from omniperceiver.files import atomic_write
from omniperceiver.loading import from_pretrained
from omniperceiver.train import pictures
from omniperceiver.train.checkpoints import AtomicCheckpointIO
from omniperceiver.train.loaders import SplitsData
from omniperceiver.train.module import TaskModule, module_for
from omniperceiver.train.quiet import TrainingProgressBar, quiet
from omniperceiver.train.recipe import Recipe, load_recipe
from omniperceiver.train.tasks import get_task

RECIPE_FILE = "recipe.yaml"
LAST_CHECKPOINT = "checkpoints/last.ckpt"


def _trainer(recipe: Recipe, output_dir: Path, progress: bool) -> lightning.Trainer:
    s = recipe.training
    strategy = "ddp" if s.strategy == "auto" and s.world_size > 1 else s.strategy
    return lightning.Trainer(
        max_epochs=s.epochs,
        precision=s.precision,
        accumulate_grad_batches=s.accumulate_grad_batches,
        strategy=strategy,
        devices=s.devices,
        num_nodes=s.num_nodes,
        use_distributed_sampler=False,  # SplitsData shards the data itself, resumably
        default_root_dir=output_dir,
        logger=[CSVLogger(output_dir, name="logs", version=""), TensorBoardLogger(output_dir, name="logs", version="")],
        callbacks=[
            ModelCheckpoint(
                dirpath=output_dir / "checkpoints",
                save_last=True,
                save_top_k=0,
                every_n_train_steps=s.checkpoint_every_n_steps or None,
            ),
            *([TrainingProgressBar()] if progress else []),
        ],
        plugins=[AtomicCheckpointIO()],
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=1,  # metrics are logged per epoch, so this only says: an epoch of any length is fine
        deterministic=True,
    )


@quiet()
def train(recipe: Recipe, output_dir: str | Path, *, resume: bool = False, progress: bool = True) -> dict[str, float]:
    """Train on the recipe's dataset, test on its test split, save the model to ``output_dir``/model and the
    pictures beside it. ``resume`` continues from ``output_dir``/checkpoints/last.ckpt; otherwise the run
    replaces the folder's logs and checkpoints. Returns the test metrics and the training time in seconds
    (``train_seconds``)."""
    task = get_task(recipe.dataset)
    output_dir = Path(output_dir)
    checkpoint = output_dir / LAST_CHECKPOINT
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"cannot resume: {checkpoint} does not exist")
    s = recipe.training
    lightning.seed_everything(s.seed, workers=True, verbose=False)
    splits = task.splits(recipe.data_path)
    model = task.model_config(splits, recipe.model, s).build()
    module = module_for(model, task, s)
    data = SplitsData(splits, s.batch_size, s.seed)
    trainer = _trainer(recipe, output_dir, progress)
    if trainer.is_global_zero:
        if not resume:
            for stale in ("logs", "checkpoints"):
                shutil.rmtree(output_dir / stale, ignore_errors=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(dataclasses.asdict(recipe), sort_keys=False)
        atomic_write(output_dir / RECIPE_FILE, lambda file: file.write(text.encode()))
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=checkpoint if resume else None)
    seconds = time.perf_counter() - start
    metrics = _test(trainer, module, data)
    if trainer.is_global_zero:
        model.save_pretrained(output_dir / "model")
        pictures.draw_run(output_dir, module, splits)
    return {**metrics, "train_seconds": seconds}


def _test(trainer: lightning.Trainer, module: TaskModule, data: SplitsData) -> dict[str, float]:
    (metrics,) = trainer.test(module, datamodule=data, verbose=False)
    return {key: float(value) for key, value in metrics.items()}


@quiet()
def evaluate(run_dir: str | Path, *, progress: bool = True) -> dict[str, float]:
    """Test metrics of a trained run folder (its recipe.yaml and model/) on its dataset's test split."""
    run_dir = Path(run_dir)
    if not (run_dir / RECIPE_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run folder: {RECIPE_FILE} is missing")
    recipe = load_recipe(run_dir / RECIPE_FILE)
    task = get_task(recipe.dataset)
    model = from_pretrained(run_dir / "model")
    module = module_for(model, task, recipe.training)
    data = SplitsData(task.splits(recipe.data_path), recipe.training.batch_size, recipe.training.seed)
    trainer = lightning.Trainer(logger=False, enable_progress_bar=progress, enable_model_summary=False, devices=1)
    with torch.inference_mode():
        return _test(trainer, module, data)
