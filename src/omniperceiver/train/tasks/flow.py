"""Per-element regression: optical flow, one (u, v) vector per pixel decoded by one query per pixel (the
pixel's own input); end-point error, lower is better."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torchmetrics
from torch import Tensor, nn

from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.queries import InputQueryConfig
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.data.splits import Splits
from omniperceiver.errors import one_line
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.flow import FlowOutputConfig
from omniperceiver.predict import PredictOptions, optical_flow
from omniperceiver.train import pictures
from omniperceiver.train.sections import TrainingSettings, Trunk
from omniperceiver.train.tasks.base import Prediction, Task, TaskModule

DECODER_WIDENING = 4  # the per-pixel MLP that turns patches into flow


def end_point_error(flow: Tensor, target: Tensor) -> Tensor:
    """Per-pixel end-point error (B, H, W): the Euclidean distance between flow vectors (B, H, W, 2)."""
    return (flow - target).norm(dim=-1)


class EndPointError(torchmetrics.MeanMetric):
    """The mean end-point error over every pixel of flow fields (B, H, W, 2)."""

    def update(self, flow: Tensor, target: Tensor) -> None:
        super().update(end_point_error(flow, target))


class FlowEstimator(TaskModule):
    """End-point error as loss and metric, on flow fields (B, H, W, 2) in pixels."""

    def new_metric(self) -> torchmetrics.Metric:
        return EndPointError()

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return end_point_error(outputs, target).mean()


@dataclasses.dataclass(frozen=True)
class FlowTask(Task):
    """Optical flow of frame pairs; baseline: zero flow."""

    metric = "epe"
    lower_is_better = True
    module = FlowEstimator

    def model_config(self, splits: Splits, trunk: Trunk, settings: TrainingSettings) -> PerceiverIOConfig:
        adapter = self.input.adapter(self.inputs(rows_of(splits.train, 1)))
        decoder = DecoderConfig(
            queries=InputQueryConfig(num_channels=adapter.num_channels),
            latent_channels=trunk.latent_channels,
            output_channels=2,
            num_heads=trunk.num_cross_attention_heads,
            widening_factor=DECODER_WIDENING,
            use_query_residual=True,  # each pixel's own frame patches reach its flow directly
        )
        image_shape = tuple(rows_of(splits.train, 1)[-1].shape[1:3])
        encoder = self.encoder(splits, trunk, settings)
        return PerceiverIOConfig(adapter, encoder, decoder, FlowOutputConfig(image_shape, scale=1.0))

    def fit(self, config: PerceiverIOConfig, splits: Splits) -> tuple[PerceiverIOConfig, tuple[str, ...]]:
        if not isinstance(config, PerceiverIOConfig) or not isinstance(config.output, FlowOutputConfig):
            raise ValueError(f"{self.name} needs a Perceiver IO optical-flow model, not this model")
        config = self.fit_input(config, splits)
        image_shape = tuple(rows_of(splits.train, 1)[-1].shape[1:3])
        return dataclasses.replace(config, output=dataclasses.replace(config.output, image_shape=image_shape)), ()

    def baseline(self, splits: Splits) -> float:
        return float(rows_of(splits.test)[-1].norm(dim=-1).mean())

    def pictures(self, run_dir: Path, module: FlowEstimator, splits: Splits) -> list[Path]:
        paths = [run_dir / name for name in ("curves.png", "attention.png", "flow.png")]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        pictures.attention(module, rows_of(splits.test, 1), paths[1])
        pictures.flow(module, rows_of(splits.test, 4), paths[2])
        return paths

    def predict(
        self, model: nn.Module, items: Sequence[str], top: int, output_dir: Path, data: dict[str, Any]
    ) -> Iterator[Prediction]:
        """Frames in pairs (first, second): the flow of each pair, written as a picture and a .npy array."""
        self.input.check(model.config.input)
        if len(items) % 2:
            raise ValueError(f"optical flow takes frames in pairs (first, second); got {len(items)} files")
        for first, second in zip(items[::2], items[1::2], strict=True):
            try:
                output = output_dir / Path(first).stem
                yield (
                    f"{first} + {second}",
                    optical_flow(model, (first, second), PredictOptions(progress=False), output),
                    "",
                )
            except (OSError, ValueError) as error:
                yield f"{first} + {second}", None, one_line(error)
