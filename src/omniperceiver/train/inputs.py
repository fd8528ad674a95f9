"""How a dataset's tensors reach a model: one class per input representation, each the typed ``input:`` section
of a recipe (patches and Fourier bands for images, n-grams for text, a neighbourhood for optical flow).

An :class:`Input` builds the input adapter for a dataset, turns a batch of the dataset's tensors (the targets
left out) into the model's ``(x, mask)``, gives the raw features a linear baseline sees, fits a loaded or
published model's input to the data, and reads one file for ``predict``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from omniperceiver.adapters.array import ArrayInputConfig
from omniperceiver.adapters.flow import FlowInputConfig
from omniperceiver.adapters.image import ImageInputConfig, PatchStemConfig
from omniperceiver.adapters.label import LabelInputConfig
from omniperceiver.adapters.multimodal import ModalityInputConfig, MultimodalInputConfig
from omniperceiver.adapters.points import PointCloudInputConfig
from omniperceiver.adapters.text import ByteTokenizer, TextInputConfig
from omniperceiver.core.adapter import InputAdapterConfig
from omniperceiver.core.config import Config, require, require_positive
from omniperceiver.core.position import FourierPositionConfig, grid_coordinates
from omniperceiver.media.audio import log_mel_spectrogram, mfcc, resample

Inputs = Tensor | dict[str, Tensor]
Masks = Tensor | dict[str, Tensor] | None
Batch = tuple[Tensor, ...]  # a batch of a dataset's tensors, the targets left out


@dataclasses.dataclass(frozen=True)
class Input(Config):
    """Base of the input representations; each reads the dataset tensors its task hands it (``Batch``) into an
    input adapter of type ``adapter_type``."""

    adapter_type: ClassVar[type[InputAdapterConfig]]

    def check(self, adapter: InputAdapterConfig) -> None:
        """Raise ValueError unless a model with ``adapter`` reads this input."""
        if not isinstance(adapter, self.adapter_type):
            raise ValueError(
                f"the model reads {type(adapter).__name__} inputs; this dataset needs {self.adapter_type.__name__}"
            )

    def adapter(self, train: Batch) -> InputAdapterConfig:
        """The input adapter for the dataset's training tensors."""
        raise NotImplementedError

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        """The model's (x, mask) for a batch of the dataset's tensors."""
        raise NotImplementedError

    def features(self, batch: Batch) -> Tensor:
        """(B, F) raw features for the logistic-regression baseline."""
        raise NotImplementedError

    def fit(self, adapter: InputAdapterConfig, train: Batch) -> InputAdapterConfig:
        """A loaded or published model's input adapter made to take this dataset (a new image size), or a
        ValueError saying why it cannot."""
        self.check(adapter)
        return adapter

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        """One file as a batch of one example for a model with ``adapter``, read as the run's test files were
        (``data``: its recipe's ``data:`` section, the options of its dataset's loader)."""
        raise ValueError(f"predict reads no files for {type(self).__name__} inputs")


def _fourier(bands: int) -> FourierPositionConfig:
    return FourierPositionConfig(num_bands=bands)


def _flat(x: Tensor, mask: Tensor | None = None) -> Tensor:
    return (x if mask is None else x * mask.unsqueeze(-1)).flatten(1).float()


