"""Optical-flow visualization and atomic writes of PNG and NumPy files.

A flow field is (H, W, 2): channel 0 is the x displacement u (right is positive), channel 1 the y
displacement v (down is positive), in pixels.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

from omniperceiver.files import atomic_write

# segment lengths of the Middlebury colour wheel: red-yellow, yellow-green, green-cyan, cyan-blue,
# blue-magenta, magenta-red (Baker et al., "A Database and Evaluation Methodology for Optical Flow")
_WHEEL_SEGMENTS = (15, 6, 4, 11, 13, 6)


def _color_wheel() -> np.ndarray:
    """The Middlebury colour wheel (55, 3) in [0, 255], hue by hue."""
    rows = []
    for segment, length in enumerate(_WHEEL_SEGMENTS):
        ramp = np.floor(255 * np.arange(length) / length)
        # each segment holds one channel at 255 and ramps another up (even segments) or down (odd segments)
        full, ramped = ((0, 1), (1, 0), (1, 2), (2, 1), (2, 0), (0, 2))[segment]
        block = np.zeros((length, 3))
        block[:, full] = 255
        block[:, ramped] = ramp if segment % 2 == 0 else 255 - ramp
        rows.append(block)
    return np.concatenate(rows)


_WHEEL = _color_wheel()


def _to_numpy(array: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu()
        # NumPy has no bfloat16
        return (array.float() if array.dtype == torch.bfloat16 else array).numpy()
    return np.asarray(array)


def flow_to_rgb(flow: np.ndarray | torch.Tensor) -> np.ndarray:
    """Colour-code a flow field (H, W, 2) as RGB uint8 (H, W, 3) with the Middlebury colour wheel.

    The hue gives the direction (right red, down yellow, left cyan-blue, up violet), the saturation the
    magnitude relative to the largest one in the field (plus 1e-5): zero flow is white and the largest vector
    is fully saturated. Non-finite vectors (unknown flow) are drawn as zero flow. Integer and float input,
    NumPy or torch, is computed in float64.
    """
    flow = _to_numpy(flow)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must have shape (H, W, 2), got {tuple(flow.shape)}")
    if not (np.issubdtype(flow.dtype, np.floating) or np.issubdtype(flow.dtype, np.integer)):
        raise ValueError(f"flow must be a real-valued array, got {flow.dtype}")
    flow = flow.astype(np.float64)
    flow[~np.isfinite(flow).all(axis=-1)] = 0.0
    u, v = flow[..., 0], flow[..., 1]
    radius = np.hypot(u, v)
    scale = radius.max(initial=0.0) + 1e-5
    u, v, radius = u / scale, v / scale, np.minimum(radius / scale, 1.0)

    num_colors = len(_WHEEL)
    angle = np.arctan2(-v, -u) / np.pi  # in [-1, 1]
    position = (angle + 1) / 2 * (num_colors - 1)
    lower = np.floor(position).astype(np.int64)
    upper = (lower + 1) % num_colors
    weight = (position - lower)[..., None]
    color = ((1 - weight) * _WHEEL[lower] + weight * _WHEEL[upper]) / 255
    # desaturate towards white as the magnitude shrinks
    color = 1 - radius[..., None] * (1 - color)
    return np.floor(255 * color).astype(np.uint8)


def save_png(path: str | os.PathLike, rgb: np.ndarray | torch.Tensor) -> None:
    """Write a uint8 image, RGB (H, W, 3), RGBA (H, W, 4) or grayscale (H, W), as a PNG file, atomically."""
    rgb = _to_numpy(rgb)
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[-1] in (3, 4))):
        raise ValueError(
            f"image must be uint8 of shape (H, W, 3), (H, W, 4) or (H, W), got {rgb.dtype} of shape {rgb.shape}"
        )
    image = Image.fromarray(np.ascontiguousarray(rgb))
    atomic_write(path, lambda file: image.save(file, format="PNG"))


def save_npy(path: str | os.PathLike, array: np.ndarray | torch.Tensor) -> None:
    """Write an array as a ``.npy`` file at exactly ``path`` (no suffix added), atomically, without pickling."""
    array = np.asarray(_to_numpy(array))
    atomic_write(path, lambda file: np.save(file, array, allow_pickle=False))
