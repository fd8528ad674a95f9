"""Output adapters: decoder outputs (B, O, K) -> a task's output."""

from omniperceiver.outputs.classification import (
    ClassificationOutput,
    ClassificationOutputConfig,
    TokenClassificationOutputConfig,
)
from omniperceiver.outputs.flow import FlowOutputConfig
from omniperceiver.outputs.multimodal import (
    ModalityOutputConfig,
    ModalityQueryConfig,
    MultimodalOutputConfig,
    MultimodalQueryConfig,
)
from omniperceiver.outputs.segmentation import SegmentationOutputConfig
from omniperceiver.outputs.tokens import TiedTokenOutputConfig

__all__ = [
    "ClassificationOutput",
    "ClassificationOutputConfig",
    "FlowOutputConfig",
    "ModalityOutputConfig",
    "ModalityQueryConfig",
    "MultimodalOutputConfig",
    "MultimodalQueryConfig",
    "SegmentationOutputConfig",
    "TiedTokenOutputConfig",
    "TokenClassificationOutputConfig",
]
