"""omniperceiver: Perceiver, Perceiver IO and Perceiver AR for every modality, on fused attention."""

from omniperceiver.adapters import ArrayInputConfig
from omniperceiver.core import (
    ARConfig,
    DecoderConfig,
    EncoderConfig,
    FourierPositionConfig,
    LearnedPositionConfig,
    LearnedQueryConfig,
    PerceiverARCore,
)
from omniperceiver.loading import from_pretrained
from omniperceiver.models import PerceiverAR, PerceiverARConfig, PerceiverIO, PerceiverIOConfig
from omniperceiver.outputs import ClassificationOutputConfig

__version__ = "0.1.0"

__all__ = [
    "ARConfig",
    "ArrayInputConfig",
    "ClassificationOutputConfig",
    "DecoderConfig",
    "EncoderConfig",
    "FourierPositionConfig",
    "LearnedPositionConfig",
    "LearnedQueryConfig",
    "PerceiverAR",
    "PerceiverARConfig",
    "PerceiverARCore",
    "PerceiverIO",
    "PerceiverIOConfig",
    "__version__",
    "from_pretrained",
]
