"""Masked language modelling: the language Perceiver restores the masked tokens (15% of each window's bytes or
subwords, in spans) of windows of text; bits per masked byte, lower is better. Its input adapter and encoder
fine-tune into a text classifier (``init_from`` the run in a classification recipe)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from omniperceiver.adapters.text import TextInputConfig
from omniperceiver.core.config import require, require_positive, require_positive_finite
from omniperceiver.data.masking import MaskedWindows
from omniperceiver.data.splits import Splits
from omniperceiver.errors import one_line
from omniperceiver.files import atomic_write
from omniperceiver.inference.text import fill_masks
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.tokens import TiedTokenOutputConfig
from omniperceiver.train import pictures
from omniperceiver.train.inputs import Inputs, Masks
from omniperceiver.train.sections import TrainingSettings, Trunk
from omniperceiver.train.tasks.base import Prediction, TaskModule
from omniperceiver.train.tasks.language import BitsPerByte, LanguageModelTask, Tokenization, unigram_bits_per_byte
from omniperceiver.zoo.language import QUERIES, language_perceiver

SAMPLES = 4  # test windows shown filled in samples.txt


@dataclasses.dataclass(frozen=True)
class MaskedTokenization(Tokenization):
    """A masked language model's input (its recipe's ``input:`` section): the tokens (:class:`Tokenization`),
    their embedding's ``channels`` and the ``ngram`` - 1 preceding tokens each element also carries, as a text
    classifier's input (``fortunes``) has them, so that the encoder fine-tunes into one; the token tables'
    initial standard deviation (:class:`~omniperceiver.adapters.text.TextInputConfig`)."""

    channels: int = 64
    ngram: int = 1
    embedding_init_std: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(channels=self.channels, ngram=self.ngram)
        require_positive_finite(embedding_init_std=self.embedding_init_std)


@dataclasses.dataclass(frozen=True)
class MaskedLMTrunk(Trunk):
    """A Perceiver IO trunk (:class:`Trunk`) and where the decoder's queries come from: ``positions``, the
    language Perceiver's learned position queries, or ``inputs``, each position's own (corrupted) input element
    with its n-gram context, added back after the attention. On two cores the second learns within minutes,
    where position queries stayed near the unigram for thousands of steps (README)."""

    queries: str = "positions"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.queries in QUERIES, "queries", self.queries, f"one of {QUERIES}")


class MaskedLanguageModel(TaskModule):
    """Token logits (B, L, V) of the corrupted windows; cross-entropy over the masked positions only (the
    others are given), and bits per masked byte."""

    def new_metric(self) -> torchmetrics.Metric:
        return BitsPerByte()

    def predict(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """Logits (T, V) at the T masked positions of the batch, and their targets (T, 2): the original id
        and its number of bytes."""
        inputs, mask, target = self.task.unpack(batch)
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        logits = self.model(inputs, mask, output_indices=positions)
        masked = target[..., 1] > 0
        return logits[masked].float(), target[masked]

    def loss(self, outputs: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy over the masked tokens (0 for a batch without any: a last, short window)."""
        return F.cross_entropy(outputs, target[:, 0], reduction="sum") / max(len(target), 1)


