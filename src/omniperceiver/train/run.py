"""``train(recipe)``: data, model, Lightning Trainer, test metrics, the trained model saved."""

from __future__ import annotations

from pathlib import Path

import lightning
from torch.utils.data import DataLoader

from omniperceiver.train.module import Classifier
from omniperceiver.train.recipe import Recipe
from omniperceiver.train.tasks import TASKS, model_config


def train(recipe: Recipe, output_dir: str | Path, *, progress: bool = True) -> dict[str, float]:
    """Train on the recipe's dataset, evaluate on its test split, save the model to ``output_dir``/model.
    Returns the test metrics."""
    if recipe.dataset not in TASKS:
        raise ValueError(f"dataset={recipe.dataset!r}: expected one of {sorted(TASKS)}")
    s = recipe.training
    lightning.seed_everything(s.seed, workers=True, verbose=False)
    splits = TASKS[recipe.dataset][0]()
    model = model_config(splits, recipe.dataset, recipe.model).build()
    module = Classifier(model, s, len(splits.classes))
    loaders = {
        part: DataLoader(getattr(splits, part), batch_size=s.batch_size, shuffle=part == "train")
        for part in ("train", "validation", "test")
    }
    output_dir = Path(output_dir)
    trainer = lightning.Trainer(
        max_epochs=s.epochs,
        precision=s.precision,
        accumulate_grad_batches=s.accumulate_grad_batches,
        default_root_dir=output_dir,
        logger=lightning.pytorch.loggers.CSVLogger(output_dir, name="logs"),
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=True,
    )
    trainer.fit(module, loaders["train"], loaders["validation"])
    (metrics,) = trainer.test(module, loaders["test"], verbose=False)
    model.save_pretrained(output_dir / "model")
    return {key: float(value) for key, value in metrics.items()}
