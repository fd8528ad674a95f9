"""Per-token classification: one query per input element (the element itself, as the segmentation and the
masked-LM decoders) decodes that token's class logits (B, L, K); accuracy over the labelled tokens ([CLS],
[SEP] and padding carry -1 and are not scored), higher is better."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from omniperceiver.adapters.text import ByteTokenizer, TextInputConfig
from omniperceiver.core.queries import InputQueryConfig
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.data.splits import Splits, require_module
from omniperceiver.files import atomic_write
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.classification import TokenClassificationOutputConfig
from omniperceiver.train import pictures
from omniperceiver.train.sections import TrainingSettings, Trunk
from omniperceiver.train.tasks.base import element_decoder
from omniperceiver.train.tasks.classification import BASELINE_ROWS, ClassificationTask, Classifier

UNLABELLED = -1
NEIGHBOURHOOD = 8  # bytes on each side of a token the baseline counts
SAMPLES = 4  # test texts shown in samples.txt


class TokenClassifier(Classifier):
    """Cross-entropy, accuracy and the confusion matrix over the labelled tokens of logits (B, L, K)."""

    def predict(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """Logits (T, K) of the T labelled tokens of the batch, and their labels (T,)."""
        logits, target = super().predict(batch)
        labelled = target != UNLABELLED
        return logits[labelled], target[labelled]


@dataclasses.dataclass(frozen=True)
class TokenClassificationTask(ClassificationTask):
    """Token ids (B, L) labelled per token (B, L); baseline: logistic regression on the bytes around each
    token. Fine-tunes a masked language model whose queries are its inputs with its decoder kept (a new
    output layer), any other text Perceiver IO with a new decoder."""

    module = TokenClassifier

    def model_config(self, splits: Splits, trunk: Trunk, settings: TrainingSettings) -> PerceiverIOConfig:
        adapter = self.input.adapter(self.inputs(rows_of(splits.train, 1)))
        encoder = self.encoder(splits, trunk, settings)
        decoder = element_decoder(adapter.num_channels, encoder, len(splits.classes))
        return PerceiverIOConfig(adapter, encoder, decoder, self._output(splits))

    def _output(self, splits: Splits) -> TokenClassificationOutputConfig:
        return TokenClassificationOutputConfig(labels=splits.classes)

    def fit(self, config: PerceiverIOConfig, splits: Splits) -> tuple[PerceiverIOConfig, tuple[str, ...]]:
        """The model's input fitted to the data; a decoder with input queries (a masked language model's) kept
        with a new output layer unless its classes are the dataset's; any other gets a new decoder."""
        if not isinstance(config, PerceiverIOConfig) or not isinstance(config.input, TextInputConfig):
            raise ValueError(f"{self.name} needs a Perceiver IO that reads text, not this model")
        config = self.fit_input(config, splits)
        output = self._output(splits)
        if not isinstance(config.decoder.queries, InputQueryConfig):
            decoder = element_decoder(config.input.num_channels, config.encoder, len(splits.classes))
            return dataclasses.replace(config, decoder=decoder, output=output), ("decoder", "output_adapter")
        if config.output == output:
            return config, ()
        decoder = dataclasses.replace(config.decoder, output_channels=len(splits.classes))
        return dataclasses.replace(config, decoder=decoder, output=output), ("decoder.projection", "output_adapter")

    def baseline(self, splits: Splits) -> float:
        """Test accuracy of logistic regression on the counts of each byte within 8 of a token (itself
        included), on 20,000 labelled training tokens."""
        linear_model = require_module("sklearn.linear_model", "pip install scikit-learn")

        def neighbourhoods(rows: tuple[Tensor, ...]) -> tuple[np.ndarray, np.ndarray]:
            ids, _, labels = rows
            counts = F.one_hot(ids, ByteTokenizer.vocab_size).float().transpose(1, 2)  # (B, V, L)
            window = torch.ones(ByteTokenizer.vocab_size, 1, 2 * NEIGHBOURHOOD + 1)
            near = F.conv1d(counts, window, padding=NEIGHBOURHOOD, groups=ByteTokenizer.vocab_size)
            labelled = labels != UNLABELLED
            return near.transpose(1, 2)[labelled].numpy(), labels[labelled].numpy()

        train_x, train_y = neighbourhoods(rows_of(splits.train))
        chosen = np.random.default_rng(0).choice(len(train_x), min(BASELINE_ROWS, len(train_x)), replace=False)
        model = linear_model.LogisticRegression(max_iter=1000).fit(train_x[chosen], train_y[chosen])
        test_x, test_y = neighbourhoods(rows_of(splits.test))
        return float(np.mean(model.predict(test_x) == test_y))

    def pictures(self, run_dir: Path, module: TokenClassifier, splits: Splits) -> list[Path]:
        """curves.png, confusion.png and samples.txt: test texts with each run of tokens of one predicted class
        marked, beside the truth."""
        paths = [run_dir / name for name in ("curves.png", "confusion.png", "samples.txt")]
        pictures.curves(run_dir / "logs" / "metrics.csv", self.metric, paths[0])
        pictures.confusion(module.test_confusion.cpu().numpy(), splits.classes, paths[1])
        ids, mask, labels = rows_of(splits.test, SAMPLES)
        with torch.inference_mode():
            predicted = module.model.eval()(ids, mask).argmax(-1)
        lines = []
        for row in range(len(ids)):
            for name, classes in (("truth", labels[row]), ("model", predicted[row])):
                lines.append(f"{name:>6}: {marked(ids[row], classes, labels[row] != UNLABELLED, splits.classes)}")
            lines.append("")
        atomic_write(paths[2], lambda file: file.write("\n".join(lines).encode()))
        return paths

    def describe(self, outputs: Tensor, model: nn.Module, top: int, path: Path, output_dir: Path) -> str:
        """The text with each run of tokens of one predicted class marked."""
        ids, _ = self.input.read(path, model.config.input, {})
        real = ids[0] >= ByteTokenizer.OFFSET
        return "  " + marked(ids[0], outputs[0].argmax(-1), real, model.config.output.labels)


def marked(ids: Tensor, classes: Tensor, labelled: Tensor, names: tuple[str, ...]) -> str:
    """The labelled tokens of ``ids`` (L,) as text, each run of one class in ``classes`` (L,) preceded by its
    name: "[english] Who's there? [german] Wer da?"."""
    tokenizer, runs, start = ByteTokenizer(), [], None
    positions = labelled.nonzero()[:, 0].tolist()
    for k, position in enumerate(positions):
        if start is None:
            start = position
        if k + 1 == len(positions) or classes[positions[k + 1]] != classes[position]:
            runs.append(f"[{names[int(classes[position])]}] {tokenizer.decode(ids[start : position + 1])!r}")
            start = None
    return " ".join(runs)
