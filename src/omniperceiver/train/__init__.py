"""The training engine (Lightning): recipes, tasks, the classifier module and ``train``. Not imported by the
core; needs ``pip install -e '.[train]'``."""

from omniperceiver.train.recipe import ModelSize, Recipe, TrainingSettings, load_recipe
from omniperceiver.train.run import train

__all__ = ["ModelSize", "Recipe", "TrainingSettings", "load_recipe", "train"]
