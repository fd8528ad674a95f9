"""Per-element classification: semantic segmentation. One query per pixel, the pixel's own input element (its
values and its position's Fourier features, as Perceiver IO's optical flow decoder), decodes that pixel's class
logits (B, H·W, K); mean IoU over the classes, higher is better."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn
from torchmetrics.classification import MulticlassJaccardIndex

from omniperceiver.adapters.image import ImageInputConfig
from omniperceiver.core.queries import InputQueryConfig
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.data.splits import Splits, require_module
from omniperceiver.files import output_folder
from omniperceiver.media import save_png
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.segmentation import SegmentationOutputConfig
from omniperceiver.train import pictures
from omniperceiver.train.sections import TrainingSettings, Trunk
from omniperceiver.train.tasks.base import Task, TaskModule, element_decoder


class Segmenter(TaskModule):
    """Cross-entropy plus soft Dice loss over every pixel's logits (B, H, W, K) for labels (B, H, W); mean IoU.
    The Dice term weighs each class alike, however few pixels it covers: with cross-entropy alone the model
    sat for epochs on predicting background everywhere."""

    def new_metric(self) -> torchmetrics.Metric:
        return MulticlassJaccardIndex(self.model.config.decoder.output_channels, average="macro")

    def predict(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        logits, target = super().predict(batch)
        return logits.flatten(0, 2), target.flatten()  # (B·H·W, K), (B·H·W,)

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(outputs, target) + soft_dice_loss(outputs, target)


def soft_dice_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """1 - the mean over the K classes of the soft Dice coefficient of pixel logits (P, K) for labels (P,)."""
    probabilities = logits.float().softmax(-1)
    truth = F.one_hot(target, logits.shape[-1]).to(probabilities.dtype)
    overlap = (probabilities * truth).sum(0)
    return 1 - ((2 * overlap + smooth) / (probabilities.sum(0) + truth.sum(0) + smooth)).mean()


@dataclasses.dataclass(frozen=True)
class SegmentationTask(Task):
    """Images (B, H, W, C) labelled per pixel (B, H, W), read pixel by pixel (``input.patch_size: 1``);
    baseline: logistic regression on each pixel's 3x3 neighbourhood."""

    metric = "mean_iou"
    module = Segmenter

    def model_config(self, splits: Splits, trunk: Trunk, settings: TrainingSettings) -> PerceiverIOConfig:
        adapter = self.input.adapter(self.inputs(rows_of(splits.train, 1)))
        image_shape = tuple(rows_of(splits.train, 1)[-1].shape[1:3])
        self._require_pixels(adapter, image_shape)
        encoder = self.encoder(splits, trunk, settings)
        decoder = element_decoder(adapter.num_channels, encoder, len(splits.classes))
        output = SegmentationOutputConfig(image_shape, splits.classes)
        return PerceiverIOConfig(adapter, encoder, decoder, output)

    def fit(self, config: PerceiverIOConfig, splits: Splits) -> tuple[PerceiverIOConfig, tuple[str, ...]]:
        queries = getattr(getattr(config, "decoder", None), "queries", None)
        if not isinstance(queries, InputQueryConfig) or not isinstance(config.output, SegmentationOutputConfig):
            raise ValueError(f"{self.name} needs a Perceiver IO with one input query per pixel, not this model")
        config = self.fit_input(config, splits)
        image_shape = tuple(rows_of(splits.train, 1)[-1].shape[1:3])
        self._require_pixels(config.input, image_shape)
        decoder = dataclasses.replace(config.decoder, output_channels=len(splits.classes))
        output = SegmentationOutputConfig(image_shape, splits.classes)
        fresh = () if config.output.labels == splits.classes else ("decoder.projection",)
        return dataclasses.replace(config, decoder=decoder, output=output), fresh

    def _require_pixels(self, adapter: ImageInputConfig, image_shape: tuple[int, int]) -> None:
        """Refuse an input adapter whose elements are not the labelled pixels (one query per element)."""
        elements = getattr(getattr(adapter, "array", None), "index_shape", None)
        if elements != image_shape:
            raise ValueError(
                f"{self.name} decodes one query per input pixel: set input.patch_size: 1 (the input has "
                f"{elements} elements for {image_shape} labels)"
            )

    def baseline(self, splits: Splits) -> float:
        """Mean IoU on the test split of logistic regression on each pixel's 3x3 neighbourhood (50,000 training
        pixels)."""
        linear_model = require_module("sklearn.linear_model", "pip install scikit-learn")

        def neighbourhoods(images: Tensor) -> np.ndarray:
            channels_first = images.permute(0, 3, 1, 2)
            patches = F.unfold(channels_first, 3, padding=1)  # (B, C·9, H·W)
            return patches.transpose(1, 2).flatten(0, 1).numpy()

        train, test = rows_of(splits.train), rows_of(splits.test)
        train_x, train_y = neighbourhoods(train[0]), train[-1].flatten().numpy()
        chosen = np.random.default_rng(0).choice(len(train_x), min(50_000, len(train_x)), replace=False)
        model = linear_model.LogisticRegression(max_iter=500).fit(train_x[chosen], train_y[chosen])
        predicted = model.predict(neighbourhoods(test[0]))
        metric = MulticlassJaccardIndex(len(splits.classes), average="macro")
        return float(metric(torch.from_numpy(predicted), test[-1].flatten()))

    def pictures(self, run_dir: Path, module: Segmenter, splits: Splits) -> list[Path]:
        paths = [run_dir / name for name in ("curves.png", "attention.png", "segmentation.png")]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        pictures.attention(module, rows_of(splits.test, 1), paths[1])
        pictures.segmentation(module, rows_of(splits.test, 4), len(splits.classes), paths[2])
        return paths

    def describe(self, outputs: Tensor, model: nn.Module, top: int, path: Path, output_dir: Path) -> str:
        """The label map written as a PNG (class k at gray level k · 255 / (K - 1)) and the classes that
        cover most of the image."""
        labels, names = outputs[0].argmax(-1), model.config.output.labels
        counts = labels.flatten().bincount(minlength=len(names))
        output_folder(output_dir)
        out = output_dir / f"{path.stem}_labels.png"
        save_png(out, (labels.numpy() * (255 // max(1, len(names) - 1))).astype(np.uint8))
        order = [k for k in counts.argsort(descending=True)[:top].tolist() if counts[k]]
        lines = [f"  {int(counts[k]) / labels.numel():7.2%}  {names[k]}" for k in order]
        return "\n".join([*lines, f"  -> {out}"])
