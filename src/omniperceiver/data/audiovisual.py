"""An audio-visual digit set: an MNIST image paired with a spoken recording of the same digit, where one of
the two is often destroyed, so that only a model that fuses both modalities gets every example right."""

from __future__ import annotations

import torch
from torch import Tensor

from omniperceiver.data.audio import spoken_digits
from omniperceiver.data.images import DIGITS, mnist
from omniperceiver.data.splits import Splits, stratified_split


def _all_rows(splits: Splits) -> tuple[Tensor, ...]:
    parts = (splits.train.tensors, splits.validation.tensors, splits.test.tensors)
    return tuple(torch.cat(columns) for columns in zip(*parts, strict=True))


def audiovisual_digits(*, corrupt_probability: float = 0.3, seed: int = 0) -> Splits:
    """3,000 pairs (300 per digit) of an MNIST image (28, 28, 1) and an FSDD recording (T, 13) with its mask.
    Each pair has its image replaced by noise with probability ``corrupt_probability``, else its audio with
    the same probability, never both: either modality alone can be right on about 1 - ``corrupt_probability``
    of the pairs, fusion on all of them. TensorDatasets of (image, mfcc, mask, label)."""
    if not 0 <= corrupt_probability <= 0.5:
        raise ValueError(f"corrupt_probability={corrupt_probability} must lie in [0, 0.5] (one modality survives)")
    generator = torch.Generator().manual_seed(seed)
    images, image_labels = _all_rows(mnist(seed=seed))
    features, mask, audio_labels = _all_rows(spoken_digits(seed=seed))
    pictures, clips = [], []
    for digit in range(10):
        digit_clips = (audio_labels == digit).nonzero()[:, 0]
        digit_images = (image_labels == digit).nonzero()[:, 0]
        pictures.append(digit_images[torch.randperm(len(digit_images), generator=generator)[: len(digit_clips)]])
        clips.append(digit_clips)
    image, audio, audio_mask = images[torch.cat(pictures)], features[torch.cat(clips)], mask[torch.cat(clips)]
    labels = audio_labels[torch.cat(clips)]
    draw = torch.rand(len(labels), generator=generator)
    broken_image = draw < corrupt_probability
    broken_audio = (draw >= corrupt_probability) & (draw < 2 * corrupt_probability)
    image[broken_image] = torch.rand(image[broken_image].shape, generator=generator)
    noise = torch.randn(audio[broken_audio].shape, generator=generator) * audio[audio_mask].std()
    audio[broken_audio] = noise * audio_mask[broken_audio, :, None]
    description = f"{len(labels)} image + speech pairs, each modality destroyed in {corrupt_probability:.0%} of them"
    return stratified_split("audiovisual-digits", (image, audio, audio_mask, labels), DIGITS, description, seed=seed)