@dataclasses.dataclass(frozen=True)
class ImageInput(Input):
    """Images (B, H, W, C) in [0, 1], read as ``patch_size``² patches (1: pixels) with 2-D Fourier features of
    ``fourier_bands`` bands. ``channels`` converts the dataset's images (1 -> 3 repeats gray, 3 -> 1 averages)
    for a model that takes another number of channels."""

    adapter_type = ImageInputConfig

    patch_size: int = 1
    fourier_bands: int = 8
    channels: int | None = None

    def __post_init__(self) -> None:
        require_positive(patch_size=self.patch_size, fourier_bands=self.fourier_bands)
        require(self.channels in (None, 1, 3), "channels", self.channels, "1, 3 or none (the dataset's own)")

    def adapter(self, train: Batch) -> InputAdapterConfig:
        _, h, w, c = train[0].shape
        stem = PatchStemConfig(self.patch_size) if self.patch_size > 1 else None
        return ImageInputConfig((h, w), self.channels or c, stem, _fourier(self.fourier_bands))

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        return self._converted(batch[0]).permute(0, 3, 1, 2), None

    def _converted(self, images: Tensor) -> Tensor:
        """Images (B, H, W, C) with ``channels`` channels."""
        if self.channels is None or images.shape[-1] == self.channels:
            return images
        if images.shape[-1] == 1:
            return images.expand(*images.shape[:-1], 3)
        return images.mean(-1, keepdim=True)

    def features(self, batch: Batch) -> Tensor:
        return _flat(batch[0])

    def fit(self, adapter: InputAdapterConfig, train: Batch) -> InputAdapterConfig:
        adapter = super().fit(adapter, train)
        _, h, w, c = train[0].shape
        if adapter.in_channels != (self.channels or c):
            raise ValueError(
                f"the model takes {adapter.in_channels}-channel images, the dataset's have {c}: set "
                f"input.channels: {adapter.in_channels}"
            )
        return dataclasses.replace(adapter, image_shape=(h, w))

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        from omniperceiver.data.folders import read_image

        transform = {key: data[key] for key in ("size", "crop", "mean", "std") if data.get(key) is not None}
        (image,) = read_image(path, **transform)  # (H, W, 3) as the run's test images were read
        image = image.mean(-1, keepdim=True) if adapter.in_channels == 1 else image
        resized = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None], adapter.image_shape, mode="bilinear")
        return resized, None


@dataclasses.dataclass(frozen=True)
class PixelsInput(Input):
    """Images (B, H, W, C) in [0, 1] read pixel by pixel as a set (B, H·W, 2 + C): each pixel's position in
    the image (y, x in [-1, 1], given 2-D Fourier features of ``fourier_bands`` bands up to max(H, W) / 2, as
    :class:`ImageInput` gives pixels) and its value (through a learned Linear to ``project_channels``, so that it
    weighs as much as the position's features), attached before the pixels are put in the fixed order of
    ``permutation_seed`` (None: row by row), so that a Perceiver reads an image with its pixels permuted as it
    reads the image (the seed talk's permuted-pixels table). ``as_image``: models that are no Perceivers (a CNN,
    a ViT) are handed the image (B, C, H, W) with its pixels moved by the same permutation instead."""

    adapter_type = PointCloudInputConfig

    fourier_bands: int = 8
    project_channels: int = 16
    permutation_seed: int | None = None
    as_image: bool = False

    def __post_init__(self) -> None:
        require_positive(fourier_bands=self.fourier_bands, project_channels=self.project_channels)

    def adapter(self, train: Batch) -> InputAdapterConfig:
        _, h, w, c = train[0].shape
        return PointCloudInputConfig(
            dimensions=2,
            num_bands=self.fourier_bands,
            max_frequency=max(h, w) / 2,
            feature_channels=c,
            project_features=self.project_channels,
        )

    def order(self, pixels: int) -> Tensor:
        """The pixels' order (H·W,): the permutation of ``permutation_seed``, or row by row."""
        if self.permutation_seed is None:
            return torch.arange(pixels)
        return torch.randperm(pixels, generator=torch.Generator().manual_seed(self.permutation_seed))

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        images = batch[0]
        b, h, w, c = images.shape
        order = self.order(h * w).to(images.device)
        pixels = images.reshape(b, h * w, c)[:, order]
        if self.as_image:
            return pixels.reshape(b, h, w, c).permute(0, 3, 1, 2), None
        positions = grid_coordinates((h, w), device=images.device)[order].to(images.dtype)
        return torch.cat([positions.expand(b, -1, -1), pixels], dim=-1), None

    def features(self, batch: Batch) -> Tensor:
        return _flat(batch[0])

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        """An image file at its own size (a Perceiver reads any number of pixels; positions span [-1, 1]), gray
        for a model of one channel, as this input's pixel set."""
        from omniperceiver.data.folders import read_image

        (image,) = read_image(path)
        if adapter.feature_channels == 1:
            image = image.mean(-1, keepdim=True)
        return self.unpack((image[None],))


