"""The training engine (Lightning): recipes, tasks (one class per kind, in ``tasks/``; the datasets in
``catalog``), ``train``, ``fit``, ``evaluate`` and the demo. Not imported by the core; needs
``pip install -e '.[train]'``."""

from omniperceiver.train.catalog import get_task, register
from omniperceiver.train.recipe import Recipe, load_recipe, parse_recipe
from omniperceiver.train.run import evaluate, fit, train
from omniperceiver.train.sections import ARTrunk, TrainingSettings, Trunk, ZooModel

__all__ = [
    "ARTrunk",
    "Recipe",
    "TrainingSettings",
    "Trunk",
    "ZooModel",
    "evaluate",
    "fit",
    "get_task",
    "load_recipe",
    "parse_recipe",
    "register",
    "train",
]
