"""What each dataset trains: one Perceiver IO family where only the input adapter and the output change.

A :class:`Task` names its dataset loader, the input adapter it needs, how a batch of the dataset's tensors
becomes the model's ``(x, mask)`` and target, and the raw features a linear baseline sees.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import torch
from torch import Tensor

from omniperceiver import data
from omniperceiver.adapters.array import ArrayInputConfig
from omniperceiver.adapters.flow import FlowInputConfig
from omniperceiver.adapters.image import ImageInputConfig, PatchStemConfig
from omniperceiver.adapters.multimodal import ModalityInputConfig, MultimodalInputConfig
from omniperceiver.adapters.points import PointCloudInputConfig
from omniperceiver.adapters.text import ByteTokenizer, TextInputConfig
from omniperceiver.core.adapter import InputAdapterConfig
from omniperceiver.core.ar import ARConfig
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.position import FourierPositionConfig
from omniperceiver.core.queries import InputQueryConfig
from omniperceiver.data.splits import Splits
from omniperceiver.media.audio import log_mel_spectrogram
from omniperceiver.models.perceiver_ar import PerceiverARConfig
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.flow import FlowOutputConfig
from omniperceiver.train.recipe import ModelSize, TrainingSettings

Inputs = Tensor | dict[str, Tensor]
Masks = Tensor | dict[str, Tensor] | None


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset and how to model it. ``unpack`` turns a batch of the dataset's tensors into (x, mask, target);
    ``features`` turns the same tensors into (B, F) raw features for the logistic-regression baseline.
    ``kind`` is "classification" (labels), "flow" (a per-pixel (u, v) field, scored by end-point error) or
    "language-model" (a Perceiver AR predicting each next byte of left-padded sequences: no ``input`` adapter).
    ``augment`` randomly alters a training batch of the dataset's tensors. A task that ``reads_folder`` loads
    a user's folder (one subfolder per class; csv-series: a CSV file with a ``label`` column) named by the
    recipe's ``data_path``."""

    name: str
    modality: str
    load: Callable[..., Splits]
    input: Callable[[Splits, ModelSize], InputAdapterConfig] | None
    unpack: Callable[[tuple[Tensor, ...]], tuple[Inputs, Masks, Tensor]]
    features: Callable[[tuple[Tensor, ...]], Tensor] | None = None
    kind: str = "classification"
    augment: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None
    reads_folder: bool = False

    def splits(self, data_path: str | None) -> Splits:
        """The task's data: its dataset, or for a folder task the user's folder at ``data_path``."""
        if self.reads_folder != (data_path is not None):
            needs = "a folder: set data_path" if self.reads_folder else "no data_path (its data ships with it)"
            raise ValueError(f"dataset={self.name!r} takes {needs}; got data_path={data_path!r}")
        return self.load(data_path) if self.reads_folder else self.load()

    def model_config(
        self, splits: Splits, size: ModelSize, settings: TrainingSettings
    ) -> PerceiverIOConfig | PerceiverARConfig:
        """The Perceiver IO (or, for language modelling, the Perceiver AR) of this task at ``size``."""
        if self.kind == "language-model":
            ar = ARConfig(
                channels=size.latent_channels,
                num_latents=size.num_latents,
                num_heads=size.num_self_attention_heads,
                num_cross_attention_heads=size.num_cross_attention_heads,
                num_self_attention_layers=size.num_self_attends_per_block,
                cross_attention_widening_factor=size.widening_factor,
                self_attention_widening_factor=size.widening_factor,
                dropout=size.dropout,
            )
            length = self.inputs_per_example(splits, size)  # inputs stop one byte before the last target
            return PerceiverARConfig(ByteTokenizer.vocab_size, length, ar, pad_id=ByteTokenizer.PAD)
        adapter = self.input(splits, size)
        encoder = EncoderConfig(
            input_channels=adapter.num_channels,
            num_latents=size.num_latents,
            latent_channels=size.latent_channels,
            num_cross_attention_heads=size.num_cross_attention_heads,
            cross_attention_widening_factor=size.widening_factor,
            num_blocks=size.num_blocks,
            num_self_attends_per_block=size.num_self_attends_per_block,
            num_self_attention_heads=size.num_self_attention_heads,
            self_attention_widening_factor=size.widening_factor,
            dropout=size.dropout,
            activation_checkpointing=settings.activation_checkpointing,
        )
        if self.kind == "classification":
            fields = {f.name: getattr(encoder, f.name) for f in dataclasses.fields(encoder)}
            del fields["input_channels"]
            return PerceiverIOConfig.classifier(adapter, len(splits.classes), labels=splits.classes, **fields)
        image_shape = tuple(splits.train.tensors[-1].shape[1:3])
        decoder = DecoderConfig(
            queries=InputQueryConfig(num_channels=adapter.num_channels),
            latent_channels=size.latent_channels,
            output_channels=2,
            num_heads=size.num_cross_attention_heads,
            widening_factor=FLOW_DECODER_WIDENING,  # the per-pixel MLP that turns patches into flow
            use_query_residual=True,  # each pixel's own frame patches reach its flow directly
        )
        return PerceiverIOConfig(adapter, encoder, decoder, FlowOutputConfig(image_shape, scale=1.0))

    def inputs_per_example(self, splits: Splits, size: ModelSize) -> int:
        """M, the number of input elements the encoder cross-attends to per example (a language model: its
        context)."""
        if self.input is None:
            return splits.train.tensors[0].shape[1] - 1
        config = self.input(splits, size)
        x, mask, _ = self.unpack(tuple(t[:1] for t in splits.train.tensors))
        inputs, _ = config.build()(x, mask)
        return inputs.shape[1]