@dataclasses.dataclass(frozen=True)
class SequenceInput(Input):
    """Series (B, T, C) and their mask (B, T) (none: every step is real), projected to ``project_channels``,
    with 1-D Fourier features of ``fourier_bands`` bands."""

    adapter_type = ArrayInputConfig

    fourier_bands: int = 8
    project_channels: int = 32

    def __post_init__(self) -> None:
        require_positive(fourier_bands=self.fourier_bands, project_channels=self.project_channels)

    def adapter(self, train: Batch) -> InputAdapterConfig:
        _, t, c = train[0].shape
        return ArrayInputConfig((t,), c, _fourier(self.fourier_bands), project_channels=self.project_channels)

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        return batch[0], batch[1] if len(batch) > 1 else None

    def features(self, batch: Batch) -> Tensor:
        return _flat(*batch[:2])

    def fit(self, adapter: InputAdapterConfig, train: Batch) -> InputAdapterConfig:
        """The model's adapter at the dataset's length (Fourier features are computed for any length; learned
        positions are resized when the weights load)."""
        adapter, expected = super().fit(adapter, train), self.adapter(train)
        if adapter.in_channels != expected.in_channels:
            raise ValueError(
                f"the model reads series of {adapter.in_channels} channels, the dataset's have {expected.in_channels}"
            )
        return dataclasses.replace(adapter, index_shape=expected.index_shape)

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        """A .npy array (T, C): the series as the dataset holds it."""
        if path.suffix.lower() != ".npy":
            raise ValueError(f"expected a .npy array (T, C) of the series, got a {path.suffix or 'suffix-less'} file")
        return pad_steps(torch.from_numpy(np.load(path, allow_pickle=False)).float(), adapter)


SPEECH_RATE, SPEECH_HOP, SPEECH_MELS = 8000, 128, 40  # speech: 16 ms frames of 40 mel bands at 8 kHz


@dataclasses.dataclass(frozen=True)
class MfccInput(SequenceInput):
    """The spoken-digits MFCC frames (B, T, 13), standardized with the training split's statistics; ``predict``
    reads a .wav recording (any rate, resampled to 8 kHz) into the same features, or a .npy (T, 13) of them."""

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        if path.suffix.lower() != ".wav":
            return super().read(path, adapter, data)
        from omniperceiver.data.audio import mfcc_statistics
        from omniperceiver.data.folders import read_wav

        samples, rate = read_wav(path)
        frames = mfcc(resample(torch.from_numpy(samples), rate, SPEECH_RATE), SPEECH_RATE).T  # (T, 13)
        mean, std = mfcc_statistics()
        return pad_steps((frames - mean) / std, adapter)


def pad_steps(steps: Tensor, adapter: InputAdapterConfig) -> tuple[Tensor, Tensor]:
    """One series (T, C) zero-padded to the adapter's length: (1, T', C) and its mask (1, T')."""
    (length,) = adapter.index_shape
    if steps.dim() != 2 or steps.shape[1] != adapter.in_channels:
        raise ValueError(f"expected a series (T, C={adapter.in_channels}), got shape {tuple(steps.shape)}")
    if len(steps) > length:
        raise ValueError(f"{len(steps)} steps, more than the {length} the model takes")
    mask = torch.arange(length) < len(steps)
    return torch.nn.functional.pad(steps, (0, 0, 0, length - len(steps)))[None], mask[None]


SPEECH_REPRESENTATIONS = ("log-mel", "mfcc", "samples")


