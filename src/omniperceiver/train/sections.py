"""The typed sections of a recipe that every task shares: the model it builds (a trunk, a published model by
zoo name, or weights to start from) and the training settings."""

from __future__ import annotations

import dataclasses
from typing import Any

from omniperceiver.core.config import (
    Config,
    require,
    require_optional_positive,
    require_positive,
    require_positive_finite,
)


@dataclasses.dataclass(frozen=True)
class Trunk(Config):
    """A Perceiver IO trunk: latents, cross-attention and the latent stack (the input and output around it
    come from the task and its ``input:`` section); ``cross_attend_every = k`` cross-attends to the inputs
    again before every k-th of the ``num_blocks`` blocks (the original Perceiver's iterative attention, one
    shared cross-attention after the first); ``latent_init_std``: the latents' initial standard deviation;
    ``cross_attention_qk_gain``: the cross-attention's initial query and key weights, as a multiple of PyTorch's
    default initialization (:class:`~omniperceiver.core.encoder.EncoderConfig`)."""

    num_latents: int = 32
    latent_channels: int = 64
    num_cross_attention_heads: int = 1
    num_blocks: int = 1
    num_self_attends_per_block: int = 3
    num_self_attention_heads: int = 4
    widening_factor: int = 2
    dropout: float = 0.0
    cross_attend_every: int | None = None
    latent_init_std: float = 0.02
    cross_attention_qk_gain: float = 1.0

    def __post_init__(self) -> None:
        require_optional_positive(cross_attend_every=self.cross_attend_every)
        require_positive_finite(
            latent_init_std=self.latent_init_std, cross_attention_qk_gain=self.cross_attention_qk_gain
        )
        require_positive(
            num_latents=self.num_latents,
            latent_channels=self.latent_channels,
            num_cross_attention_heads=self.num_cross_attention_heads,
            num_blocks=self.num_blocks,
            num_self_attends_per_block=self.num_self_attends_per_block,
            num_self_attention_heads=self.num_self_attention_heads,
            widening_factor=self.widening_factor,
        )


@dataclasses.dataclass(frozen=True)
class ARTrunk(Config):
    """A Perceiver AR trunk: N latents (the last N positions) of ``latent_channels``, one causal
    cross-attention and ``num_layers`` causal self-attention layers."""

    num_latents: int = 64
    latent_channels: int = 128
    num_heads: int = 4
    num_cross_attention_heads: int = 1
    num_layers: int = 3
    widening_factor: int = 2
    dropout: float = 0.0

    def __post_init__(self) -> None:
        require_positive(
            num_latents=self.num_latents,
            latent_channels=self.latent_channels,
            num_heads=self.num_heads,
            num_cross_attention_heads=self.num_cross_attention_heads,
            num_layers=self.num_layers,
            widening_factor=self.widening_factor,
        )


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """A published model's architecture by zoo name (``reduced``: its small version), with ``overrides`` of
    its constructor's arguments; the task fits its input and output to the data. Written in a recipe as
    ``model: {zoo: NAME, reduced: true, num_latents: 64}``."""

    zoo: str
    reduced: bool = False
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def config(self) -> Config:
        """The zoo config, or a ValueError naming the argument that the zoo model does not take."""
        from omniperceiver import zoo

        try:
            return zoo.config(self.zoo, reduced=self.reduced, **self.overrides)
        except TypeError as error:
            raise ValueError(f"model: {self.zoo} takes no such argument ({error})") from None

    def to_dict(self) -> dict[str, Any]:
        return {"zoo": self.zoo, "reduced": self.reduced, **{k: _plain(v) for k, v in self.overrides.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> ZooModel:
        data = dict(data)
        name, reduced = data.pop("zoo"), data.pop("reduced", False)
        from omniperceiver import zoo

        known = sorted(zoo.PUBLISHED)
        require(isinstance(name, str) and name in known, f"{where}.zoo", name, f"one of {known}")
        require(isinstance(reduced, bool), f"{where}.reduced", reduced, "true or false")
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        model = cls(name, reduced, overrides)
        model.config()  # a bad override is an error now, not after the data loaded
        return model


def _plain(value: Any) -> Any:
    """A value YAML's safe dumper writes (tuples as lists)."""
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


STRATEGIES = ("auto", "ddp", "fsdp")


@dataclasses.dataclass(frozen=True)
class TrainingSettings(Config):
    """How to train. ``batch_size`` is the global batch: each of ``devices`` x ``num_nodes`` processes takes
    its share. ``augment`` applies the task's training augmentation, if it has one (random shifts of MNIST
    digits). ``freeze`` names module groups that do not train (``input_adapter``, ``encoder``,
    ``encoder.cross_attention``, ...); ``learning_rates`` gives module groups their own peak rate. A checkpoint
    is written at the end of every epoch, every ``checkpoint_every_minutes`` of training (0: never by time) and
    every ``checkpoint_every_n_steps`` optimizer steps (0: never by steps). ``batches_per_epoch`` makes an
    epoch that many batches of the shuffled training split (a new draw each epoch; 0: the whole split).
    ``label_fraction`` trains on that fraction of each class's training examples (drawn with ``seed``: learning
    from few labels); validation and test stay whole. ``num_workers`` worker processes per training process read
    and decode the examples of datasets read from files (the folder datasets); the order is the same with any
    number."""

    epochs: int = 30
    batches_per_epoch: int = 0
    batch_size: int = 32
    label_fraction: float = 1.0
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    freeze: tuple[str, ...] = ()
    learning_rates: dict[str, float] = dataclasses.field(default_factory=dict)
    precision: str = "32-true"
    accumulate_grad_batches: int = 1
    activation_checkpointing: bool = False
    augment: bool = True
    strategy: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    checkpoint_every_n_steps: int = 0
    checkpoint_every_minutes: float = 10.0
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        require_positive(
            epochs=self.epochs,
            batch_size=self.batch_size,
            accumulate_grad_batches=self.accumulate_grad_batches,
            devices=self.devices,
            num_nodes=self.num_nodes,
        )
        require(self.learning_rate > 0, "learning_rate", self.learning_rate, "a positive number")
        require(0 < self.label_fraction <= 1, "label_fraction", self.label_fraction, "a fraction in (0, 1]")
        for group, rate in self.learning_rates.items():
            require(rate > 0, f"learning_rates.{group}", rate, "a positive number")
        require(self.precision in ("32-true", "bf16-mixed"), "precision", self.precision, "'32-true' or 'bf16-mixed'")
        require(self.strategy in STRATEGIES, "strategy", self.strategy, f"one of {STRATEGIES}")
        require(self.num_workers >= 0, "num_workers", self.num_workers, ">= 0 (0: read in the training process)")
        require(self.batches_per_epoch >= 0, "batches_per_epoch", self.batches_per_epoch, ">= 0 (0: the whole split)")
        require(self.checkpoint_every_n_steps >= 0, "checkpoint_every_n_steps", self.checkpoint_every_n_steps, ">= 0")
        require(self.checkpoint_every_minutes >= 0, "checkpoint_every_minutes", self.checkpoint_every_minutes, ">= 0")
        require(
            self.batch_size % self.world_size == 0,
            "batch_size",
            self.batch_size,
            f"a multiple of devices x num_nodes ({self.world_size}), the number of processes sharing each batch",
        )

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes
