"""Masked-language-model pretraining transfers (the seed: self-supervised masked pretraining of an encoder, then
fine-tuning, as BERT and the language Perceiver): language identification of fortune snippets from 5% of the
labels (52 per language), by the fortunes classifier trained from scratch and by the same model whose input
adapter and encoder a masked language model of the fortunes corpus pretrained; test accuracy per seed."""

from __future__ import annotations

import functools
import statistics
from pathlib import Path

from omniperceiver.data.splits import label_fraction
from omniperceiver.reproduce.table import Reproduction, Table
from omniperceiver.train.jobs import run_jobs
from omniperceiver.train.recipe import load_recipe
from omniperceiver.train.run import train

PRETRAIN, FEW_LABELS = "fortunes-mlm", "fortunes-few-labels"
PRETRAINED = "training.learning_rates={encoder: 0.0003, input_adapter: 0.0003}"  # (the new head: the recipe's rate)
SEEDS = (0, 1, 2)
QUICK = {PRETRAIN: ("training.epochs=1", "training.batches_per_epoch=150"), FEW_LABELS: ("training.epochs=4",)}
ROWS = ("from scratch", "pretrained (masked LM), fine-tuned")


def _train(recipe: str, overrides: list[str], folder: Path, quick: bool) -> dict[str, float]:
    full = load_recipe(recipe, [*overrides, *(QUICK[recipe] if quick else ())])
    return train(full, folder, overwrite=True, progress=False)


def pretrain(seed: int, output_dir: Path, quick: bool) -> tuple[int, float]:
    """The masked language model of seed ``seed``; its test bits per masked byte."""
    metrics = _train(PRETRAIN, [f"training.seed={seed}"], output_dir / f"{PRETRAIN}-{seed}", quick)
    return seed, metrics["test_masked_bits_per_byte"]


def classify(row: str, seed: int, output_dir: Path, quick: bool) -> tuple[str, int, float]:
    """The few-labels classifier of seed ``seed`` (its labels and its start), from scratch or fine-tuned from the
    masked language model of the same seed; its test accuracy."""
    overrides = [f"training.seed={seed}"]
    if row == ROWS[1]:
        overrides += ["model=null", f"init_from={output_dir / f'{PRETRAIN}-{seed}'}", PRETRAINED]
    folder = output_dir / f"{FEW_LABELS}-{'scratch' if row == ROWS[0] else 'pretrained'}-{seed}"
    return row, seed, _train(FEW_LABELS, overrides, folder, quick)["test_accuracy"]


def transfer(output_dir: Path, quick: bool, jobs: int) -> Table:
    seeds = SEEDS[:1] if quick else SEEDS
    bits = dict(run_jobs([functools.partial(pretrain, s, output_dir, quick) for s in seeds], jobs))
    calls = [functools.partial(classify, row, s, output_dir, quick) for row in ROWS for s in seeds]
    accuracy = {(row, seed): value for row, seed, value in run_jobs(calls, jobs)}
    rows = tuple(
        (row, (*(accuracy[row, s] for s in seeds), statistics.mean(accuracy[row, s] for s in seeds))) for row in ROWS
    )
    recipe = load_recipe(FEW_LABELS)
    labelled, _, tested = label_fraction(recipe.splits(), recipe.training.label_fraction).sizes()
    return Table(
        title="Masked-LM pretraining, then 5% of the labels (fortunes language identification)",
        columns=(*(f"seed {s}" for s in seeds), "mean"),
        seed_rows=(),
        rows=rows,
        caption=f"Ours: test accuracy on {tested:,} held-out snippets (4 languages), the classifier trained on"
        f" {labelled:,} labelled ones. The masked language model ({PRETRAIN}: 15% of the bytes masked in spans) read"
        " the fortunes corpus' training part without labels; its test bits per masked byte: "
        + ", ".join(f"{bits[s]:.3f} (seed {s})" for s in seeds)
        + ". Fine-tuning keeps its input adapter and encoder (at a peak rate of 3e-4, without dropout, as it was"
        " pretrained) and trains a new classification query and output layer (2e-3); from scratch, all of it trains"
        " at 2e-3 with the recipe's dropout of 0.1.",
    )


TRANSFER = Reproduction("transfer", "masked-LM pretraining against training from scratch on 5% of the labels", transfer)
