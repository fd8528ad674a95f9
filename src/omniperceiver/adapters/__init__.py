"""Input adapters: one file per modality, each turning a modality tensor into Perceiver inputs (B, M, C)."""

from omniperceiver.adapters.array import ArrayInputAdapter, ArrayInputConfig
from omniperceiver.adapters.audio import AudioInputConfig
from omniperceiver.adapters.flow import FlowInputConfig
from omniperceiver.adapters.image import (
    Conv1x1StemConfig,
    ConvStemConfig,
    ImageInputConfig,
    PatchStemConfig,
    space_to_depth,
)
from omniperceiver.adapters.label import LabelInputConfig
from omniperceiver.adapters.multimodal import ModalityInputConfig, MultimodalInputConfig
from omniperceiver.adapters.text import ByteTokenizer, TextInputConfig
from omniperceiver.adapters.video import VideoInputConfig

__all__ = [
    "ArrayInputAdapter",
    "ArrayInputConfig",
    "AudioInputConfig",
    "ByteTokenizer",
    "Conv1x1StemConfig",
    "ConvStemConfig",
    "FlowInputConfig",
    "ImageInputConfig",
    "LabelInputConfig",
    "ModalityInputConfig",
    "MultimodalInputConfig",
    "PatchStemConfig",
    "TextInputConfig",
    "VideoInputConfig",
    "space_to_depth",
]
