"""Several modalities as one input: each adapted, padded to a common width, optionally masked, concatenated."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from omniperceiver.core.adapter import InputAdapter, InputAdapterConfig
from omniperceiver.core.config import Config, require, require_positive


def check_modality_names(names: list[str]) -> None:
    require(len(names) > 0 and len(set(names)) == len(names), "modalities", names, "one or more distinct names")


class ModalityPadding(nn.ParameterDict):
    """A trainable vector per modality that pads its elements (B, M_i, C_i) to the common width C = max C_i +
    ``min_padding``, so that the model can tell the modalities apart (inputs and multimodal queries)."""

    def __init__(self, channels: dict[str, int], min_padding: int) -> None:
        width = max(channels.values()) + min_padding
        super().__init__({name: nn.Parameter(torch.randn(width - c) * 0.02) for name, c in channels.items()})
        self.num_channels = width

    def pad(self, name: str, x: Tensor) -> Tensor:
        return torch.cat([x, self[name].to(x.dtype).expand(*x.shape[:-1], -1)], dim=-1)


@dataclasses.dataclass(frozen=True)
class ModalityInputConfig(Config):
    """One modality: its ``name`` (the key of the input dict), its ``adapter``, and the probability that each
    of its elements is replaced by the modality's trainable mask token (in training and inference, as in the
    reference; 1.0 hides the modality entirely, so the model must infer it)."""

    name: str
    adapter: InputAdapterConfig
    mask_probability: float = 0.0

    def __post_init__(self) -> None:
        require(0.0 <= self.mask_probability <= 1.0, "mask_probability", self.mask_probability, "a probability")


class MultimodalInputAdapter(InputAdapter):
    """A dict of modality tensors -> (B, M_1 + ... + M_k, C) in the configured order, each modality padded
    by :class:`ModalityPadding`."""

    def __init__(self, config: MultimodalInputConfig) -> None:
        super().__init__()
        self.config = c = config
        self.modalities = nn.ModuleDict({m.name: m.adapter.build() for m in c.modalities})
        self.padding = ModalityPadding({m.name: m.adapter.num_channels for m in c.modalities}, c.min_padding)
        self.mask_token = nn.ParameterDict(
            {m.name: nn.Parameter(torch.randn(c.num_channels) * 0.02) for m in c.modalities}
        )

    def forward(self, x: dict[str, Tensor], mask: dict[str, Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
        names = [m.name for m in self.config.modalities]
        if not isinstance(x, dict) or sorted(x) != sorted(names):
            got = sorted(x) if isinstance(x, dict) else type(x).__name__
            raise ValueError(f"expected a dict with the modalities {names}, got {got}")
        unknown = sorted(set(mask or {}) - set(names))
        if unknown:
            raise ValueError(f"masks given for unknown modalities {unknown}; modalities are {names}")
        parts, masks = [], []
        for modality in self.config.modalities:
            inputs, modality_mask = self.modalities[modality.name](x[modality.name], (mask or {}).get(modality.name))
            b, m, _ = inputs.shape
            padded = self.padding.pad(modality.name, inputs)
            if modality.mask_probability > 0:
                hidden = torch.rand(b, m, 1, device=inputs.device) < modality.mask_probability
                padded = torch.where(hidden, self.mask_token[modality.name].to(padded.dtype), padded)
            parts.append(padded)
            masks.append(
                modality_mask if modality_mask is not None else torch.ones(b, m, dtype=torch.bool, device=inputs.device)
            )
        return torch.cat(parts, dim=1), (torch.cat(masks, dim=1) if mask else None)


@dataclasses.dataclass(frozen=True)
class MultimodalInputConfig(InputAdapterConfig):
    """``modalities`` in concatenation order; every element is padded to max channels + ``min_padding``."""

    modalities: tuple[ModalityInputConfig, ...]
    min_padding: int = 2

    def __post_init__(self) -> None:
        check_modality_names([m.name for m in self.modalities])
        require_positive(min_padding=self.min_padding)

    @property
    def num_channels(self) -> int:
        return max(m.adapter.num_channels for m in self.modalities) + self.min_padding

    def example(
        self, batch: int, length: int | None = None, generator: torch.Generator | None = None
    ) -> tuple[dict[str, Tensor], None]:
        return {m.name: m.adapter.example(batch, generator=generator)[0] for m in self.modalities}, None

    def build(self) -> MultimodalInputAdapter:
        return MultimodalInputAdapter(self)
