"""Reading images and the reference's ImageNet preprocessing.

Images are uint8 arrays (H, W, 3) in RGB order; model inputs are float32 tensors (3, S, S), S = ``size``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# the reference's resample filter (PIL.Image.Resampling.BICUBIC == 3)
_BICUBIC = Image.Resampling.BICUBIC

# The largest image load_image decodes: 2**25 pixels (an 8K frame, 7680x4320, fits), 96 MiB as RGB uint8. The
# size is read from the file's header; a larger image is rejected before its pixels are decoded.
MAX_PIXELS = 2**25


def load_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3).

    The EXIF orientation is applied and grayscale, palette, CMYK and RGBA images are converted with Pillow
    (an alpha channel is dropped, not composited), as transformers' ``load_image`` does. Raises ValueError
    naming the file when it is missing, unreadable, not an image, or larger than ``max_pixels`` (checked
    from the header, before decoding).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # max_pixels is the limit here
            image = Image.open(path)
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise ValueError(
                    f"{width}x{height} = {width * height:,} pixels, more than max_pixels={max_pixels:,} "
                    "(checked before decoding)"
                )
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright.mode == "P" and "transparency" in upright.info:
                # convert via RGBA: Pillow warns about transparent palettes converted straight to RGB
                upright = upright.convert("RGBA")
            rgb = upright.convert("RGB")
    except Image.UnidentifiedImageError as err:
        raise ValueError(f"cannot read image '{os.fspath(path)}': not a recognized image format") from err
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err) or type(err).__name__
        raise ValueError(f"cannot read image '{os.fspath(path)}': {reason}") from err
    return np.asarray(rgb, dtype=np.uint8).copy()


def _as_rgb_array(image: np.ndarray | Image.Image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"image must be a uint8 numpy array (H, W, 3) or a PIL image, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be a uint8 array (H, W, 3), got {image.dtype} of shape {image.shape}")
    return image


def center_crop_box(height: int, width: int, crop_fraction: float) -> tuple[int, int, int, int]:
    """The reference's square center crop (top, left, side, side): side = int(crop_fraction · min(H, W)),
    offsets floored."""
    side = int(crop_fraction * min(height, width))
    if side < 1:
        raise ValueError(
            f"image of {height}x{width} pixels is too small: a crop of {crop_fraction} of its short side is empty"
        )
    return (height - side) // 2, (width - side) // 2, side, side


def imagenet_preprocess(
    image: np.ndarray | Image.Image,
    *,
    size: int = 224,
    crop_fraction: float = 224 / 256,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Tensor:
    """The reference's image processor: an RGB image (H, W, 3) becomes model input (3, size, size) float32.

    Steps, as in transformers' ``PerceiverImageProcessor`` with its defaults: a square center crop of
    ``crop_fraction`` of the short side, a PIL bicubic resize of the uint8 crop to ``size`` x ``size``, scaling
    by 1/255 and (x - ``mean``) / ``std`` per channel. The reference ties the crop to ``size / 256`` (a larger
    ``size`` would pad the image with zeros); here the two are independent and ``crop_fraction`` is in (0, 1].
    """
    if not (isinstance(size, int) and size > 0):
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction!r}")
    pixels = _as_rgb_array(image)
    top, left, height, width = center_crop_box(*pixels.shape[:2], crop_fraction)
    crop = np.ascontiguousarray(pixels[top : top + height, left : left + width])
    resized = np.asarray(Image.fromarray(crop).resize((size, size), resample=_BICUBIC))
    # the reference's arithmetic: scale in float64, round to float32, normalize in float32
    scaled = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
    normalized = (scaled - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))
