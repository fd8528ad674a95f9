"""Composed models with persistence (config.json + model.safetensors)."""

from omniperceiver.models.perceiver_ar import PerceiverAR, PerceiverARConfig
from omniperceiver.models.perceiver_io import PerceiverIO, PerceiverIOConfig
from omniperceiver.models.pretrained import PretrainedModel

__all__ = ["PerceiverAR", "PerceiverARConfig", "PerceiverIO", "PerceiverIOConfig", "PretrainedModel"]
