"""Semantic segmentation: shapes pasted onto crops of real photos and textures (scikit-image)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from omniperceiver.data.splits import Splits, require_module

# textures by part: the test and validation textures are never seen in training
TEXTURES = {
    "train": ("astronaut", "camera", "coffee", "brick", "grass", "moon"),
    "validation": ("rocket",),
    "test": ("chelsea", "gravel"),
}
SHAPES = ("disc", "square", "triangle", "cross")
CLASSES = ("background", *SHAPES)


def shape_mask(shape: str, side: int, angle: float) -> np.ndarray:
    """A filled ``shape`` as a mask (side, side), turned by ``angle`` (radians) about its centre."""
    y, x = (np.mgrid[:side, :side] + 0.5) / side * 2 - 1
    u, v = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    if shape == "disc":
        return u**2 + v**2 <= 0.9**2
    if shape == "square":
        return np.maximum(abs(u), abs(v)) <= 0.65
    if shape == "triangle":  # equilateral: inside the three half-planes of its sides
        normals = [(np.sin(a), np.cos(a)) for a in (0, 2 * np.pi / 3, 4 * np.pi / 3)]
        return np.all([u * s + v * c <= 0.55 for s, c in normals], axis=0)
    return (np.minimum(abs(u), abs(v)) <= 0.28) & (np.maximum(abs(u), abs(v)) <= 0.9)  # a cross


def _gray(photo: np.ndarray) -> np.ndarray:
    """A photo (h, w) or (h, w, 3+) as grayscale (h, w) in [0, 1]."""
    photo = photo.astype(np.float64) / 255
    return photo if photo.ndim == 2 else photo[..., :3] @ np.array([0.2125, 0.7154, 0.0721])


def _paste(crop: np.ndarray, labels: np.ndarray, mask: np.ndarray, label: int, rng) -> None:
    """Paste one shape ``mask`` (s, s) at a random place in ``crop``, shifting the texture under it brighter or
    darker by a random contrast, and label its pixels ``label``."""
    side = len(mask)
    y, x = rng.integers(0, crop.shape[0] - side + 1), rng.integers(0, crop.shape[1] - side + 1)
    under = crop[y : y + side, x : x + side]
    shift = rng.choice((-1.0, 1.0)) * rng.uniform(0.35, 0.6)
    if not 0.05 <= under[mask].mean() + shift <= 0.95:  # no room on that side: the other one has it
        shift = -shift
    under[mask] = np.clip(under[mask] + shift, 0, 1)
    labels[y : y + side, x : x + side][mask] = label


def pasted_shapes(*, size: tuple[int, int] = (32, 32), per_texture: int = 300, seed: int = 0) -> Splits:
    """Grayscale images (H, W, 1) in [0, 1] with per-pixel labels (H, W): 0 background, 1 + k for shape k of
    :data:`SHAPES`. Each image is a crop of a real photo or texture with 1 or 2 shapes of 12-20 px pasted on
    it, turned at random; the parts use disjoint photos."""
    data = require_module("skimage.data", "pip install scikit-image")
    rng = np.random.default_rng(seed)
    h, w = size
    parts = []
    for names in TEXTURES.values():
        images, labels = [], []
        for name in names:
            photo = _gray(getattr(data, name)())
            for _ in range(per_texture):
                y, x = rng.integers(0, photo.shape[0] - h + 1), rng.integers(0, photo.shape[1] - w + 1)
                crop, label = photo[y : y + h, x : x + w].copy(), np.zeros(size, dtype=np.int64)
                for kind in rng.integers(0, len(SHAPES), size=rng.integers(1, 3)):
                    mask = shape_mask(SHAPES[kind], int(rng.integers(12, 21)), rng.uniform(0, 2 * np.pi))
                    _paste(crop, label, mask, 1 + int(kind), rng)
                images.append(crop)
                labels.append(label)
        images_tensor = torch.from_numpy(np.stack(images)[..., None].astype(np.float32))
        parts.append(TensorDataset(images_tensor, torch.from_numpy(np.stack(labels))))
    description = f"{h}x{w} crops of {sum(map(len, TEXTURES.values()))} photos and textures, 1-2 shapes pasted on each"
    return Splits("pasted-shapes", *parts, classes=CLASSES, description=description)
