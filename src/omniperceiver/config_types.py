"""The config types a ``config.json`` may name: the library's own Config classes under their short names, and
the ``module:qualname`` names that files saved before the short names hold. A name read from a file is only
looked up here (:meth:`omniperceiver.core.config.Config.from_dict`), never imported, so loading a model
folder cannot run code. A new Config class that models are saved with goes into ``CONFIG_TYPES``; a class
that moves or is renamed keeps its old names as aliases."""

from __future__ import annotations

from omniperceiver.adapters.array import ArrayBackedInputConfig, ArrayInputConfig
from omniperceiver.adapters.audio import AudioInputConfig
from omniperceiver.adapters.flow import FlowInputConfig
from omniperceiver.adapters.image import (
    Conv1x1StemConfig,
    ConvStemConfig,
    ImageInputConfig,
    PatchStemConfig,
    StemConfig,
)
from omniperceiver.adapters.label import LabelInputConfig
from omniperceiver.adapters.multimodal import ModalityInputConfig, MultimodalInputConfig
from omniperceiver.adapters.points import PointCloudInputConfig
from omniperceiver.adapters.text import TextInputConfig
from omniperceiver.adapters.video import VideoInputConfig
from omniperceiver.core.adapter import InputAdapterConfig, OutputAdapterConfig
from omniperceiver.core.ar import ARConfig
from omniperceiver.core.config import Config
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.position import (
    CoordinatePositionConfig,
    FourierPositionConfig,
    LearnedPositionConfig,
    PositionConfig,
    ProjectedPositionConfig,
    SinusoidalPositionConfig,
)
from omniperceiver.core.queries import InputQueryConfig, LearnedQueryConfig, PositionQueryConfig, QueryConfig
from omniperceiver.models.perceiver_ar import PerceiverARConfig
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.classification import ClassificationOutputConfig, TokenClassificationOutputConfig
from omniperceiver.outputs.flow import FlowOutputConfig
from omniperceiver.outputs.multimodal import (
    ModalityOutputConfig,
    ModalityQueryConfig,
    MultimodalOutputConfig,
    MultimodalQueryConfig,
)
from omniperceiver.outputs.segmentation import SegmentationOutputConfig
from omniperceiver.outputs.tokens import TiedTokenOutputConfig

CONFIG_TYPES: dict[str, type[Config]] = {
    cls.__name__: cls
    for cls in (
        # models
        PerceiverIOConfig,
        PerceiverARConfig,
        # core
        ARConfig,
        EncoderConfig,
        DecoderConfig,
        InputAdapterConfig,
        OutputAdapterConfig,
        PositionConfig,
        FourierPositionConfig,
        LearnedPositionConfig,
        ProjectedPositionConfig,
        SinusoidalPositionConfig,
        CoordinatePositionConfig,
        QueryConfig,
        LearnedQueryConfig,
        PositionQueryConfig,
        InputQueryConfig,
        # input adapters
        ArrayInputConfig,
        ArrayBackedInputConfig,
        AudioInputConfig,
        FlowInputConfig,
        StemConfig,
        Conv1x1StemConfig,
        ConvStemConfig,
        PatchStemConfig,
        ImageInputConfig,
        LabelInputConfig,
        ModalityInputConfig,
        MultimodalInputConfig,
        PointCloudInputConfig,
        TextInputConfig,
        VideoInputConfig,
        # output adapters and queries
        ClassificationOutputConfig,
        TokenClassificationOutputConfig,
        FlowOutputConfig,
        SegmentationOutputConfig,
        ModalityQueryConfig,
        MultimodalQueryConfig,
        ModalityOutputConfig,
        MultimodalOutputConfig,
        TiedTokenOutputConfig,
    )
}

# Files saved before the short names (up to commit 3716836) named each class by "module:qualname"; these
# are all the names such a file can hold (with the classes added since, at their modules' paths). No class has
# moved or been renamed since.
_SAVED_AS = {
    "omniperceiver.models.perceiver_io": ("PerceiverIOConfig",),
    "omniperceiver.models.perceiver_ar": ("PerceiverARConfig",),
    "omniperceiver.core.ar": ("ARConfig",),
    "omniperceiver.core.encoder": ("EncoderConfig",),
    "omniperceiver.core.decoder": ("DecoderConfig",),
    "omniperceiver.core.adapter": ("InputAdapterConfig", "OutputAdapterConfig"),
    "omniperceiver.core.position": (
        "PositionConfig",
        "FourierPositionConfig",
        "LearnedPositionConfig",
        "ProjectedPositionConfig",
        "SinusoidalPositionConfig",
        "CoordinatePositionConfig",
    ),
    "omniperceiver.core.queries": ("QueryConfig", "LearnedQueryConfig", "PositionQueryConfig", "InputQueryConfig"),
    "omniperceiver.adapters.array": ("ArrayInputConfig", "ArrayBackedInputConfig"),
    "omniperceiver.adapters.audio": ("AudioInputConfig",),
    "omniperceiver.adapters.flow": ("FlowInputConfig",),
    "omniperceiver.adapters.image": (
        "StemConfig",
        "Conv1x1StemConfig",
        "ConvStemConfig",
        "PatchStemConfig",
        "ImageInputConfig",
    ),
    "omniperceiver.adapters.label": ("LabelInputConfig",),
    "omniperceiver.adapters.multimodal": ("ModalityInputConfig", "MultimodalInputConfig"),
    "omniperceiver.adapters.points": ("PointCloudInputConfig",),
    "omniperceiver.adapters.text": ("TextInputConfig",),
    "omniperceiver.adapters.video": ("VideoInputConfig",),
    "omniperceiver.outputs.classification": ("ClassificationOutputConfig", "TokenClassificationOutputConfig"),
    "omniperceiver.outputs.flow": ("FlowOutputConfig",),
    "omniperceiver.outputs.multimodal": (
        "ModalityQueryConfig",
        "MultimodalQueryConfig",
        "ModalityOutputConfig",
        "MultimodalOutputConfig",
    ),
    "omniperceiver.outputs.segmentation": ("SegmentationOutputConfig",),
    "omniperceiver.outputs.tokens": ("TiedTokenOutputConfig",),
}
CONFIG_ALIASES: dict[str, str] = {f"{module}:{name}": name for module, names in _SAVED_AS.items() for name in names}
