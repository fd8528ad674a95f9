"""Classification: one learned query decodes class logits (B, K); accuracy, higher is better."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from omniperceiver.core.queries import LearnedQueryConfig
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.data.splits import Splits, require_module
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.classification import ClassificationOutputConfig
from omniperceiver.train import pictures
from omniperceiver.train.sections import TrainingSettings, Trunk
from omniperceiver.train.tasks.base import Task, TaskModule

BASELINE_ROWS = 20_000  # the baseline fits and scores at most this many examples of a split (all of a shipped one)


class Classifier(TaskModule):
    """Cross-entropy on logits (B, K); accuracy, and a confusion matrix over the test split."""

    def __init__(self, model: nn.Module, task: Task, settings: TrainingSettings) -> None:
        super().__init__(model, task, settings)
        self.confusion = MulticlassConfusionMatrix(self.num_classes)

    @property
    def num_classes(self) -> int:
        """K: a Perceiver's output channels, or another model's ``num_classes`` (a baseline's)."""
        config = getattr(self.model, "config", None)
        return config.decoder.output_channels if config is not None else self.model.num_classes

    def new_metric(self) -> torchmetrics.Metric:
        return MulticlassAccuracy(self.num_classes, average="micro")

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(outputs, target)

    def observe_test(self, outputs: Tensor, target: Tensor) -> None:
        self.confusion.update(outputs, target)

    def on_test_epoch_end(self) -> None:
        self.test_confusion = self.confusion.compute()  # (K, K) rows true; gathered from every process
        self.confusion.reset()


@dataclasses.dataclass(frozen=True)
class ClassificationTask(Task):
    """One label per example, decoded by one learned query; baseline: logistic regression on the input's raw
    features."""

    metric = "accuracy"
    module = Classifier

    def model_config(self, splits: Splits, trunk: Trunk, settings: TrainingSettings) -> PerceiverIOConfig:
        adapter = self.input.adapter(self.inputs(rows_of(splits.train, 1)))
        fields = dataclasses.asdict(self.encoder(splits, trunk, settings))
        del fields["input_channels"]
        return PerceiverIOConfig.classifier(adapter, len(splits.classes), labels=splits.classes, **fields)

    def fit(self, config: PerceiverIOConfig, splits: Splits) -> tuple[PerceiverIOConfig, tuple[str, ...]]:
        """The model's input fitted to the data; a new head unless its classes are the dataset's: a classifier's
        query and output layer start anew, and any other Perceiver IO (a masked language model, ...) gets a
        classifier's decoder (one learned query of D channels), its encoder kept."""
        if not isinstance(config, PerceiverIOConfig):
            raise ValueError(f"{self.name} needs a Perceiver IO, not a {type(config).__name__}")
        config = self.fit_input(config, splits)
        output = ClassificationOutputConfig(labels=splits.classes)
        queries = config.decoder.queries
        if not isinstance(queries, LearnedQueryConfig) or queries.num_queries != 1:  # no classifier's decoder
            fields = dataclasses.asdict(config.encoder)
            del fields["input_channels"]
            head = PerceiverIOConfig.classifier(config.input, len(splits.classes), labels=splits.classes, **fields)
            return dataclasses.replace(config, decoder=head.decoder, output=output), ("decoder", "output_adapter")
        labels = config.output.labels if isinstance(config.output, ClassificationOutputConfig) else None
        if labels == splits.classes:
            return config, ()
        decoder = dataclasses.replace(config.decoder, output_channels=len(splits.classes))
        return dataclasses.replace(config, decoder=decoder, output=output), ("decoder.queries", "decoder.projection")

    def baseline(self, splits: Splits) -> float:
        linear_model = require_module("sklearn.linear_model", "pip install scikit-learn")
        preprocessing = require_module("sklearn.preprocessing", "pip install scikit-learn")
        train_rows, test_rows = rows_of(splits.train, BASELINE_ROWS), rows_of(splits.test, BASELINE_ROWS)
        train = self.input.features(self.inputs(train_rows)).numpy()
        scaler = preprocessing.StandardScaler().fit(train)
        model = linear_model.LogisticRegression(max_iter=2000)
        model.fit(scaler.transform(train), train_rows[-1].numpy())
        test = scaler.transform(self.input.features(self.inputs(test_rows)).numpy())
        return float(np.mean(model.predict(test) == test_rows[-1].numpy()))

    def pictures(self, run_dir: Path, module: Classifier, splits: Splits) -> list[Path]:
        paths = [run_dir / name for name in ("curves.png", "attention.png", "confusion.png")]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        pictures.attention(module, rows_of(splits.test, 1), paths[1])
        pictures.confusion(module.test_confusion.cpu().numpy(), splits.classes, paths[2])
        return paths

    def describe(self, outputs: Tensor, model: nn.Module, top: int, path: Path, output_dir: Path) -> str:
        """The ``top`` most probable classes."""
        probabilities = outputs.float().softmax(-1)[0]
        labels = model.config.output.labels or tuple(map(str, range(len(probabilities))))
        values, indices = probabilities.topk(min(top, len(probabilities)))
        return "\n".join(f"  {p:7.2%}  {labels[i]}" for p, i in zip(values.tolist(), indices.tolist(), strict=True))
