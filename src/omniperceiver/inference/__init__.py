"""Task-level inference on top of the models: classes, masked bytes, tiled optical flow, generated tokens."""

from omniperceiver.inference.classify import top_k
from omniperceiver.inference.flow import estimate_flow, normalize_frames, tile_origins, tile_weights
from omniperceiver.inference.generate import generate
from omniperceiver.inference.multimodal import reconstruct
from omniperceiver.inference.sampling import Sampling
from omniperceiver.inference.text import fill_masks, parse_masked

__all__ = [
    "Sampling",
    "estimate_flow",
    "fill_masks",
    "generate",
    "normalize_frames",
    "parse_masked",
    "reconstruct",
    "tile_origins",
    "tile_weights",
    "top_k",
]
