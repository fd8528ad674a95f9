"""The model a recipe trains: built from a trunk, from a published architecture (zoo name), or started from
weights (``init_from``: an omniperceiver or transformers model directory, or a run folder) and fitted to the
task, its head replaced where the outputs differ and its learned positions resized where the input did."""

from __future__ import annotations

from torch import nn

from omniperceiver.core.position import LearnedPositionEncoding, resize_learned_positions
from omniperceiver.data.splits import Splits
from omniperceiver.loading import from_pretrained
from omniperceiver.train.recipe import Recipe
from omniperceiver.train.sections import ZooModel
from omniperceiver.train.tasks.base import Task, freeze


def build_model(recipe: Recipe, task: Task, splits: Splits) -> tuple[nn.Module, list[str]]:
    """The recipe's model, its frozen groups frozen, and the lines that say where its weights came from."""
    if recipe.init_from is not None:
        source = from_pretrained(recipe.init_from)
        config, fresh = task.fit(source.config, splits)
        model = config.build()
        report = [f"weights from {recipe.init_from}", *transfer(source, model, fresh)]
    elif isinstance(recipe.model, ZooModel):
        config, _ = task.fit(recipe.model.config(), splits)
        model = config.build()
        report = [f"{recipe.model.zoo}{' (reduced)' if recipe.model.reduced else ''}, randomly initialized"]
    else:
        model = task.model_config(splits, recipe.model, recipe.training).build()
        report = []
    freeze(model, recipe.training.freeze)
    if recipe.training.freeze:
        report.append(f"frozen: {', '.join(recipe.training.freeze)}")
    return model, report


def transfer(source: nn.Module, model: nn.Module, fresh: tuple[str, ...] = ()) -> list[str]:
    """Copy the weights of ``source`` into ``model`` where names and shapes agree, learned position tables
    resized to the model's index shape; the weights under a ``fresh`` prefix (a replaced head) and those
    without a match keep their initialization. Returns one line per kind of weight not copied as it was."""
    state, target = source.state_dict(), model.state_dict()
    old, positions = _position_shapes(source), _position_shapes(model)
    loaded, resized, new = {}, [], []
    for name, value in target.items():
        if any(name == p or name.startswith(p + ".") for p in fresh) or name not in state:
            new.append(name)
        elif state[name].shape == value.shape:
            loaded[name] = state[name]
        elif name in positions and name in old:
            loaded[name] = resize_learned_positions(state[name], old[name], positions[name])
            resized.append(f"{name} {_shape(old[name])} -> {_shape(positions[name])}")
        else:
            new.append(f"{name} ({tuple(state[name].shape)} in the source, {tuple(value.shape)} here)")
    model.load_state_dict(loaded, strict=False)
    unused = sorted(set(state) - set(target))
    lines = [f"loaded {len(loaded)} of {len(target)} weights"]
    lines += [f"interpolated {line}" for line in resized]
    lines += [f"not loaded (newly initialized): {', '.join(new)}"] if new else []
    lines += [f"not used (the model has no such weight): {', '.join(unused)}"] if unused else []
    return lines


def _position_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The index shape of each learned position table of ``model``, by the table's weight name."""
    return {
        f"{name}.embedding": module.index_shape
        for name, module in model.named_modules()
        if isinstance(module, LearnedPositionEncoding)
    }


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))
