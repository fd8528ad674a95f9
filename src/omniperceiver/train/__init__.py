"""The training engine (Lightning): recipes, tasks, the task modules, ``train``, ``evaluate`` and the demo.
Not imported by the core; needs ``pip install -e '.[train]'``."""

from omniperceiver.train.recipe import ModelSize, Recipe, TrainingSettings, load_recipe
from omniperceiver.train.run import evaluate, train

__all__ = ["ModelSize", "Recipe", "TrainingSettings", "evaluate", "load_recipe", "train"]
