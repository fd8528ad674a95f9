"""What a task kind owns: :class:`Task` (its dataset, the typed sections of its recipe, the model it builds, its
baseline, pictures and ``predict`` on files) and :class:`TaskModule` (its loss and metric under Lightning)."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import typing
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import lightning
import torch
import torchmetrics
from torch import Tensor, nn
from torch.optim.lr_scheduler import OneCycleLR

from omniperceiver.core.config import Config
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.queries import InputQueryConfig
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.data.shards import is_shard_folder, shard_splits
from omniperceiver.data.splits import Splits
from omniperceiver.errors import one_line
from omniperceiver.train.inputs import Batch, Inputs, Masks
from omniperceiver.train.sections import TrainingSettings, Trunk

PARTS = ("train", "val", "test")
# (label of an input, its result or None, the error message)
Prediction = tuple[str, str | None, str]


@dataclasses.dataclass(frozen=True)
class Task:
    """A dataset and how one kind of task models it. ``input`` is the recipe's typed ``input:`` section (the
    registered default until a recipe sets it); ``tensors`` picks the dataset tensors it reads (default: all
    but the last, the targets); ``augment`` randomly alters a training batch of the dataset's tensors. A task
    that ``reads_folder`` loads a user's folder named by the recipe's ``data_path`` (and its validation and test
    parts from ``validation_path`` and ``test_path`` where given).

    A kind subclasses this and sets ``metric`` (its direction in ``lower_is_better``), ``module`` and the
    recipe's ``model`` section type ``trunk``."""

    name: str
    modality: str
    load: Callable[..., Splits]
    input: Config | None
    tensors: tuple[int, ...] | None = None
    augment: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]] | None = None
    reads_folder: bool = False

    metric: ClassVar[str]
    lower_is_better: ClassVar[bool] = False
    module: ClassVar[type[TaskModule]]
    trunk: ClassVar[type[Config]] = Trunk

    def splits(
        self,
        data_path: str | None,
        validation_path: str | None = None,
        test_path: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Splits:
        """The task's data: its dataset, or for a folder task the user's folder at ``data_path``, with the
        user's own validation and test parts where ``validation_path`` or ``test_path`` give them (else they are
        cut from ``data_path``'s data), read with the loader's ``options`` (see :meth:`data_options`); or the
        shards that ``omniperceiver shards`` wrote from such a folder into ``data_path``."""
        if self.reads_folder != (data_path is not None):
            needs = "a folder: set data_path" if self.reads_folder else "no data_path (its data ships with it)"
            raise ValueError(f"dataset={self.name!r} takes {needs}; got data_path={data_path!r}")
        if not self.reads_folder:
            if validation_path is not None or test_path is not None or options:
                raise ValueError(f"dataset={self.name!r} ships its own splits: remove validation_path, test_path, data")
            return self.load()
        if is_shard_folder(data_path):
            if validation_path is not None or test_path is not None or options:
                raise ValueError(
                    f"{data_path} holds shards, whose parts and options were fixed when they were written:"
                    " remove validation_path, test_path, data"
                )
            return shard_splits(data_path, self.name)
        return self.load(data_path, validation=validation_path, test=test_path, **(options or {}))

    def data_options(self) -> dict[str, Any]:
        """The options a folder task's loader takes from a recipe's ``data:`` section, and their type hints
        (e.g. image-folder's ``size``); the data paths and the seed are set elsewhere."""
        if not self.reads_folder:
            return {}
        load = self.load.func if isinstance(self.load, functools.partial) else self.load
        bound = self.load.keywords if isinstance(self.load, functools.partial) else {}
        hints = typing.get_type_hints(load)
        parameters = inspect.signature(load).parameters.values()
        fixed = {"seed", "validation", "test", *bound}
        return {p.name: hints[p.name] for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in fixed}

    def reading_as(self, model_dir: Path) -> Task:
        """This task reading its data as the model saved in ``model_dir`` was trained to (the same, but for
        tasks that save how they read beside the model: a tokenizer)."""
        return self

    def save(self, model_dir: Path, splits: Splits) -> None:
        """Write what the model saved in ``model_dir`` needs beside its weights to read data (nothing, but for
        a tokenizer)."""

    def evaluation_splits(self, splits: Splits, model: nn.Module) -> Splits:
        """The splits as ``model`` is validated and tested on them (the same, but for tasks whose held-out
        examples depend on the model)."""
        return splits

    def inputs(self, batch: tuple[Tensor, ...]) -> Batch:
        """The dataset tensors the input reads."""
        return batch[:-1] if self.tensors is None else tuple(batch[i] for i in self.tensors)

    def unpack(self, batch: tuple[Tensor, ...]) -> tuple[Inputs, Masks, Tensor]:
        """(x, mask, target) of a batch of the dataset's tensors."""
        return (*self.input.unpack(self.inputs(batch)), batch[-1])

    def model_config(self, splits: Splits, trunk: Config, settings: TrainingSettings) -> Config:
        """The model this task builds from a trunk of the recipe's ``model`` section."""
        raise NotImplementedError

    def fit(self, config: Config, splits: Splits) -> tuple[Config, tuple[str, ...]]:
        """A loaded or published model's config made to do this task on this data, and the prefixes of the
        weights that must start anew (a replaced head) although their shapes may match."""
        raise NotImplementedError

    def baseline(self, splits: Splits) -> float:
        """The test metric of a simple model measured on the same split."""
        raise NotImplementedError

    def pictures(self, run_dir: Path, module: TaskModule, splits: Splits) -> list[Path]:
        """Draw the run's pictures into ``run_dir``; returns their paths."""
        raise NotImplementedError

    def predict(
        self, model: nn.Module, items: Sequence[str], top: int, output_dir: Path, data: dict[str, Any]
    ) -> Iterator[Prediction]:
        """Run ``model`` on each file of ``items``, read as its loader with the ``data`` options read the test
        part, one result (or error) per input."""
        self.input.check(model.config.input)
        for path in items:
            try:
                x, mask = self.input.read(Path(path), model.config.input, data)
                with torch.inference_mode():
                    outputs = model(x, mask)
                yield path, self.describe(outputs, model, top, Path(path), output_dir), ""
            except (OSError, ValueError) as error:
                yield path, None, one_line(error)

    def describe(self, outputs: Tensor, model: nn.Module, top: int, path: Path, output_dir: Path) -> str:
        """The printed result of one input's outputs."""
        raise NotImplementedError

    def inputs_per_example(self, splits: Splits) -> int:
        """M, the number of input elements the encoder cross-attends to per example."""
        x, mask, _ = self.unpack(rows_of(splits.train, 1))
        inputs, _ = self.input.adapter(self.inputs(rows_of(splits.train, 1))).build()(x, mask)
        return inputs.shape[1]

    def encoder(self, splits: Splits, trunk: Trunk, settings: TrainingSettings) -> EncoderConfig:
        """The Perceiver IO encoder of ``trunk`` over the input adapter's channels."""
        return EncoderConfig(
            input_channels=self.input_channels(splits),
            num_latents=trunk.num_latents,
            latent_channels=trunk.latent_channels,
            num_cross_attention_heads=trunk.num_cross_attention_heads,
            cross_attention_widening_factor=trunk.widening_factor,
            num_blocks=trunk.num_blocks,
            num_self_attends_per_block=trunk.num_self_attends_per_block,
            num_self_attention_heads=trunk.num_self_attention_heads,
            self_attention_widening_factor=trunk.widening_factor,
            dropout=trunk.dropout,
            cross_attend_every=trunk.cross_attend_every,
            latent_init_std=trunk.latent_init_std,
            cross_attention_qk_gain=trunk.cross_attention_qk_gain,
            activation_checkpointing=settings.activation_checkpointing,
        )

    def input_channels(self, splits: Splits) -> int:
        """C, the channels of each input element the task's adapter makes."""
        return self.input.adapter(self.inputs(rows_of(splits.train, 1))).num_channels

    def fit_input(self, config: Any, splits: Splits) -> Any:
        """``config`` (a Perceiver IO config) with its input adapter fitted to the data."""
        return dataclasses.replace(config, input=self.input.fit(config.input, self.inputs(rows_of(splits.train, 1))))


def element_decoder(channels: int, encoder: EncoderConfig, num_classes: int) -> DecoderConfig:
    """A decoder of one query per input element, the element itself (C = ``channels``), that decodes
    ``num_classes`` logits for each from the ``encoder``'s latents; the query is added back after the
    attention, so that each element's own features reach its MLP beside what it attended to."""
    return DecoderConfig(
        queries=InputQueryConfig(channels),
        latent_channels=encoder.latent_channels,
        output_channels=num_classes,
        num_heads=encoder.num_cross_attention_heads,
        widening_factor=encoder.cross_attention_widening_factor,
        use_query_residual=True,
    )


class NonFiniteError(ValueError):
    """Training met a NaN or infinity at optimizer ``step`` (counted from 1); it stops."""

    def __init__(self, step: int, what: str) -> None:
        super().__init__(
            f"training stopped at optimizer step {step}: {what}; neither a model nor a checkpoint of non-finite"
            " weights was saved (a lower training.learning_rate may help)"
        )


DECAYING = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # their weights decay; nothing else does


def parameter_groups(model: nn.Module, settings: TrainingSettings) -> list[dict[str, Any]]:
    """AdamW groups of the trainable parameters: per module group of ``settings.learning_rates`` (a module
    path such as ``encoder`` or ``decoder.queries``) and the rest, each split into the weights of Linear and
    convolution layers, which decay, and everything else (biases, norms, latents, position embeddings,
    queries), which does not. Frozen parameters (``settings.freeze``) are in no group."""
    decaying = {id(m.weight) for m in model.modules() if isinstance(m, DECAYING)}
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = next((g for g in settings.learning_rates if _within(name, g)), "")
        groups.setdefault((group, id(parameter) in decaying), []).append(parameter)
    return [
        {
            "params": parameters,
            "lr": settings.learning_rates.get(group, settings.learning_rate),
            "weight_decay": settings.weight_decay if decays else 0.0,
            "name": f"{group or 'rest'}{'' if decays else ' (no decay)'}",
        }
        for (group, decays), parameters in groups.items()
    ]


def _within(name: str, group: str) -> bool:
    return name == group or name.startswith(group + ".")


def freeze(model: nn.Module, groups: Sequence[str]) -> None:
    """Stop training the parameters under each module path of ``groups``; an unknown path is an error naming
    the model's top-level groups."""
    modules = dict(model.named_modules())
    for group in groups:
        if group not in modules or not group:
            known = [name for name in modules if name and "." not in name]
            raise ValueError(f"training.freeze: {group!r} is no module of the model; its groups are {known}")
        modules[group].requires_grad_(False)


class TaskModule(lightning.LightningModule):
    """Trains ``model`` on batches of the task's tensors with AdamW (:func:`parameter_groups`) and a one-cycle
    schedule stepped per optimizer step; logs ``{part}_loss`` and ``{part}_{metric}`` per epoch."""

    def __init__(self, model: nn.Module, task: Task, settings: TrainingSettings) -> None:
        super().__init__()
        self.model, self.task, self.settings = model, task, settings
        self.metric_name = task.metric
        self.metrics = nn.ModuleDict({f"{part}_{self.metric_name}": self.new_metric() for part in PARTS})
        modules = dict(model.named_modules())
        self.frozen = [modules[group] for group in settings.freeze]  # a plain list: no second registration

    def on_train_batch_start(self, batch, batch_index) -> None:
        """Frozen groups (``settings.freeze``) run in eval mode: their BatchNorm statistics and dropout stay as
        loaded, so a frozen group computes exactly what it did (Lightning puts the whole model in train mode)."""
        for module in self.frozen:
            module.eval()

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
        optimizer = torch.optim.AdamW(parameter_groups(self.model, self.settings))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self._one_cycle(optimizer), "interval": "step"}}

    def _one_cycle(self, optimizer: torch.optim.Optimizer, *, step: int = 0) -> OneCycleLR:
        """The one-cycle schedule over all of the run's optimizer steps, each group peaking at its rate, at
        ``step``."""
        total = self.trainer.estimated_stepping_batches
        warmup = 0.1 if total != 10 else 0.15  # OneCycleLR divides by zero where warmup * total_steps == 1
        peaks = [group["lr"] if step == 0 else group["max_lr"] for group in optimizer.param_groups]
        return OneCycleLR(optimizer, max_lr=peaks, total_steps=total, pct_start=warmup, last_epoch=step - 1)

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
