"""Causal language modelling: a Perceiver AR predicts each next token (a byte, or a subword of a BPE trained on
the training part); bits per byte over every held-out token scored once, lower is better, beside a unigram
model and conditional compression by xz and zstd."""

from __future__ import annotations

import dataclasses
import functools
import lzma
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.core.ar import ARConfig
from omniperceiver.core.config import Config, require
from omniperceiver.data.bpe import TOKENIZER_FILE, BPETokenizer, tokenizer_file
from omniperceiver.data.byte_stream import Bytes
from omniperceiver.data.splits import Splits
from omniperceiver.errors import one_line
from omniperceiver.inference.generate import generate
from omniperceiver.models.perceiver_ar import PerceiverARConfig
from omniperceiver.train import pictures
from omniperceiver.train.inputs import Inputs, Masks
from omniperceiver.train.sections import ARTrunk, TrainingSettings
from omniperceiver.train.tasks.base import Prediction, Task, TaskModule


class BitsPerByte(torchmetrics.Metric):
    """The cross-entropy in bits of next-token logits (T, V) for their targets, summed, over the bytes the
    targets stand for: targets (T, 2) hold each next id and its number of bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("bits", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("bytes", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        self.bits += F.cross_entropy(logits, target[:, 0], reduction="sum").double() / math.log(2)
        self.bytes += target[:, 1].sum()

    def compute(self) -> Tensor:
        return self.bits / self.bytes


class LanguageModel(TaskModule):
    """Next-token prediction over left-padded windows of ids: the last N positions (the latents) predict the
    token after each; the window's scored targets count (held out: each token once). Cross-entropy per token
    as loss; the metric is bits per byte."""

    def new_metric(self) -> torchmetrics.Metric:
        return BitsPerByte()

    def predict(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """Logits (T, V) of the scored targets, and the targets (T, 2): next id, its number of bytes."""
        ids, mask, scored = self.task.unpack(batch)
        logits = self.model(ids[:, :-1], mask=mask[:, :-1])  # (B, N, V): the tokens after the last N inputs
        n = logits.shape[1]
        target = torch.stack([ids[:, -n:], scored[:, -n:]], dim=-1)  # padding and [CLS] are never scored
        chosen = target[..., 1] > 0
        return logits[chosen].float(), target[chosen]

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(outputs, target[:, 0])


def left_aligned(ids: Tensor, mask: Tensor, *more: Tensor) -> tuple[Tensor, ...]:
    """Right-padded ids (B, L), their mask and ``more`` tensors laid out alike -> the same left-padded (each
    sequence's last byte at L - 1)."""
    length = ids.shape[1]
    order = (torch.arange(length) + mask.sum(dim=1, keepdim=True)) % length
    return tuple(t.gather(1, order) for t in (ids, mask, *more))


COUNT_CHUNK = 64 << 20  # bytes counted at a time


def unigram_bits_per_byte(train: Bytes, test: Bytes) -> float:
    """Cross-entropy in bits of the ``test`` bytes under the ``train`` bytes' frequencies (add-one smoothed);
    each read a chunk at a time (a corpus on disk stays there)."""

    def counts(data: Bytes) -> Tensor:
        total = torch.zeros(256, dtype=torch.float64)
        for start in range(0, len(data), COUNT_CHUNK):
            chunk = np.frombuffer(data[start : start + COUNT_CHUNK], dtype=np.uint8)
            total += torch.from_numpy(np.bincount(chunk, minlength=256)).double()
        return total

    probabilities = counts(train) + 1
    probabilities /= probabilities.sum()
    test_counts = counts(test)
    return float(-(test_counts * probabilities.log2()).sum() / test_counts.sum())


COMPRESSION_CONTEXT = 64 << 20  # xz -9e's dictionary: earlier training bytes could not help it


@functools.cache  # several runs on one corpus in a process compress it once
def compression_bits_per_byte(train: Bytes, test: Bytes) -> dict[str, float]:
    """Conditional compression of the ``test`` bytes given the ``train`` bytes (their last 64 MiB), in bits per
    test byte: (bits of compress(train + test) - bits of compress(train)) / len(test), by xz -9e and zstd -19
    --long."""
    import zstandard

    train, test = train[-COMPRESSION_CONTEXT:], test[:]

    zstd = zstandard.ZstdCompressor(
        compression_params=zstandard.ZstdCompressionParameters.from_level(19, enable_ldm=True, window_log=27)
    )
    compressors = {
        "xz -9e": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
        "zstd -19 --long": zstd.compress,
    }
    return {
        name: 8 * (len(compress(train + test)) - len(compress(train))) / len(test)
        for name, compress in compressors.items()
    }


@dataclasses.dataclass(frozen=True)
class Tokenization(Config):
    """How a language model's text becomes ids (its recipe's ``input:`` section): bytes (the default); a
    byte-level BPE of ``vocab_size`` ids learned from the training part alone; or the BPE of ``tokenizer`` (a
    tokenizer.json written by ``omniperceiver tokenizer``, or a model or run folder holding one)."""

    vocab_size: int | None = None
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        require(
            self.vocab_size is None or self.tokenizer is None,
            "vocab_size",
            self.vocab_size,
            "none when a tokenizer is given (a saved BPE has its own size)",
        )
        require(
            self.vocab_size is None or self.vocab_size > ByteTokenizer.vocab_size,
            "vocab_size",
            self.vocab_size,
            f"more than the {ByteTokenizer.vocab_size} ids of bytes (their own ids plus merges), or none (bytes)",
        )

    def tokenizer_for(self, train: Bytes) -> ByteTokenizer:
        """The tokenizer: bytes, the saved one, or a BPE learned from the ``train`` bytes."""
        return self.saved() if self.vocab_size is None else BPETokenizer.train(train, self.vocab_size)

    def saved(self) -> ByteTokenizer:
        """The saved tokenizer, or bytes."""
        if self.vocab_size is not None:
            raise ValueError("input.vocab_size: the BPE is learned in training; read it from the model's folder")
        return ByteTokenizer() if self.tokenizer is None else BPETokenizer.load(self.tokenizer)


@dataclasses.dataclass(frozen=True)
class LanguageModelTask(Task):
    """Windows of token ids (B, L+1) with their mask and scored targets (a :class:`ByteWindows` per part),
    modelled left-padded; held-out windows score N new tokens each for a model of N latents. The ``input``
    (:class:`Tokenization`) makes the ids bytes or subwords; the tokenizer is saved beside the model. Baseline:
    a unigram model of bytes. ``predict`` continues each text file."""

    metric = "bits_per_byte"
    lower_is_better = True
    module = LanguageModel
    trunk = ARTrunk

    def unpack(self, batch: tuple[Tensor, ...]) -> tuple[Inputs, Masks, Tensor]:
        return left_aligned(*batch)

    def splits(self, *args: Any, **kwargs: Any) -> Splits:
        """The dataset's byte windows, read as the ``input``'s tokenizer's ids (one learned from the training
        part's bytes alone)."""
        splits = super().splits(*args, **kwargs)
        tokenizer = self.input.tokenizer_for(splits.train.data)
        if not isinstance(tokenizer, BPETokenizer):
            return splits
        parts = {part: getattr(splits, part).tokenized(tokenizer) for part in ("train", "validation", "test")}
        ratio = len(splits.train.data) / len(parts["train"].stream)
        description = f"{splits.description}; a BPE of {tokenizer.vocab_size:,} ids, {ratio:.2f} bytes per token"
        return dataclasses.replace(splits, **parts, description=description)

    def reading_as(self, model_dir: Path) -> LanguageModelTask:
        """This task reading text as the model in ``model_dir`` was trained to: with the tokenizer saved beside
        it (none: bytes)."""
        file = tokenizer_file(model_dir)
        if file is None and self.input.vocab_size is not None:
            raise FileNotFoundError(f"{model_dir} holds no {TOKENIZER_FILE}, the BPE its recipe's input names")
        saved = None if file is None else str(file)
        return dataclasses.replace(self, input=dataclasses.replace(self.input, vocab_size=None, tokenizer=saved))

    def save(self, model_dir: Path, splits: Splits) -> None:
        """The tokenizer beside the model (none for bytes)."""
        splits.train.tokenizer.save(model_dir)

    def evaluation_splits(self, splits: Splits, model: nn.Module) -> Splits:
        """Held-out windows that score as many new bytes each as the model predicts at once (its latents)."""
        stride = min(model.config.ar.num_latents, splits.test.length)
        return dataclasses.replace(
            splits, validation=splits.validation.with_stride(stride), test=splits.test.with_stride(stride)
        )

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
        vocab_size = splits.train.tokenizer.vocab_size
        return PerceiverARConfig(vocab_size, self.inputs_per_example(splits), ar, pad_id=ByteTokenizer.PAD)

    def fit(self, config: PerceiverARConfig, splits: Splits) -> tuple[PerceiverARConfig, tuple[str, ...]]:
        vocab_size = splits.train.tokenizer.vocab_size
        if not isinstance(config, PerceiverARConfig) or config.vocab_size != vocab_size:
            reads = f"{config.vocab_size} ids" if isinstance(config, PerceiverARConfig) else type(config).__name__
            raise ValueError(
                f"{self.name} reads {vocab_size} ids (the recipe's input); the model reads {reads}: a Perceiver AR"
                " starts from a model of its own tokenizer (input.tokenizer: the model's folder)"
            )
        if config.max_seq_len < self.inputs_per_example(splits):
            raise ValueError(
                f"the model reads at most {config.max_seq_len} ids; this data needs {self.inputs_per_example(splits)}"
            )
        return config, ()

    def inputs_per_example(self, splits: Splits) -> int:
        return splits.train.length  # a window's L+1 ids: inputs stop one id before the last target

    def baseline(self, splits: Splits) -> float:
        return unigram_bits_per_byte(splits.train.data, splits.test.data)

    def pictures(self, run_dir: Path, module: LanguageModel, splits: Splits) -> list[Path]:
        """curves.png, and samples.txt: the test bits per byte beside the baselines', then continuations of
        four test passages."""
        paths = [run_dir / "curves.png", run_dir / "samples.txt"]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        train, test = splits.train.data, splits.test.data
        compressed = compression_bits_per_byte(train, test)
        scores = {
            "this model": pictures.last_value(run_dir / "logs" / "metrics.csv", f"test_{self.metric}"),
            "unigram of the training bytes": unigram_bits_per_byte(train, test),
            **{f"{name}, given the training bytes": bits for name, bits in compressed.items()},
        }
        header = [f"bits per byte over the {len(test):,} test bytes, each scored once:"]
        header += [f"  {bits:6.3f}  {name}" for name, bits in scores.items()]
        starts = range(0, len(test), max(1, len(test) // 4))
        passages = [test[i : i + 24].decode("utf-8", errors="ignore") for i in starts][:4]
        pictures.samples(module.model, splits.train.tokenizer, passages, paths[1], header="\n".join(header))
        return paths

    def predict(
        self, model: nn.Module, items: Sequence[str], top: int, output_dir: Path, data: dict[str, Any]
    ) -> Iterator[Prediction]:
        """Each text file continued (up to 200 tokens or the end of a text), sampled at temperature 0.8."""
        if not isinstance(model.config, PerceiverARConfig):
            raise ValueError(f"the model is a {type(model).__name__}; this dataset's language model is a PerceiverAR")
        tokenizer = self.input.saved()
        for path in items:
            try:
                prompt = tokenizer.encode(Path(path).read_text(encoding="utf-8"))[:-1]  # [CLS] ids, as trained
                if len(prompt) > model.config.max_seq_len:
                    raise ValueError(f"{len(prompt)} tokens, more than the {model.config.max_seq_len} the model reads")
                (output,) = generate(model.eval(), [prompt], 200, temperature=0.8, eos_id=ByteTokenizer.SEP)
                yield path, f"  {tokenizer.decode(prompt)!r} -> {tokenizer.decode(output)!r}", ""
            except (OSError, ValueError, UnicodeDecodeError) as error:
                yield path, None, one_line(error)