@dataclasses.dataclass(frozen=True)
class MaskedLanguageModelTask(LanguageModelTask):
    """Windows of L token ids (a :class:`MaskedWindows` per part; held out: every token in one window, masks
    fixed), restored by a language Perceiver (:func:`~omniperceiver.zoo.language.language_perceiver`) of the
    recipe's trunk, or fine-tuned from a published or saved one. Baseline: a unigram model of bytes.
    ``predict`` fills the ``[MASK]`` / ``[MASK*N]`` spans of text files."""

    metric = "masked_bits_per_byte"
    module = MaskedLanguageModel
    trunk = MaskedLMTrunk

    def unpack(self, batch: tuple[Tensor, ...]) -> tuple[Inputs, Masks, Tensor]:
        """(corrupted ids (B, L), mask (B, L), targets (B, L, 2): original ids, bytes scored (0: not masked))."""
        inputs, mask, targets, scored = batch
        return inputs, mask, torch.stack([targets, scored], dim=-1)

    def splits(self, *args: Any, **kwargs: Any) -> Splits:
        """The dataset's windows of ids, masked: training windows anew each epoch, held-out windows each
        holding its own tokens once."""
        splits = super().splits(*args, **kwargs)
        held_out = {
            part: MaskedWindows(getattr(splits, part).with_stride(splits.train.length), seed=splits.train.seed)
            for part in ("validation", "test")
        }
        train = MaskedWindows(splits.train, seed=splits.train.seed)
        return dataclasses.replace(splits, train=train, **held_out)

    def evaluation_splits(self, splits: Splits, model: nn.Module) -> Splits:
        """The held-out windows as they are (not cut to a Perceiver AR's latents)."""
        return splits

    def input_channels(self, splits: Splits) -> int:
        return self.input.channels

    def model_config(self, splits: Splits, trunk: MaskedLMTrunk, settings: TrainingSettings) -> PerceiverIOConfig:
        """The language Perceiver's structure at the trunk's size (attention at full width: no narrower query,
        key and value channels than the published model's) over the windows' ids."""
        encoder = dataclasses.asdict(self.encoder(splits, trunk, settings))
        del encoder["input_channels"]
        return language_perceiver(
            channels=self.input.channels,
            max_length=self.inputs_per_example(splits),
            vocab_size=splits.train.tokenizer.vocab_size,
            ngram=self.input.ngram,
            embedding_init_std=self.input.embedding_init_std,
            queries=trunk.queries,
            decoder_heads=trunk.num_cross_attention_heads,
            decoder_qk_channels=None,
            **encoder,
        )

    def fit(self, config: PerceiverIOConfig, splits: Splits) -> tuple[PerceiverIOConfig, tuple[str, ...]]:
        """A masked language model (a Perceiver IO reading text with tied token outputs) of the tokenizer's
        vocabulary that reads windows this long, as it is."""
        text = isinstance(config, PerceiverIOConfig) and isinstance(config.input, TextInputConfig)
        if not text or not isinstance(config.output, TiedTokenOutputConfig):
            raise ValueError(f"{self.name} trains a masked language model (a language Perceiver), not this model")
        vocab_size, length = splits.train.tokenizer.vocab_size, self.inputs_per_example(splits)
        if config.input.vocab_size != vocab_size:
            raise ValueError(
                f"{self.name} reads {vocab_size} ids (the recipe's input); the model reads {config.input.vocab_size}"
            )
        if config.input.max_length < length:
            raise ValueError(f"the model reads at most {config.input.max_length} ids; this data needs {length}")
        return config, ()

    def baseline(self, splits: Splits) -> float:
        return unigram_bits_per_byte(splits.train.data, splits.test.data)

    def pictures(self, run_dir: Path, module: MaskedLanguageModel, splits: Splits) -> list[Path]:
        """curves.png, and samples.txt: the test bits per masked byte beside the unigram's, then test windows
        as masked and as the model filled them."""
        paths = [run_dir / "curves.png", run_dir / "samples.txt"]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        model, tokenizer = module.model.eval(), splits.test.tokenizer
        scores = {
            "this model": pictures.last_value(run_dir / "logs" / "metrics.csv", f"test_{self.metric}"),
            "unigram of the training bytes": self.baseline(splits),
        }
        lines = [f"bits per masked byte over the {len(splits.test.data):,} test bytes (15% masked):"]
        lines += [f"  {bits:6.3f}  {name}" for name, bits in scores.items()]
        step = max(1, len(splits.test) // SAMPLES)
        for index in range(0, len(splits.test), step)[:SAMPLES]:
            inputs, mask, targets, scored = (t[None] for t in splits.test[index])
            with torch.inference_mode():
                logits = model(inputs, mask, output_indices=torch.arange(inputs.shape[1]))
                guesses = logits[..., tokenizer.OFFSET :].argmax(-1) + tokenizer.OFFSET  # (no special ids)
            filled = torch.where(scored > 0, guesses, targets)
            lines.append("")
            for name, ids in {"text": targets, "masked": inputs, "filled": filled}.items():
                lines.append(f"{name:>8}: {tokenizer.decode(ids[mask], skip_special_tokens=False)!r}")
        text = "".join(f"{line}\n" for line in lines)
        atomic_write(paths[1], lambda file: file.write(text.encode()))
        return paths

    def predict(
        self, model: nn.Module, items: Sequence[str], top: int, output_dir: Path, data: dict[str, Any]
    ) -> Iterator[Prediction]:
        """Each text file with its ``[MASK]`` (one token) and ``[MASK*N]`` (N tokens) spans filled."""
        tokenizer = self.input.saved()
        for path in items:
            try:
                yield path, "  " + fill_masks(model.eval(), Path(path).read_text(encoding="utf-8"), tokenizer), ""
            except (OSError, ValueError, UnicodeDecodeError) as error:
                yield path, None, one_line(error)
