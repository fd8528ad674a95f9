"""Causal language modelling: a Perceiver AR predicts each next byte; bits per byte, lower is better."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.core.ar import ARConfig
from omniperceiver.data.splits import Splits
from omniperceiver.errors import one_line
from omniperceiver.inference.generate import generate
from omniperceiver.models.perceiver_ar import PerceiverARConfig
from omniperceiver.train import pictures
from omniperceiver.train.inputs import Inputs, Masks
from omniperceiver.train.sections import ARTrunk, TrainingSettings
from omniperceiver.train.tasks.base import Prediction, Task, TaskModule


class BitsPerByte(torchmetrics.MeanMetric):
    """The mean cross-entropy in bits of next-byte logits (T, V) for their targets (T,)."""

    def update(self, logits: Tensor, target: Tensor) -> None:
        super().update(F.cross_entropy(logits, target, reduction="none") / math.log(2))


class LanguageModel(TaskModule):
    """Next-byte prediction over left-padded byte sequences: the last N positions (the latents) predict the
    byte after each; padding and special tokens are not targets. Cross-entropy as loss."""

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


def left_aligned(ids: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Right-padded ids (B, L) and their mask -> the same sequences left-padded (their last byte at L - 1)."""
    length = ids.shape[1]
    order = (torch.arange(length) + mask.sum(dim=1, keepdim=True)) % length
    return ids.gather(1, order), mask.gather(1, order)


def unigram_bits_per_byte(splits: Splits) -> float:
    """Cross-entropy in bits of the test bytes under the training bytes' frequencies (add-one smoothed)."""

    def counts(ids: Tensor, mask: Tensor) -> Tensor:
        scored = ids[mask & (ids >= ByteTokenizer.OFFSET)]
        return torch.bincount(scored, minlength=ByteTokenizer.vocab_size).double()

    probabilities = counts(*splits.train.tensors[:2]) + 1
    probabilities /= probabilities.sum()
    test = counts(*splits.test.tensors[:2])
    return float(-(test * probabilities.log2()).sum() / test.sum())


@dataclasses.dataclass(frozen=True)
class LanguageModelTask(Task):
    """Byte sequences (B, L) with their mask, modelled left-padded; baseline: a unigram model. ``predict``
    continues each text file's bytes."""

    metric = "bits_per_byte"
    lower_is_better = True
    module = LanguageModel
    trunk = ARTrunk

    def unpack(self, batch: tuple[Tensor, ...]) -> tuple[Inputs, Masks, Tensor]:
        return (*left_aligned(batch[0], batch[1]), batch[0])

    def model_config(self, splits: Splits, trunk: ARTrunk, settings: TrainingSettings) -> PerceiverARConfig:
        if settings.activation_checkpointing:
            raise ValueError("training.activation_checkpointing: Perceiver AR does not recompute activations")
        ar = ARConfig(
            channels=trunk.latent_channels,
            num_latents=trunk.num_latents,
            num_heads=trunk.num_heads,
            num_cross_attention_heads=trunk.num_cross_attention_heads,
            num_self_attention_layers=trunk.num_layers,
            cross_attention_widening_factor=trunk.widening_factor,
            self_attention_widening_factor=trunk.widening_factor,
            dropout=trunk.dropout,
        )
        return PerceiverARConfig(
            ByteTokenizer.vocab_size, self.inputs_per_example(splits), ar, pad_id=ByteTokenizer.PAD
        )

    def fit(self, config: PerceiverARConfig, splits: Splits) -> tuple[PerceiverARConfig, tuple[str, ...]]:
        if not isinstance(config, PerceiverARConfig) or config.vocab_size != ByteTokenizer.vocab_size:
            raise ValueError(f"{self.name} needs a Perceiver AR over bytes ({ByteTokenizer.vocab_size} ids)")
        if config.max_seq_len < self.inputs_per_example(splits):
            raise ValueError(
                f"the model reads at most {config.max_seq_len} bytes; this data needs {self.inputs_per_example(splits)}"
            )
        return config, ()

    def inputs_per_example(self, splits: Splits) -> int:
        return splits.train.tensors[0].shape[1] - 1  # inputs stop one byte before the last target

    def baseline(self, splits: Splits) -> float:
        return unigram_bits_per_byte(splits)

    def pictures(self, run_dir: Path, module: LanguageModel, splits: Splits) -> list[Path]:
        paths = [run_dir / "curves.png", run_dir / "samples.txt"]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        pictures.samples(module.model, splits, paths[1])
        return paths

    def predict(self, model: nn.Module, items: Sequence[str], top: int, output_dir: Path) -> Iterator[Prediction]:
        """Each text file's bytes continued (up to 200 bytes or the end of a text), sampled at temperature
        0.8."""
        if not isinstance(model.config, PerceiverARConfig):
            raise ValueError(f"the model is a {type(model).__name__}; this dataset's language model is a PerceiverAR")
        tokenizer = ByteTokenizer()
        for path in items:
            try:
                prompt = tokenizer.encode(Path(path).read_text(encoding="utf-8"))[:-1]  # [CLS] bytes, as trained
                if len(prompt) > model.config.max_seq_len:
                    raise ValueError(f"{len(prompt)} tokens, more than the {model.config.max_seq_len} the model reads")
                (output,) = generate(model.eval(), [prompt], 200, temperature=0.8, eos_id=ByteTokenizer.SEP)
                yield path, f"  {tokenizer.decode(prompt)!r} -> {tokenizer.decode(output)!r}", ""
            except (OSError, ValueError, UnicodeDecodeError) as error:
                yield path, None, one_line(error)
