"""Training recipes: a YAML file naming a dataset, the model's size and the training settings, validated
before anything runs (unknown keys and wrong types name the key)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from omniperceiver.core.config import Config, build_config, require, require_positive


@dataclasses.dataclass(frozen=True)
class ModelSize(Config):
    """The Perceiver IO trunk shared by every task: latents, cross-attention and the latent stack; images are
    read as ``patch_size``² patches (1: raw pixels), text elements carry ``ngram`` - 1 preceding bytes."""

    num_latents: int = 32
    latent_channels: int = 64
    num_cross_attention_heads: int = 1
    num_blocks: int = 1
    num_self_attends_per_block: int = 3
    num_self_attention_heads: int = 4
    widening_factor: int = 2
    fourier_bands: int = 8
    patch_size: int = 1
    ngram: int = 1
    dropout: float = 0.0

    def __post_init__(self) -> None:
        require_positive(
            num_latents=self.num_latents,
            latent_channels=self.latent_channels,
            num_blocks=self.num_blocks,
            num_self_attends_per_block=self.num_self_attends_per_block,
            widening_factor=self.widening_factor,
            fourier_bands=self.fourier_bands,
            patch_size=self.patch_size,
            ngram=self.ngram,
        )


STRATEGIES = ("auto", "ddp", "fsdp")


@dataclasses.dataclass(frozen=True)
class TrainingSettings(Config):
    """How to train. ``batch_size`` is the global batch: each of ``devices`` x ``num_nodes`` processes takes
        its share. ``augment`` applies the task's training augmentation, if it has one (random shifts of MNIST
        digits). A checkpoint is written at the end of every epoch, every ``checkpoint_every_minutes`` of training
    (0: never by time) and every ``checkpoint_every_n_steps`` optimizer steps (0: never by steps)."""

    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    activation_checkpointing: bool = False
    augment: bool = True
    strategy: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    checkpoint_every_n_steps: int = 0
    checkpoint_every_minutes: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        require_positive(
            epochs=self.epochs,
            batch_size=self.batch_size,
            accumulate_grad_batches=self.accumulate_grad_batches,
            devices=self.devices,
            num_nodes=self.num_nodes,
        )
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "a positive number")
        require(self.precision in ("32-true", "bf16-mixed"), "precision", self.precision, "'32-true' or 'bf16-mixed'")
        require(self.strategy in STRATEGIES, "strategy", self.strategy, f"one of {STRATEGIES}")
        require(self.checkpoint_every_n_steps >= 0, "checkpoint_every_n_steps", self.checkpoint_every_n_steps, ">= 0")
        require(self.checkpoint_every_minutes >= 0, "checkpoint_every_minutes", self.checkpoint_every_minutes, ">= 0")
        require(
            self.batch_size % self.world_size == 0,
            "batch_size",
            self.batch_size,
            f"a multiple of devices x num_nodes ({self.world_size}), the number of processes sharing each batch",
        )

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes


@dataclasses.dataclass(frozen=True)
class Recipe(Config):
    """A dataset (a shipped one, or a folder task such as ``image-folder`` with the folder in ``data_path``),
    the model's size and the training settings."""

    dataset: str
    data_path: str | None = None
    model: ModelSize = ModelSize()
    training: TrainingSettings = TrainingSettings()


def _typed(cls: type[Config], data: Any, where: str) -> Config:
    """Build ``cls`` from a YAML mapping, checking every key and the type of every value."""
    return build_config((cls,), data, where, named=False)


RECIPES = Path(__file__).resolve().parents[1] / "recipes"  # the recipes shipped with the package


def recipe_path(name_or_path: str | Path) -> Path:
    """A recipe file: a path, or the name of a shipped recipe (``mnist`` -> recipes/mnist.yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPES / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in RECIPES.glob("*.yaml"))
    raise FileNotFoundError(f"no recipe file {name_or_path}; the shipped recipes are {names}")


def load_recipe(name_or_path: str | Path, overrides: list[str] = ()) -> Recipe:
    """Read a recipe (a path or a shipped recipe's name) and apply ``section.key=value`` overrides (values
    parsed as YAML). Plain YAML only: a tag such as ``!!python/object`` is an error naming the file and line."""
    path = recipe_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from error
    data = _yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of Recipe fields, got {type(data).__name__}")
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise ValueError(f"override {override!r}: expected section.key=value")
        *sections, last = key.split(".")
        target = data
        for depth, section in enumerate(sections):
            target = target.setdefault(section, {})
            if not isinstance(target, dict):
                prefix = ".".join(sections[: depth + 1])
                raise ValueError(f"override {override!r}: {prefix} is {target!r}, not a section with keys")
        target[last] = _yaml(value, f"override {override!r}")
    return _typed(Recipe, data, path.name)


class _RecipeLoader(yaml.SafeLoader):
    """YAML's safe loader that also reads exponents without a dot (``1e-6``, which YAML 1.1 leaves a string) as
    floats, as YAML 1.2 and JSON do."""


_RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _yaml(text: str, source: str) -> Any:
    """``text`` parsed as plain YAML (no tags); an error names ``source`` and the line."""
    try:
        return yaml.load(text, Loader=_RecipeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        if isinstance(error, yaml.constructor.ConstructorError):
            problem += " (recipes are plain YAML: no !!python or other tags naming code)"
        raise ValueError(f"{source}{where}: invalid YAML: {problem}") from error
