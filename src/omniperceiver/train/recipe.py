"""Training recipes: a YAML file naming a dataset, how its input is read, the model to build or start from, and
the training settings, validated before anything runs (unknown keys and wrong types name the key)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from omniperceiver.core.config import Config, build_config, typed_value
from omniperceiver.data.splits import Splits
from omniperceiver.train.catalog import get_task
from omniperceiver.train.sections import TrainingSettings, ZooModel
from omniperceiver.train.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A dataset (a shipped one, or a folder task such as ``image-folder`` with the folder in ``data_path``, and
    where the user has them their own validation and test parts in ``validation_path`` and ``test_path``),
    how its tensors reach the model (``input``, the task's typed section: for a language model, its
    tokenizer), the model (a trunk of the task's type, a :class:`ZooModel`, or none when ``init_from`` names an
    omniperceiver or transformers model directory or a run folder to start from) and the training settings."""

    dataset: str
    data_path: str | None = None
    validation_path: str | None = None
    test_path: str | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    input: Config | None = None
    model: Config | ZooModel | None = None
    init_from: str | None = None
    training: TrainingSettings = dataclasses.field(default_factory=TrainingSettings)

    @property
    def task(self) -> Task:
        """The dataset's task, reading its input as this recipe says."""
        return dataclasses.replace(get_task(self.dataset), input=self.input)

    def splits(self) -> Splits:
        """The recipe's data, cut into its parts (the user's own validation and test parts where given)."""
        return self.task.splits(self.data_path, self.validation_path, self.test_path, self.data)

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain YAML values; :func:`parse_recipe` reads it back."""
        data = {"dataset": self.dataset, "data_path": self.data_path}
        for part in ("validation_path", "test_path"):
            if getattr(self, part) is not None:
                data[part] = getattr(self, part)
        if self.data:
            data["data"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.data.items()}
        if self.input is not None:
            data["input"] = dataclasses.asdict(self.input)
        if self.model is not None:
            data["model"] = self.model.to_dict() if isinstance(self.model, ZooModel) else dataclasses.asdict(self.model)
        if self.init_from is not None:
            data["init_from"] = self.init_from
        data["training"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.training).items()
        }
        return data


def parse_recipe(data: Any, where: str) -> Recipe:
    """A recipe from its YAML mapping: ``dataset`` picks the task, whose types the ``input`` and ``model``
    sections are read as; every key and value is checked (an error names the key)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of recipe sections, got {type(data).__name__}")
    known = ("dataset", "data_path", "validation_path", "test_path", "data", "input", "model", "init_from", "training")
    for key in data:
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key; valid keys: {sorted(known)}")
    if not isinstance(data.get("dataset"), str):
        raise ValueError(f"{where}.dataset: expected the name of a dataset, got {data.get('dataset')!r}")
    task = get_task(data["dataset"])
    data_path = typed_value(str | None, data.get("data_path"), f"{where}.data_path", named=False)
    parts = {
        part: typed_value(str | None, data.get(part), f"{where}.{part}", named=False)
        for part in ("validation_path", "test_path")
    }
    parts["data"] = _data_options(task, data.get("data") or {}, f"{where}.data")
    init_from = typed_value(str | None, data.get("init_from"), f"{where}.init_from", named=False)
    section = _typed(type(task.input), data.get("input") or {}, f"{where}.input")
    model = data.get("model")
    if init_from is not None and model is not None:
        raise ValueError(f"{where}: give model (what to build) or init_from (weights to start from), not both")
    moved = sorted({"patch_size", "fourier_bands", "ngram"} & set(model if isinstance(model, dict) else ()))
    if moved:
        raise ValueError(
            f"{where}.model.{moved[0]}: how the data is read moved to the input: section (input.{moved[0]})"
        )
    if isinstance(model, dict) and "zoo" in model:
        model = ZooModel.from_dict(model, f"{where}.model")
    elif init_from is None:
        model = _typed(task.trunk, model or {}, f"{where}.model")
    training = _typed(TrainingSettings, data.get("training") or {}, f"{where}.training")
    return Recipe(task.name, data_path, **parts, input=section, model=model, init_from=init_from, training=training)


def _data_options(task: Task, options: Any, where: str) -> dict[str, Any]:
    """The ``data:`` section: options of the task's loader, each checked against its type hint."""
    if not isinstance(options, dict):
        raise ValueError(f"{where}: expected a mapping of the loader's options, got {type(options).__name__}")
    hints = task.data_options()
    for key in options:
        if key not in hints:
            valid = sorted(hints) if hints else "none (its data ships with it)" if not task.reads_folder else "none"
            raise ValueError(f"{where}.{key}: not an option of dataset {task.name!r}; its options: {valid}")
    return {key: typed_value(hints[key], value, f"{where}.{key}", named=False) for key, value in options.items()}


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
    return parse_recipe(data, path.name)


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
