"""Optical-flow training pairs: real photos and textures (scikit-image) warped by smooth random fields."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from omniperceiver.data.splits import Splits, require_module

# photos by part: the test and validation photos are never seen in training
PHOTOS = {
    "train": ("astronaut", "camera", "coffee", "brick", "grass"),
    "validation": ("rocket",),
    "test": ("chelsea", "gravel"),
}


def _pairs(photo: np.ndarray, count: int, size: tuple[int, int], max_flow: float, rng, ndimage):
    """``count`` (frames (2, 3, h, w) in [-1, 1], flow (h, w, 2)) from random crops of one photo."""
    h, w = size
    frames, flows = [], []
    for _ in range(count):
        y, x = rng.integers(0, photo.shape[0] - h), rng.integers(0, photo.shape[1] - w)
        crop = photo[y : y + h, x : x + w]
        noise = ndimage.gaussian_filter(rng.standard_normal((2, h, w)), sigma=(0, h / 6, w / 6))
        flow = noise / (np.abs(noise).max() + 1e-8) * rng.uniform(0.3, 1.0) * max_flow  # (2, h, w): u, v
        rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
        # backward warp: the pixel of frame 1 at p is found in frame 2 at p + flow(p)
        coordinates = [rows - flow[1], cols - flow[0]]
        second = np.stack(
            [ndimage.map_coordinates(crop[..., c], coordinates, order=1, mode="reflect") for c in range(3)], -1
        )
        frames.append(np.stack([crop, second]).transpose(0, 3, 1, 2))
        flows.append(flow.transpose(1, 2, 0))
    return frames, flows


def flow_pairs(
    *, pairs_per_photo: int = 80, size: tuple[int, int] = (48, 64), max_flow: float = 3.0, seed: int = 0
) -> Splits:
    """Frame pairs (2, 3, H, W) in [-1, 1] with their true flow (H, W, 2) in pixels (u right, v down): crops
    of real photos, the second frame the first warped by a smooth random field of up to ``max_flow`` pixels.
    Test and validation pairs come from photos the training pairs never use."""
    data = require_module("skimage.data", "pip install scikit-image")
    ndimage = require_module("scipy.ndimage", "pip install scipy")
    rng = np.random.default_rng(seed)
    parts = []
    for names in PHOTOS.values():
        frames, flows = [], []
        for name in names:
            photo = getattr(data, name)().astype(np.float64) / 255 * 2 - 1
            if photo.ndim == 2:
                photo = np.repeat(photo[..., None], 3, axis=-1)
            more_frames, more_flows = _pairs(photo[..., :3], pairs_per_photo, size, max_flow, rng, ndimage)
            frames += more_frames
            flows += more_flows
        parts.append(
            TensorDataset(
                torch.tensor(np.stack(frames), dtype=torch.float32), torch.tensor(np.stack(flows), dtype=torch.float32)
            )
        )
    description = f"{size[0]}x{size[1]} crops of {sum(map(len, PHOTOS.values()))} photos warped by up to {max_flow} px"
    return Splits("flow-pairs", *parts, classes=(), description=description)