def _fourier(size: ModelSize) -> FourierPositionConfig:
    return FourierPositionConfig(num_bands=size.fourier_bands)


def _image_input(splits: Splits, size: ModelSize, index: int = 0) -> InputAdapterConfig:
    _, h, w, c = splits.train.tensors[index].shape
    stem = PatchStemConfig(size.patch_size) if size.patch_size > 1 else None
    return ImageInputConfig((h, w), c, stem, _fourier(size))


MAX_SHIFT = 2  # pixels


def _shift_images(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Shift each image (B, H, W, C) of the batch by up to MAX_SHIFT pixels in each direction, filling with
    zeros (the background of the digit datasets)."""
    images, *rest = batch
    b, h, w, _ = images.shape
    s = MAX_SHIFT
    padded = torch.nn.functional.pad(images, (0, 0, s, s, s, s))
    dy, dx = torch.randint(0, 2 * s + 1, (2, b)).tolist()
    shifted = torch.stack([p[y : y + h, x : x + w] for p, y, x in zip(padded, dy, dx, strict=True)])
    return (shifted, *rest)


def _rotate_points(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Rotate each point cloud (B, M, 3) of the batch by a uniformly random rotation (the datasets' clouds
    come in random poses, so this leaves their distribution unchanged)."""
    points, *rest = batch
    q, r = torch.linalg.qr(torch.randn(points.shape[0], 3, 3))
    q = q * torch.sign(torch.diagonal(r, dim1=1, dim2=2)).unsqueeze(1)  # uniform over O(3) (Haar)
    q = q * torch.linalg.det(q).sign()[:, None, None]  # proper rotations only
    return (points @ q, *rest)


def _channels_first(images: Tensor) -> Tensor:
    return images.permute(0, 3, 1, 2)


def _sequence_input(splits: Splits, size: ModelSize, index: int = 0) -> InputAdapterConfig:
    _, t, c = splits.train.tensors[index].shape
    return ArrayInputConfig((t,), c, _fourier(size), project_channels=32)


def _point_input(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    return PointCloudInputConfig(
        num_bands=size.fourier_bands, max_frequency=size.fourier_bands, radial_features=True, align_axes=True
    )


def _text_input(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    return TextInputConfig(channels=size.latent_channels, max_length=splits.train.tensors[0].shape[1], ngram=size.ngram)


SPEECH_RATE, SPEECH_HOP, SPEECH_MELS = 8000, 128, 40  # synthesized speech: 16 ms frames of 40 mel bands


def _log_mel_frames(waveforms: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Waveforms (B, S) and their sample mask -> log-mel frames (B, T, 40) scaled to about [-1, 1] (dB / 40)
    and the frame mask (B, T): a frame is real when the sample at its centre is."""
    frames = log_mel_spectrogram(waveforms, SPEECH_RATE, n_fft=256, hop_length=SPEECH_HOP, n_mels=SPEECH_MELS)
    frames = frames.transpose(1, 2) / 40
    return frames, mask[:, ::SPEECH_HOP][:, : frames.shape[1]]


def _speech_input(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    frames, _ = _log_mel_frames(*splits.train.tensors[:2])
    return ArrayInputConfig((frames.shape[1],), SPEECH_MELS, _fourier(size), project_channels=32)


def _audiovisual_input(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    image = ModalityInputConfig("image", _image_input(splits, size, 0))
    audio = ModalityInputConfig("audio", _sequence_input(splits, size, 1))
    return MultimodalInputConfig((image, audio))


FLOW_DECODER_WIDENING = 4


def _flow_input(splits: Splits, size: ModelSize) -> InputAdapterConfig:
    """Contrast-normalized ``patch_size`` (odd) neighbourhoods of both frames, no position features: the queries
    are the inputs, and flow is a local, translation-invariant estimate (position features cost 40% more
    time and lost: 0.539 px after 6 epochs vs 0.498 after 8 without, at the same time)."""
    h, w = splits.train.tensors[0].shape[-2:]
    return FlowInputConfig((h, w), patch_size=size.patch_size, channels=size.latent_channels, normalize=True)


def _flat(x: Tensor, mask: Tensor | None = None) -> Tensor:
    return (x if mask is None else x * mask.unsqueeze(-1)).flatten(1).float()


def _byte_histogram(ids: Tensor, mask: Tensor) -> Tensor:
    """Relative frequency of each token id over the real positions (B, V)."""
    counts = torch.zeros(ids.shape[0], TextInputConfig(channels=1, max_length=1).vocab_size)
    counts.scatter_add_(1, ids, mask.float())
    return counts / counts.sum(dim=1, keepdim=True)


def left_aligned(ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Right-padded ids (B, L) and their mask -> the same sequences left-padded (their last byte at L - 1)."""
    length = ids.shape[1]
    order = (torch.arange(length) + mask.sum(dim=1, keepdim=True)) % length
    return ids.gather(1, order), mask.gather(1, order)


def _sorted_coordinates(points: Tensor) -> Tensor:
    """Point clouds (B, M, 3) -> each axis' coordinates sorted (B, 3·M): raw values, free of point order."""
    return points.sort(dim=1).values.transpose(1, 2).flatten(1)


DIGITS = Task(
    "digits",
    "image",
    data.digits,
    _image_input,
    lambda b: (_channels_first(b[0]), None, b[1]),
    lambda b: _flat(b[0]),
)
SYNTHESIZED_DIGITS = Task(
    "synthesized-digits",
    "audio (log-mel of waveforms)",
    data.synthesized_digits,
    _speech_input,
    lambda b: (*_log_mel_frames(b[0], b[1]), b[2]),
)
FORTUNES = Task(
    "fortunes",
    "text",
    data.fortunes,
    _text_input,
    lambda b: (b[0], b[1], b[2]),
    lambda b: _byte_histogram(b[0], b[1]),
)
FORTUNES_LM = Task(
    "fortunes-lm",
    "text (bytes)",
    data.fortunes,
    None,
    lambda b: (*left_aligned(b[0], b[1]), b[0]),
    kind="language-model",
)
SHAPES = Task(
    "shapes",
    "point cloud",
    data.shapes,
    _point_input,
    lambda b: (b[0], None, b[1]),
    lambda b: _sorted_coordinates(b[0]),
    augment=_rotate_points,
)


def _on_folder(task: Task, name: str, load: Callable[[str], Splits]) -> Task:
    """``task`` on a user's folder, read by ``load``."""
    return dataclasses.replace(task, name=name, load=load, reads_folder=True)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        DIGITS,
        dataclasses.replace(DIGITS, name="mnist", load=data.mnist, augment=_shift_images),
        Task(
            "spoken-digits",
            "audio (MFCC)",
            data.spoken_digits,
            _sequence_input,
            lambda b: (b[0], b[1], b[2]),
            lambda b: _flat(b[0], b[1]),
        ),
        SYNTHESIZED_DIGITS,
        FORTUNES,
        FORTUNES_LM,
        SHAPES,
        Task(
            "audiovisual-digits",
            "image + audio",
            data.audiovisual_digits,
            _audiovisual_input,
            lambda b: ({"image": _channels_first(b[0]), "audio": b[1]}, {"audio": b[2]}, b[3]),
            lambda b: torch.cat([_flat(b[0]), _flat(b[1], b[2])], dim=1),
        ),
        Task(
            "audiovisual-image",
            "image (of image + audio)",
            data.audiovisual_digits,
            _image_input,
            lambda b: (_channels_first(b[0]), None, b[3]),
            lambda b: _flat(b[0]),
        ),
        Task(
            "audiovisual-audio",
            "audio (of image + audio)",
            data.audiovisual_digits,
            lambda splits, size: _sequence_input(splits, size, 1),
            lambda b: (b[1], b[2], b[3]),
            lambda b: _flat(b[1], b[2]),
        ),
        _on_folder(DIGITS, "image-folder", data.image_folder),
        _on_folder(SYNTHESIZED_DIGITS, "audio-folder", lambda path: data.wav_folder(path, sample_rate=SPEECH_RATE)),
        _on_folder(FORTUNES, "text-folder", data.text_folder),
        _on_folder(SHAPES, "point-cloud-folder", data.point_cloud_folder),
        _on_folder(FORTUNES_LM, "text-corpus-lm", data.text_corpus),
        Task(
            "csv-series",
            "series (CSV rows)",
            functools.partial(data.csv_series, label_column="label"),
            _sequence_input,
            lambda b: (b[0], None, b[1]),
            lambda b: _flat(b[0]),
            reads_folder=True,
        ),
        Task("flow-pairs", "optical flow", data.flow_pairs, _flow_input, lambda b: (b[0], None, b[1]), kind="flow"),
    )
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"dataset={name!r}: expected one of {sorted(TASKS)}")
    return TASKS[name]
