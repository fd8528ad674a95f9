"""The Lightning wrappers: a task's loss, metrics and optimizer around a PerceiverIO."""

from __future__ import annotations

import math

import lightning
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor
from torch.optim.lr_scheduler import OneCycleLR
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.models.perceiver_ar import PerceiverAR
from omniperceiver.models.perceiver_io import PerceiverIO
from omniperceiver.train.recipe import TrainingSettings
from omniperceiver.train.tasks import Task

PARTS = ("train", "val", "test")


class NonFiniteError(ValueError):
    """Training met a NaN or infinity at optimizer ``step`` (counted from 1); it stops."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(
            f"training stopped at optimizer step {step}: {what}; neither a model nor a checkpoint of non-finite"
            " weights was saved (a lower training.learning_rate may help)"
        )


class TaskModule(lightning.LightningModule):
    """Trains ``model`` on batches of the task's tensors with AdamW and a one-cycle schedule stepped per
    optimizer step; logs ``{part}_loss`` and ``{part}_{metric}`` per epoch."""

    metric_name: str

    def __init__(self, model: PerceiverIO, task: Task, settings: TrainingSettings) -> None:
        super().__init__()
        self.model, self.task, self.settings = model, task, settings
        self.metrics = torch.nn.ModuleDict({f"{part}_{self.metric_name}": self.new_metric() for part in PARTS})

    @property
    def metric_names(self) -> list[str]:
        """Every name logged: ``{part}_loss`` and ``{part}_{metric_name}``."""
        return [f"{part}_{name}" for part in PARTS for name in ("loss", self.metric_name)]

    def new_metric(self) -> torchmetrics.Metric:
        raise NotImplementedError

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def predict(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """The model's outputs for a batch of the dataset's tensors, and their targets."""
        x, mask, target = self.task.unpack(batch)
        return self.model(x, mask).float(), target

    def _step(self, batch: tuple[Tensor, ...], part: str) -> Tensor:
        outputs, target = self.predict(batch)
        loss = self.loss(outputs, target)
        metric = self.metrics[f"{part}_{self.metric_name}"]
        metric(outputs, target)
        self.log(f"{part}_loss", loss, prog_bar=part != "test", on_epoch=True, on_step=False, sync_dist=True)
        self.log(f"{part}_{self.metric_name}", metric, prog_bar=True, on_epoch=True, on_step=False)
        if part == "test":
            self.observe_test(outputs, target)
        return loss

    def observe_test(self, outputs: Tensor, target: Tensor) -> None:
        """Called with every test batch's outputs and targets."""

    def training_step(self, batch, batch_index):
        if self.task.augment is not None and self.settings.augment:
            batch = self.task.augment(batch)
        return self._step(batch, "train")

    def validation_step(self, batch, batch_index):
        self._step(batch, "val")

    def test_step(self, batch, batch_index):
        self._step(batch, "test")

    def configure_optimizers(self):
        s = self.settings
        optimizer = torch.optim.AdamW(self.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._one_cycle(optimizer), "interval": "step"}}

    def _one_cycle(self, optimizer: torch.optim.Optimizer, *, step: int = 0) -> OneCycleLR:
        """The one-cycle schedule over all of the run's optimizer steps, at ``step``."""
        total = self.trainer.estimated_stepping_batches
        warmup = 0.1 if total != 10 else 0.15  # OneCycleLR divides by zero where warmup * total_steps == 1
        return OneCycleLR(
            optimizer, max_lr=self.settings.learning_rate, total_steps=total, pct_start=warmup, last_epoch=step - 1
        )

    def on_train_start(self) -> None:
        """A run resumed with more epochs: the restored schedule ends too early; it becomes the schedule of a
        run planned for the new length from the start, entered at the step reached (optimizer and step kept)."""
        config = self.trainer.lr_scheduler_configs[0]
        if config.scheduler.total_steps != self.trainer.estimated_stepping_batches:
            config.scheduler = self._one_cycle(config.scheduler.optimizer, step=self.global_step)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Stop before a non-finite gradient (from a NaN/inf loss, or an overflow) reaches the weights; the
        gradients are checked after DDP averaged them, so every process stops at the same step."""
        gradients = {name: p.grad for name, p in self.named_parameters() if p.grad is not None}
        largest = torch.nn.utils.get_total_norm(gradients.values(), norm_type=math.inf)  # NaN or inf if any is
        if not largest.isfinite():  # one fused reduction, one sync per step; the search runs only on failure
            name = next(name for name, g in gradients.items() if not g.isfinite().all())
            raise NonFiniteError(self.global_step + 1, f"the gradient is not finite ({name})")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """No checkpoint holds non-finite weights: the last checkpoint on disk stays the last good one."""
        for name, parameter in self.named_parameters():
            if not torch.isfinite(parameter).all():
                raise NonFiniteError(self.global_step, f"the weights it made are not finite ({name})")


class Classifier(TaskModule):
    """Cross-entropy on logits (B, K); accuracy, and a confusion matrix over the test split."""

    metric_name = "accuracy"

    def __init__(self, model: PerceiverIO, task: Task, settings: TrainingSettings) -> None:
        super().__init__(model, task, settings)
        self.confusion = MulticlassConfusionMatrix(self.num_classes)

    @property
    def num_classes(self) -> int:
        return self.model.config.decoder.output_channels

    def new_metric(self) -> torchmetrics.Metric:
        return MulticlassAccuracy(self.num_classes, average="micro")

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(outputs, target)

    def observe_test(self, outputs: Tensor, target: Tensor) -> None:
        self.confusion.update(outputs, target)

    def on_test_epoch_end(self) -> None:
        self.test_confusion = self.confusion.compute()  # (K, K) rows true; gathered from every process
        self.confusion.reset()


class EndPointError(torchmetrics.MeanMetric):
    """The mean end-point error over every pixel of flow fields (B, H, W, 2)."""

    def update(self, flow: Tensor, target: Tensor) -> None:
        super().update(end_point_error(flow, target))


class FlowEstimator(TaskModule):
    """End-point error as loss and metric, on flow fields (B, H, W, 2) in pixels."""

    metric_name = "epe"

    def new_metric(self) -> torchmetrics.Metric:
        return EndPointError()

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return end_point_error(outputs, target).mean()


class BitsPerByte(torchmetrics.MeanMetric):
    """The mean cross-entropy in bits of next-byte logits (T, V) for their targets (T,)."""

    def update(self, logits: Tensor, target: Tensor) -> None:
        super().update(F.cross_entropy(logits, target, reduction="none") / math.log(2))


class LanguageModel(TaskModule):
    """Next-byte prediction by a PerceiverAR over left-padded byte sequences: the last N positions (the
    latents) predict the byte after each; padding and special tokens are not targets. Cross-entropy as loss,
    bits per byte as metric."""

    metric_name = "bits_per_byte"

    def new_metric(self) -> torchmetrics.Metric:
        return BitsPerByte()

    def predict(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        ids, mask, _ = self.task.unpack(batch)
        logits = self.model(ids[:, :-1], mask=mask[:, :-1])  # (B, N, V): the bytes after the last N inputs
        n = logits.shape[1]
        target = ids[:, -n:]
        scored = mask[:, -n - 1 : -1] & (target >= ByteTokenizer.OFFSET)  # a real input and a byte to predict
        return logits[scored].float(), target[scored]

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(outputs, target)


def end_point_error(flow: Tensor, target: Tensor) -> Tensor:
    """Per-pixel end-point error (B, H, W): the Euclidean distance between flow vectors (B, H, W, 2)."""
    return (flow - target).norm(dim=-1)


MODULES: dict[str, type[TaskModule]] = {
    "classification": Classifier,
    "flow": FlowEstimator,
    "language-model": LanguageModel,
}


def module_for(model: PerceiverIO | PerceiverAR, task: Task, settings: TrainingSettings) -> TaskModule:
    return MODULES[task.kind](model, task, settings)
