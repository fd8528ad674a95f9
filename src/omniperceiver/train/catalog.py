"""Every dataset the engine trains, as a task of its kind: ``get_task(name)``; ``register(task)`` adds one (a new
kind is a :class:`~omniperceiver.train.tasks.base.Task` subclass anywhere, registered with its dataset)."""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import Tensor

from omniperceiver import data
from omniperceiver.train.inputs import (
    SPEECH_RATE,
    AudiovisualInput,
    AudiovisualLabelInput,
    FlowInput,
    ImageInput,
    MfccInput,
    PixelsInput,
    PointsInput,
    SequenceInput,
    SpeechInput,
    TextInput,
)
from omniperceiver.train.tasks.autoencoding import AutoencodingTask
from omniperceiver.train.tasks.base import Task
from omniperceiver.train.tasks.classification import ClassificationTask
from omniperceiver.train.tasks.flow import FlowTask
from omniperceiver.train.tasks.language import LanguageModelTask, Tokenization
from omniperceiver.train.tasks.masked_language import MaskedLanguageModelTask, MaskedTokenization
from omniperceiver.train.tasks.segmentation import SegmentationTask
from omniperceiver.train.tasks.token_classification import TokenClassificationTask

MAX_SHIFT = 2  # pixels


def shift_images(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Shift each image (B, H, W, C) of the batch by up to MAX_SHIFT pixels in each direction, filling with
    zeros (the background of the digit datasets)."""
    images, *rest = batch
    b, h, w, _ = images.shape
    s = MAX_SHIFT
    padded = torch.nn.functional.pad(images, (0, 0, s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, b)).tolist()
    shifted = torch.stack([p[y : y + h, x : x + w] for p, y, x in zip(padded, dy, dx, strict=True)])
    return (shifted, *rest)


def rotate_points(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Rotate each point cloud (B, M, 3) of the batch by a uniformly random rotation (the datasets' clouds
    come in random poses, so this leaves their distribution unchanged)."""
    points, *rest = batch
    q, r = torch.linalg.qr(torch.randn(points.shape[0], 3, 3))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)  # uniform over O(3) (Haar)
    q = q * torch.linalg.det(q).sign()[:, None, None]  # proper rotations only
    return (points @ q, *rest)


def _on_folder(task: Task, name: str, load) -> Task:
    """``task`` on a user's folder, read by ``load``."""
    return dataclasses.replace(task, name=name, load=load, reads_folder=True)


DIGITS = ClassificationTask("digits", "image", data.digits, ImageInput(fourier_bands=4))
SYNTHESIZED_DIGITS = ClassificationTask(
    "synthesized-digits", "audio (log-mel of waveforms)", data.synthesized_digits, SpeechInput()
)
FORTUNES = ClassificationTask("fortunes", "text", data.fortunes, TextInput())
FORTUNES_LM = LanguageModelTask("fortunes-lm", "text", data.fortunes_corpus, Tokenization())
MLM_WINDOW = 160  # tokens: a fortunes snippet (138 ids at most) fits the model fine-tuned from it
FORTUNES_MLM = MaskedLanguageModelTask(
    "fortunes-mlm", "text, masked", functools.partial(data.fortunes_corpus, length=MLM_WINDOW), MaskedTokenization()
)
SHAPES = ClassificationTask("shapes", "point cloud", data.shapes, PointsInput(), augment=rotate_points)

TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add ``task`` under its name (replacing a task of that name); returns it."""
    TASKS[task.name] = task
    return task


for _task in (
    DIGITS,
    dataclasses.replace(DIGITS, name="mnist", load=data.mnist, input=ImageInput(), augment=shift_images),
    ClassificationTask("mnist-pixels", "image, pixel by pixel", data.mnist, PixelsInput(), augment=shift_images),
    ClassificationTask("digits-pixels", "image, pixel by pixel", data.digits, PixelsInput()),
    ClassificationTask("spoken-digits", "audio (MFCC)", data.spoken_digits, MfccInput()),
    SYNTHESIZED_DIGITS,
    dataclasses.replace(
        SYNTHESIZED_DIGITS, name="noisy-synthesized-digits", load=functools.partial(data.synthesized_digits, snr_db=0)
    ),
    FORTUNES,
    FORTUNES_LM,
    FORTUNES_MLM,
    TokenClassificationTask("fortunes-mixed", "text, labelled per byte", data.fortunes_mixed, TextInput()),
    SHAPES,
    ClassificationTask("audiovisual-digits", "image + audio", data.audiovisual_digits, AudiovisualInput()),
    ClassificationTask(
        "audiovisual-image", "image (of image + audio)", data.audiovisual_digits, ImageInput(), tensors=(0,)
    ),
    ClassificationTask(
        "audiovisual-audio", "audio (of image + audio)", data.audiovisual_digits, SequenceInput(), tensors=(1, 2)
    ),
    AutoencodingTask(
        "audiovisual-autoencoding",
        "image + audio + label, reconstructed",
        functools.partial(data.audiovisual_digits, corrupt_probability=0.0),
        AudiovisualLabelInput(),
    ),
    SegmentationTask("pasted-shapes", "image, labelled per pixel", data.pasted_shapes, ImageInput()),
    _on_folder(DIGITS, "image-folder", data.image_folder),
    _on_folder(DIGITS, "hf-image-folder", data.hf_image_folder),
    _on_folder(SYNTHESIZED_DIGITS, "audio-folder", functools.partial(data.wav_folder, sample_rate=SPEECH_RATE)),
    _on_folder(SYNTHESIZED_DIGITS, "hf-audio-folder", functools.partial(data.hf_audio_folder, sample_rate=SPEECH_RATE)),
    _on_folder(FORTUNES, "text-folder", data.text_folder),
    _on_folder(FORTUNES, "hf-text-table", data.hf_text_table),
    _on_folder(SHAPES, "point-cloud-folder", data.point_cloud_folder),
    _on_folder(FORTUNES_LM, "text-corpus-lm", data.text_corpus),
    _on_folder(FORTUNES_LM, "hf-text-corpus-lm", data.hf_text_corpus),
    _on_folder(FORTUNES_MLM, "text-corpus-mlm", data.text_corpus),
    _on_folder(FORTUNES_MLM, "hf-text-corpus-mlm", data.hf_text_corpus),
    ClassificationTask("csv-series", "series (CSV)", data.csv_series, SequenceInput(), reads_folder=True),
    ClassificationTask("series", "series (.ts, .npz, .npy, CSV)", data.series, SequenceInput(), reads_folder=True),
    ClassificationTask("hf-table", "series (table rows, datasets)", data.hf_table, SequenceInput(), reads_folder=True),
    ClassificationTask("japanese-vowels", "series (12 channels, 7-29 steps)", data.japanese_vowels, SequenceInput()),
    FlowTask("flow-pairs", "optical flow", data.flow_pairs, FlowInput()),
    FlowTask("moving-shapes", "optical flow", data.moving_shapes, FlowInput()),
):
    register(_task)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"dataset={name!r}: expected one of {sorted(TASKS)}")
    return TASKS[name]
