"""Optical flow on frames of any size, by overlapping tiles (as the reference): frames larger than the model's
training size are cut into tiles of that size; a model without position features (flow from local patches)
also reads frames down to 8 pixels a side, in one tile of the frame's size."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

MIN_SIDE = 8  # the smallest frame side a model without position features reads


def normalize_frames(frames: np.ndarray) -> Tensor:
    """uint8 frames (T, H, W, 3) -> float (T, 3, H, W) in [-1, 1], the published flow model's input range."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255 * 2 - 1


def tile_origins(image_shape: tuple[int, int], tile_shape: tuple[int, int], min_overlap: int) -> list[tuple[int, int]]:
    """Top-left corners of tiles covering ``image_shape``, overlapping by at least ``min_overlap`` pixels, the
    last ones flush with the bottom and right edges (no tile reaches past them)."""
    if any(min_overlap >= t for t in tile_shape):
        raise ValueError(f"min_overlap={min_overlap} must be smaller than the tile shape {tile_shape}")
    if any(n < t for n, t in zip(image_shape, tile_shape, strict=True)):
        raise ValueError(f"frames of {image_shape} are smaller than the model's training size {tile_shape}")
    axes = []
    for n, t in zip(image_shape, tile_shape, strict=True):
        axes.append(sorted({min(start, n - t) for start in range(0, n, t - min_overlap)}))
    return list(itertools.product(*axes))


def tile_weights(tile_shape: tuple[int, int]) -> Tensor:
    """(h, w) weights growing linearly from 1 at a tile's border to its centre: overlapping tiles blend."""
    h, w = tile_shape
    y = torch.arange(h)
    x = torch.arange(w)
    wy = torch.minimum(y + 1, h - y)
    wx = torch.minimum(x + 1, w - x)
    return torch.minimum(wy[:, None], wx[None, :]).float()


@torch.inference_mode()
def estimate_flow(
    model: nn.Module,
    frames: Tensor,
    *,
    min_overlap: int | None = None,
    batch_size: int = 1,
    progress: bool = False,
) -> Tensor:
    """Flow (H, W, 2) in pixels from frames (2, 3, H, W) in [-1, 1]: the frames are cut into overlapping tiles
    of the model's training size, each tile's flow is weighted by :func:`tile_weights` and the weighted flows
    are averaged where tiles overlap. Frames smaller than the training size are refused, except by a model
    without position features, which reads them (down to 8 pixels a side) in tiles shrunk to the frame.
    ``min_overlap`` defaults to the reference's 20 pixels (a quarter of the tile for tiles under 80 pixels)."""
    if frames.dim() != 4 or frames.shape[:2] != (2, 3):
        raise ValueError(f"expected two RGB frames (2, 3, H, W), got {tuple(frames.shape)}")
    height, width = frames.shape[-2:]
    tile = tuple(model.config.input.image_shape)
    if model.config.input.position is None:  # any tile size reads alike: shrink the tile to small frames
        if min(height, width) < MIN_SIDE:
            raise ValueError(f"frames of {height}x{width} pixels are too small: at least {MIN_SIDE} a side")
        tile = (min(tile[0], height), min(tile[1], width))
    if min_overlap is None:
        min_overlap = min(20, min(tile) // 4)
    origins = tile_origins((height, width), tile, min_overlap)
    weights = tile_weights(tile)
    flow = torch.zeros(height, width, 2)
    total = torch.zeros(height, width, 1)
    batches = [origins[i : i + batch_size] for i in range(0, len(origins), batch_size)]
    device = next(model.parameters()).device
    every_pixel = torch.arange(tile[0] * tile[1], device=device)  # decoded as (B, H·W, 2): the tile may be smaller
    for batch in tqdm(batches, desc="flow tiles", disable=not progress, leave=False):
        pieces = torch.stack([frames[..., y : y + tile[0], x : x + tile[1]] for y, x in batch])
        predicted = model(pieces.to(device), output_indices=every_pixel).float().cpu().view(len(batch), *tile, 2)
        for (y, x), piece in zip(batch, predicted, strict=True):
            flow[y : y + tile[0], x : x + tile[1]] += piece * weights[..., None]
            total[y : y + tile[0], x : x + tile[1]] += weights[..., None]
    return flow / total