@dataclasses.dataclass(frozen=True)
class SpeechInput(SequenceInput):
    """Waveforms (B, S) at 8 kHz and their sample mask, read as ``representation``: "log-mel" frames (B, T, 40)
    scaled to about [-1, 1] (dB / 40, 16 ms apart), "mfcc" (B, T, 13): the first 13 coefficients of the
    orthonormal DCT of those frames, or "samples": the waveform itself scaled to unit RMS over its real samples,
    each ``samples_per_patch`` consecutive samples one element (B, S / p, p) (over a thousand elements per clip).
    A frame is real when the sample at its centre is, a patch when its first sample is."""

    fourier_bands: int = 16
    representation: str = "log-mel"
    samples_per_patch: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.representation in SPEECH_REPRESENTATIONS,
            "representation",
            self.representation,
            f"one of {', '.join(SPEECH_REPRESENTATIONS)}",
        )
        require_positive(samples_per_patch=self.samples_per_patch)
        require(
            self.representation == "samples" or self.samples_per_patch == 1,
            "samples_per_patch",
            self.samples_per_patch,
            f"1 (patches are of raw samples; representation is {self.representation!r})",
        )

    def _frames(self, waveforms: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """(B, S) waveforms and their mask -> (B, T, C) elements and their mask (B, T)."""
        if self.representation == "samples":
            p = self.samples_per_patch
            loudness = (waveforms.square().sum(1) / mask.sum(1).clamp(min=1)).sqrt().clamp(min=1e-4)
            waveforms = waveforms / loudness[:, None]
            padding = -waveforms.shape[1] % p
            waveforms, mask = (torch.nn.functional.pad(t, (0, padding)) for t in (waveforms, mask))
            return waveforms.reshape(len(waveforms), -1, p), mask[:, ::p]
        spectrum = dict(n_fft=256, hop_length=SPEECH_HOP, n_mels=SPEECH_MELS)
        if self.representation == "mfcc":
            frames = mfcc(
                waveforms, SPEECH_RATE, **spectrum, mel_scale="slaney", mel_norm="slaney", pad_mode="constant"
            )
        else:
            frames = log_mel_spectrogram(waveforms, SPEECH_RATE, **spectrum)
        frames = frames.transpose(1, 2) / 40
        return frames, mask[:, ::SPEECH_HOP][:, : frames.shape[1]]

    def adapter(self, train: Batch) -> InputAdapterConfig:
        frames, _ = self._frames(*train[:2])
        return ArrayInputConfig(
            (frames.shape[1],), frames.shape[2], _fourier(self.fourier_bands), project_channels=self.project_channels
        )

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        return self._frames(*batch[:2])

    def features(self, batch: Batch) -> Tensor:
        raise ValueError("speech has no raw-feature baseline")

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        from omniperceiver.data.folders import read_wav

        samples, rate = read_wav(path)
        waveform = resample(torch.from_numpy(samples), rate, SPEECH_RATE)
        frames, mask = self._frames(waveform[None], torch.ones(1, len(waveform), dtype=torch.bool))
        return pad_steps(frames[0][mask[0]], adapter)


@dataclasses.dataclass(frozen=True)
class PointsInput(Input):
    """Point clouds (B, M, 3), any number of points, with Fourier features of ``fourier_bands`` bands of the
    coordinates and the radius, axes aligned to each cloud's principal axes."""

    adapter_type = PointCloudInputConfig

    fourier_bands: int = 8

    def __post_init__(self) -> None:
        require_positive(fourier_bands=self.fourier_bands)

    def adapter(self, train: Batch) -> InputAdapterConfig:
        b = self.fourier_bands
        return PointCloudInputConfig(num_bands=b, max_frequency=b, radial_features=True, align_axes=True)

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        return batch[0], None

    def features(self, batch: Batch) -> Tensor:
        """Each axis' coordinates sorted (B, 3·M): raw values, free of point order."""
        return batch[0].sort(dim=1).values.transpose(1, 2).flatten(1)

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        """A .npy (P, 3), ASCII .ply or .off cloud, centred as the folder datasets centre theirs."""
        from omniperceiver.data.folders import read_points

        points = torch.from_numpy(read_points(path))
        return (points - points.mean(0))[None], None


@dataclasses.dataclass(frozen=True)
class TextInput(Input):
    """Byte ids (B, L) and their mask; each element also carries its ``ngram`` - 1 preceding bytes."""

    adapter_type = TextInputConfig

    ngram: int = 1
    channels: int = 64

    def __post_init__(self) -> None:
        require_positive(ngram=self.ngram, channels=self.channels)

    def adapter(self, train: Batch) -> InputAdapterConfig:
        length = train[0].shape[1]
        return TextInputConfig(channels=self.channels, max_length=length, ngram=self.ngram)

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        return batch[0], batch[1]

    def features(self, batch: Batch) -> Tensor:
        """Relative frequency of each byte id over the real positions (B, V)."""
        ids, mask = batch[:2]
        counts = torch.zeros(ids.shape[0], ByteTokenizer.vocab_size)
        counts.scatter_add_(1, ids, mask.float())
        return counts / counts.sum(dim=1, keepdim=True)

    def fit(self, adapter: InputAdapterConfig, train: Batch) -> InputAdapterConfig:
        adapter = super().fit(adapter, train)
        length = train[0].shape[1]
        if length > adapter.max_length:
            raise ValueError(f"the dataset's texts take {length} bytes, the model at most {adapter.max_length}")
        return adapter

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        """A UTF-8 text file, at most as long as the model's texts."""
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"not UTF-8 text ({error})") from error
        return ByteTokenizer().batch([text], max_length=adapter.max_length)


