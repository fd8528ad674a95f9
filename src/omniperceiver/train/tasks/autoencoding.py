"""Multimodal autoencoding (the Perceiver IO paper's Kinetics autoencoder in miniature): an image, an audio
series and a label read as one input, all three reconstructed through the latent bottleneck by queries of
their own modality: one per image patch (its pixels), one per audio frame, one for the label. Its metric is the
label's accuracy with the label hidden (classification as autoencoding), higher is better."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from omniperceiver.adapters.image import space_to_depth
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.position import FourierPositionConfig
from omniperceiver.core.queries import LearnedQueryConfig, PositionQueryConfig
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.data.splits import Splits
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.multimodal import (
    ModalityOutputConfig,
    ModalityQueryConfig,
    MultimodalOutputConfig,
    MultimodalQueryConfig,
)
from omniperceiver.train import pictures
from omniperceiver.train.sections import TrainingSettings, Trunk
from omniperceiver.train.tasks.classification import ClassificationTask, Classifier

Example = tuple[Tensor, Tensor, Tensor, Tensor]  # image (B, H, W, C), audio (B, T, C'), its mask (B, T), label (B,)


class LabelAccuracy(MulticlassAccuracy):
    """The accuracy of the label output of a model's outputs {modality: ...} against an example's label."""

    def update(self, outputs: dict[str, Tensor], target: Example) -> None:
        super().update(outputs["label"], target[-1])


def image_patches(images: Tensor, patch: int) -> Tensor:
    """Images (B, H, W, C) -> their ``patch``² patches (B, H·W / patch², patch²·C), rows in raster order."""
    return space_to_depth(images.permute(0, 3, 1, 2), (patch, patch)).flatten(1, 2)


def patched_images(patches: Tensor, shape: tuple[int, int, int], patch: int) -> Tensor:
    """The inverse of :func:`image_patches` for images of ``shape`` (H, W, C)."""
    h, w, c = shape
    grid = patches.reshape(len(patches), h // patch, w // patch, patch, patch, c)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(len(patches), h, w, c)


def reconstruction_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean squared error over the target's variance: 1 for predicting its mean, whatever its scale."""
    return F.mse_loss(prediction, target) / target.var().clamp(min=1e-8)


class Autoencoder(Classifier):
    """The sum of the image's and the audio's reconstruction errors (:func:`reconstruction_error`, the audio
    over its real frames) and the label's cross-entropy; training hides each label with the input's
    ``hide_label`` probability, evaluation hides all."""

    @property
    def num_classes(self) -> int:
        return self.task.input.num_classes

    def new_metric(self) -> MulticlassAccuracy:
        return LabelAccuracy(self.num_classes, average="micro")

    def predict(self, batch: tuple[Tensor, ...]) -> tuple[dict[str, Tensor], Example]:
        x, mask, target = self.task.unpack(batch)
        label = x["label"]
        if self.training:
            shown = torch.rand(len(label), device=label.device) >= self.task.input.hide_label
            x = {**x, "label": label * shown[:, None]}
        else:
            x = {**x, "label": torch.zeros_like(label)}
        return {name: value.float() for name, value in self.model(x, mask).items()}, target

    def loss(self, outputs: dict[str, Tensor], target: Example) -> Tensor:
        image, audio, audio_mask, label = target
        image_error = reconstruction_error(outputs["image"], image_patches(image, self.task.input.patch_size))
        audio_error = reconstruction_error(outputs["audio"][audio_mask], audio[audio_mask])
        return image_error + audio_error + F.cross_entropy(outputs["label"], label)

    def observe_test(self, outputs: dict[str, Tensor], target: Example) -> None:
        self.confusion.update(outputs["label"], target[-1])


@dataclasses.dataclass(frozen=True)
class AutoencodingTask(ClassificationTask):
    """Image + audio + label in, all three out (:class:`Autoencoder`); the input is an
    :class:`~omniperceiver.train.inputs.AudiovisualLabelInput`. Baseline: logistic regression on the image and
    audio features, for the label."""

    module = Autoencoder
    tensors: tuple[int, ...] | None = (0, 1, 2, 3)

    def unpack(self, batch: tuple[Tensor, ...]) -> tuple[dict[str, Tensor], dict[str, Tensor], Example]:
        """(x, mask, target): the target is the example itself."""
        return (*self.input.unpack(self.inputs(batch)), tuple(batch))

    def model_config(self, splits: Splits, trunk: Trunk, settings: TrainingSettings) -> PerceiverIOConfig:
        """The trunk's encoder and a decoder of per-modality queries: 2-D Fourier features of each image patch's
        position (the input's patches), 1-D of each audio frame's, one learned label query, decoded with the
        encoder's cross-attention heads and widening; a Linear head per modality."""
        image, audio, _, _ = rows_of(splits.train, 1)
        _, h, w, c = image.shape
        p = self.input.patch_size
        _, t, c_audio = audio.shape
        position = FourierPositionConfig(num_bands=self.input.fourier_bands)
        d = trunk.latent_channels
        queries = MultimodalQueryConfig(
            (
                ModalityQueryConfig("image", PositionQueryConfig((h // p, w // p), position)),
                ModalityQueryConfig("audio", PositionQueryConfig((t,), position)),
                ModalityQueryConfig("label", LearnedQueryConfig(num_queries=1, num_channels=d)),
            )
        )
        output = MultimodalOutputConfig(
            d,
            (
                ModalityOutputConfig("image", (h // p) * (w // p), p * p * c),
                ModalityOutputConfig("audio", t, c_audio),
                ModalityOutputConfig("label", 1, self.input.num_classes, flatten=True),
            ),
        )
        return PerceiverIOConfig(
            input=self.input.adapter(self.inputs(rows_of(splits.train, 1))),
            encoder=self.encoder(splits, trunk, settings),
            decoder=DecoderConfig(
                queries,
                d,
                output_channels=d,
                num_heads=trunk.num_cross_attention_heads,
                widening_factor=trunk.widening_factor,
            ),
            output=output,
        )

    def fit(self, config: PerceiverIOConfig, splits: Splits) -> tuple[PerceiverIOConfig, tuple[str, ...]]:
        """A saved autoencoder of this data's shapes, as it is."""
        expected = self.input.adapter(self.inputs(rows_of(splits.train, 1)))
        if not isinstance(config, PerceiverIOConfig) or config.input != expected:
            raise ValueError(f"{self.name} continues only an autoencoder of its own inputs ({expected})")
        return config, ()

    def pictures(self, run_dir: Path, module: Autoencoder, splits: Splits) -> list[Path]:
        paths = [run_dir / "curves.png", run_dir / "reconstructions.png"]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        module.eval()
        with torch.inference_mode():
            outputs, (images, *_) = module.predict(rows_of(splits.test, 6))
        reconstructed = patched_images(outputs["image"], images.shape[1:], self.input.patch_size)
        pictures.reconstructions(images, reconstructed.clamp(0, 1), paths[1])
        return paths

    def describe(self, outputs: dict[str, Tensor], model: nn.Module, top: int, path: Path, output_dir: Path) -> str:
        """The ``top`` most probable labels, inferred with the label hidden."""
        probabilities = outputs["label"].float().softmax(-1)[0]
        values, indices = probabilities.topk(min(top, len(probabilities)))
        return "\n".join(f"  {p:7.2%}  {i}" for p, i in zip(values.tolist(), indices.tolist(), strict=True))
