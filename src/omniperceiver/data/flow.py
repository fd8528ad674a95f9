"""Optical-flow pairs: photos and textures (scikit-image) warped by smooth random fields, or cut into layers
(a background and shapes) that move under their own affine motions."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset

from omniperceiver.data.splits import Splits, require_module
from omniperceiver.inference.flow import MIN_SIDE

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


# pictures the layers are cut from, by part: the test and validation pictures are never seen in training
TEXTURES = {
    "train": (
        "astronaut", "camera", "coffee", "brick", "grass", "coins", "moon", "page", "text", "hubble_deep_field",
        "immunohistochemistry", "retina", "clock",
    ),
    "validation": ("rocket",),
    "test": ("chelsea", "gravel"),
}  # fmt: skip


def _texture(name: str, data) -> Tensor:
    """The scikit-image picture ``name`` as (3, H, W) in [-1, 1] (gray repeated)."""
    picture = torch.tensor(getattr(data, name)(), dtype=torch.float32) / 255 * 2 - 1
    if picture.dim() == 2:
        picture = picture[..., None].expand(-1, -1, 3)
    return picture[..., :3].permute(2, 0, 1).contiguous()


def _sample(picture: Tensor, points: Tensor) -> Tensor:
    """``picture`` (C, Hp, Wp) at pixel coordinates ``points`` (H, W, 2) (x right, y down), bilinear, mirrored
    beyond its edges."""
    h, w = picture.shape[1:]
    normalized = points / torch.tensor([w - 1, h - 1]) * 2 - 1
    return F.grid_sample(picture[None], normalized[None], padding_mode="reflection", align_corners=True)[0]


def _shape(rng, size: tuple[int, int]) -> Callable[[Tensor], Tensor]:
    """A random ellipse or rectangle in a frame of ``size`` (H, W): the function giving its coverage in [0, 1]
    (edges antialiased over a pixel) at points (..., 2)."""
    h, w = size
    centre = torch.tensor([rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h])
    half = torch.tensor([rng.uniform(0.08, 0.3) * w, rng.uniform(0.08, 0.3) * h])
    angle = rng.uniform(0, math.pi)
    rotation = torch.tensor([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    ellipse = rng.random() < 0.5

    def coverage(points: Tensor) -> Tensor:
        local = (points - centre) @ rotation.T
        if ellipse:
            distance = ((local / half).norm(dim=-1) - 1) * half.min()
        else:
            distance = (local.abs() - half).max(dim=-1).values
        return (0.5 - distance).clamp(0, 1)

    return coverage


def _motion(rng, grid: Tensor, centre: Tensor, max_motion: float) -> tuple[Tensor, Tensor]:
    """A random affine motion p -> p + matrix (p - centre) + translation (a rotation of up to 8 degrees, a scaling
    of up to 7 %, a translation of up to ``max_motion``), shrunk until no point of ``grid`` (H, W, 2) moves more
    than ``max_motion`` pixels: (matrix (2, 2), translation (2,))."""
    angle = math.radians(rng.uniform(-8, 8))
    cos, sin = math.cos(angle), math.sin(angle)
    matrix = torch.tensor([[cos, -sin], [sin, cos]]) * rng.uniform(0.93, 1.07) - torch.eye(2)
    direction = rng.uniform(0, 2 * math.pi)
    translation = torch.tensor([math.cos(direction), math.sin(direction)]) * rng.uniform(0, max_motion)
    largest = float(((grid - centre) @ matrix.T + translation).norm(dim=-1).max())
    shrink = min(1.0, max_motion / largest) if largest > 0 else 1.0
    return matrix * shrink, translation * shrink


def moving_layers(rng, textures: list[Tensor], size: tuple[int, int], max_motion: float) -> tuple[Tensor, Tensor]:
    """Frames (2, 3, H, W) in [-1, 1] and the first frame's flow (H, W, 2): a textured background and 1-3
    textured shapes over it, each layer cut from a random picture at a random place and moved by its own affine
    motion (:func:`_motion`), the shapes occluding what lies under them in either frame."""
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    grid = torch.stack([xs, ys], -1)  # (H, W, 2)
    frames = torch.zeros(2, 3, h, w)
    flow = torch.zeros(h, w, 2)
    for layer in range(rng.integers(2, 5)):
        texture = textures[rng.integers(len(textures))]
        origin = torch.tensor([rng.uniform(0, texture.shape[2] - w), rng.uniform(0, texture.shape[1] - h)])
        coverage = (lambda points: torch.ones(points.shape[:-1])) if layer == 0 else _shape(rng, size)
        first = coverage(grid)
        centre = (grid * first[..., None]).sum((0, 1)) / first.sum()
        matrix, translation = _motion(rng, grid, centre, max_motion)
        # frame 2 shows at q the layer's point p with p + matrix (p - centre) + translation = q
        source = centre + (grid - centre - translation) @ torch.linalg.inv(torch.eye(2) + matrix).T
        for frame, points in enumerate((grid, source)):
            alpha = coverage(points)
            frames[frame] = alpha * _sample(texture, origin + points) + (1 - alpha) * frames[frame]
        flow = torch.where(first[..., None] > 0.5, (grid - centre) @ matrix.T + translation, flow)
    return frames, flow


@functools.lru_cache(maxsize=1)  # a table trains on them and tests beside them in one process: drawn once
def moving_shapes(
    *,
    pairs: tuple[int, int, int] = (3000, 200, 400),
    size: tuple[int, int] = (48, 64),
    max_motion: float = 10.0,
    seed: int = 0,
) -> Splits:
    """Frame pairs (2, 3, H, W) in [-1, 1] with the first frame's true flow (H, W, 2) in pixels (u right, v
    down): layers of pictures moving by up to ``max_motion`` pixels, occluding each other
    (:func:`moving_layers`); ``pairs`` per part. Each picture serves at full and at half size; the test and
    validation pairs are cut from pictures the training pairs never use."""
    data = require_module("skimage.data", "pip install scikit-image")
    if len(pairs) != 3 or min(pairs) < 1 or not max_motion > 0:
        raise ValueError(f"expected pairs (train, validation, test) >= 1 and max_motion > 0, got {pairs}, {max_motion}")
    rng = np.random.default_rng(seed)
    parts = []
    for count, names in zip(pairs, TEXTURES.values(), strict=True):
        full = [_texture(name, data) for name in names]
        textures = full + [F.interpolate(t[None], scale_factor=0.5, mode="area")[0] for t in full]
        smallest = tuple(min(t.shape[i] for t in textures) for i in (1, 2))
        if min(size) < MIN_SIDE or size[0] > smallest[0] or size[1] > smallest[1]:
            raise ValueError(f"size={size}: frames must be at least {MIN_SIDE} and at most {smallest} pixels")
        frames, flows = zip(*(moving_layers(rng, textures, size, max_motion) for _ in range(count)), strict=True)
        parts.append(TensorDataset(torch.stack(frames), torch.stack(flows)))
    description = f"{size[0]}x{size[1]} pairs of picture layers moving by up to {max_motion:g} px, with occlusions"
    return Splits("moving-shapes", *parts, classes=(), description=description)


def stereo_pair(downscale: int = 8) -> tuple[Tensor, Tensor]:
    """A real pair with known motion: scikit-image's Middlebury "motorcycle" stereo pair (500 x 741), its
    sizes divided by ``downscale`` (area averaging): frames (2, 3, H, W) in [-1, 1] (left, right) and the left
    frame's flow (H, W, 2) in pixels, (-disparity, 0), NaN where the disparity is unknown (occlusions, and
    every pixel whose area holds one)."""
    data = require_module("skimage.data", "pip install scikit-image")
    left, right, disparity = data.stereo_motorcycle()
    frames = torch.tensor(np.stack([left, right]), dtype=torch.float32).permute(0, 3, 1, 2) / 255 * 2 - 1
    disparity = torch.tensor(disparity, dtype=torch.float32)
    disparity[~disparity.isfinite()] = torch.nan
    frames = F.interpolate(frames, scale_factor=1 / downscale, mode="area")
    disparity = F.interpolate(disparity[None, None], size=frames.shape[-2:], mode="area")[0, 0] / downscale
    return frames, torch.stack([-disparity, torch.zeros_like(disparity)], -1)
