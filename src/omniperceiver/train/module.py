"""The Lightning wrapper: a classifier's loss, metrics and optimizer around a PerceiverIO."""

from __future__ import annotations

import lightning
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from omniperceiver.models.perceiver_io import PerceiverIO
from omniperceiver.train.recipe import TrainingSettings


class Classifier(lightning.LightningModule):
    """Cross-entropy training of ``model`` on batches (inputs, [mask,] labels); accuracy per split."""

    def __init__(self, model: PerceiverIO, settings: TrainingSettings, num_classes: int) -> None:
        super().__init__()
        self.model, self.settings = model, settings
        self.metrics = torch.nn.ModuleDict(
            {f"{part}_accuracy": MulticlassAccuracy(num_classes, average="micro") for part in ("train", "val", "test")}
        )

    def _step(self, batch, part: str) -> torch.Tensor:
        *inputs, labels = batch
        logits = self.model(*inputs)
        loss = F.cross_entropy(logits.float(), labels)
        accuracy = self.metrics[f"{part}_accuracy"]
        accuracy(logits, labels)
        self.log(f"{part}_loss", loss, prog_bar=part != "test", on_epoch=True, on_step=False)
        self.log(f"{part}_accuracy", accuracy, prog_bar=True, on_epoch=True, on_step=False)
        return loss

    def training_step(self, batch, batch_index):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_index):
        self._step(batch, "val")

    def test_step(self, batch, batch_index):
        self._step(batch, "test")

    def configure_optimizers(self):
        s = self.settings
        optimizer = torch.optim.AdamW(self.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=s.learning_rate, total_steps=self.trainer.estimated_stepping_batches, pct_start=0.1
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