@dataclasses.dataclass(frozen=True)
class FlowInput(Input):
    """Frame pairs (B, 2, 3, H, W) in [-1, 1] read as each pixel's contrast-normalized ``neighbourhood``²
    patches (odd) of both frames, no position features: the queries are the inputs, and flow is a local,
    translation-invariant estimate (position features cost 40% more time and lost: 0.539 px after 6 epochs vs
    0.498 after 8 without, at the same time)."""

    adapter_type = FlowInputConfig

    neighbourhood: int = 7
    channels: int = 64
    levels: int = 1

    def __post_init__(self) -> None:
        require_positive(neighbourhood=self.neighbourhood, channels=self.channels, levels=self.levels)

    def adapter(self, train: Batch) -> InputAdapterConfig:
        h, w = train[0].shape[-2:]
        return FlowInputConfig(
            (h, w),
            patch_size=self.neighbourhood,
            channels=self.channels,
            normalize=True,
            levels=self.levels,
        )

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        return batch[0], None


@dataclasses.dataclass(frozen=True)
class AudiovisualInput(Input):
    """An image (B, H, W, C) and a series (B, T, C') with its mask: one input of both modalities."""

    adapter_type = MultimodalInputConfig

    patch_size: int = 1
    fourier_bands: int = 8

    def __post_init__(self) -> None:
        require_positive(patch_size=self.patch_size, fourier_bands=self.fourier_bands)

    def _parts(self) -> tuple[ImageInput, SequenceInput]:
        return ImageInput(self.patch_size, self.fourier_bands), SequenceInput(self.fourier_bands)

    def adapter(self, train: Batch) -> InputAdapterConfig:
        image, audio = self._parts()
        return MultimodalInputConfig(
            (
                ModalityInputConfig("image", image.adapter(train[:1])),
                ModalityInputConfig("audio", audio.adapter(train[1:3])),
            )
        )

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        images, audio, mask = batch[:3]
        return {"image": images.permute(0, 3, 1, 2), "audio": audio}, {"audio": mask}

    def features(self, batch: Batch) -> Tensor:
        return torch.cat([_flat(batch[0]), _flat(batch[1], batch[2])], dim=1)

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        """A .npz with ``image`` (H, W, C) in [0, 1] and ``audio`` (T, C') as the dataset holds them."""
        if path.suffix.lower() != ".npz":
            raise ValueError(f"expected a .npz with arrays 'image' (H, W, C) and 'audio' (T, C), got {path.name}")
        try:
            with np.load(path, allow_pickle=False) as arrays:
                image, audio = (torch.from_numpy(arrays[key]).float() for key in ("image", "audio"))
        except (KeyError, ValueError) as error:
            raise ValueError(f"expected a .npz with arrays 'image' (H, W, C) and 'audio' (T, C) ({error})") from error
        audio, mask = pad_steps(audio, adapter.modalities[1].adapter)
        return {"image": image.permute(2, 0, 1)[None], "audio": audio}, {"audio": mask}


@dataclasses.dataclass(frozen=True)
class AudiovisualLabelInput(AudiovisualInput):
    """An image (B, H, W, C), a series (B, T, C') with its mask and a label (B,) of ``num_classes`` classes, read
    as one input of three modalities, the label one-hot (all zeros: hidden). Training hides each example's
    label with probability ``hide_label``; validation, test and ``predict`` hide every label (the model infers
    it: classification as autoencoding)."""

    num_classes: int = 10
    hide_label: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(num_classes=self.num_classes)
        require(0 <= self.hide_label <= 1, "hide_label", self.hide_label, "a probability in [0, 1]")

    def adapter(self, train: Batch) -> InputAdapterConfig:
        image_audio = super().adapter(train)
        label = ModalityInputConfig("label", LabelInputConfig(self.num_classes))
        return dataclasses.replace(image_audio, modalities=(*image_audio.modalities, label))

    def unpack(self, batch: Batch) -> tuple[Inputs, Masks]:
        x, mask = super().unpack(batch)
        labels = batch[3]
        if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < self.num_classes:
            raise ValueError(f"expected labels in [0, {self.num_classes}), got {labels.min()}..{labels.max()}")
        return {**x, "label": torch.nn.functional.one_hot(labels, self.num_classes).float()}, mask

    def read(self, path: Path, adapter: InputAdapterConfig, data: dict[str, Any]) -> tuple[Inputs, Masks]:
        """A .npz as :class:`AudiovisualInput` reads it; the label hidden."""
        x, mask = super().read(path, adapter, data)
        return {**x, "label": torch.zeros(1, self.num_classes)}, mask
