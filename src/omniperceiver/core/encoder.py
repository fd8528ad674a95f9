"""The Perceiver encoder: trainable latents cross-attend to the inputs, then a latent transformer."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from omniperceiver.core.attention import key_padding_mask
from omniperceiver.core.blocks import CrossAttentionBlock, SelfAttentionBlock
from omniperceiver.core.config import (
    Config,
    check_heads,
    require,
    require_optional_positive,
    require_positive,
    require_positive_finite,
)


@dataclasses.dataclass(frozen=True)
class EncoderConfig(Config):
    """Perceiver encoder: N = ``num_latents`` latents of D = ``latent_channels`` over C = ``input_channels``.

    The latent transformer applies ``num_self_attends_per_block`` self-attention layers ``num_blocks`` times.
    With ``share_latent_blocks`` every block reuses the same layers (the Perceiver's weight sharing), so the
    parameter count does not grow with ``num_blocks``. ``cross_attend_every = k`` cross-attends to the inputs
    again before blocks k, 2k, ... (the original Perceiver); the first cross-attention has its own weights and
    the later ones share one module unless ``share_cross_attention`` is off. ``None`` cross-attends once.
    The latents start normal with standard deviation ``latent_init_std``, cut at +-2: with the published
    0.02 they all read nearly the same average of the inputs at first and differ only by a small residual; a
    Perceiver that reads single pixels learns more, and more reliably over seeds, from 1.0 (README).
    ``cross_attention_qk_gain`` multiplies the cross-attentions' initial query and key weights (PyTorch's
    default initialization at 1), so the attention scores start at its square: over many inputs, scores of the
    default size give nearly uniform maps, every latent reading about the same average; larger ones start
    each latent's heads on their own parts of the input (single pixels: 3, README).
    """

    input_channels: int
    num_latents: int = 256
    latent_channels: int = 512
    num_cross_attention_heads: int = 1
    cross_attention_qk_channels: int | None = None
    cross_attention_v_channels: int | None = None
    cross_attention_widening_factor: int = 1
    use_query_residual: bool = True
    num_blocks: int = 1
    num_self_attends_per_block: int = 6
    num_self_attention_heads: int = 8
    self_attention_qk_channels: int | None = None
    self_attention_v_channels: int | None = None
    self_attention_widening_factor: int = 1
    cross_attend_every: int | None = None
    share_cross_attention: bool = True
    share_latent_blocks: bool = True
    dropout: float = 0.0
    activation_checkpointing: bool = False
    latent_init_std: float = 0.02
    cross_attention_qk_gain: float = 1.0

    def __post_init__(self) -> None:
        require_positive_finite(
            latent_init_std=self.latent_init_std, cross_attention_qk_gain=self.cross_attention_qk_gain
        )
        require_positive(
            input_channels=self.input_channels,
            num_latents=self.num_latents,
            latent_channels=self.latent_channels,
            num_cross_attention_heads=self.num_cross_attention_heads,
            cross_attention_widening_factor=self.cross_attention_widening_factor,
            num_blocks=self.num_blocks,
            num_self_attends_per_block=self.num_self_attends_per_block,
            num_self_attention_heads=self.num_self_attention_heads,
            self_attention_widening_factor=self.self_attention_widening_factor,
        )
        require_optional_positive(
            cross_attention_qk_channels=self.cross_attention_qk_channels,
            cross_attention_v_channels=self.cross_attention_v_channels,
            self_attention_qk_channels=self.self_attention_qk_channels,
            self_attention_v_channels=self.self_attention_v_channels,
            cross_attend_every=self.cross_attend_every,
        )
        require(0.0 <= self.dropout < 1.0, "dropout", self.dropout, "a probability in [0, 1)")
        cross_qk = self.cross_attention_qk_channels or self.input_channels
        check_heads(
            "num_cross_attention_heads",
            self.num_cross_attention_heads,
            cross_attention_qk_channels=cross_qk,
            cross_attention_v_channels=self.cross_attention_v_channels or cross_qk,
        )
        self_qk = self.self_attention_qk_channels or self.latent_channels
        check_heads(
            "num_self_attention_heads",
            self.num_self_attention_heads,
            self_attention_qk_channels=self_qk,
            self_attention_v_channels=self.self_attention_v_channels or self_qk,
        )

    @property
    def num_cross_attends(self) -> int:
        return math.ceil(self.num_blocks / (self.cross_attend_every or self.num_blocks))

    def build(self) -> PerceiverEncoder:
        return PerceiverEncoder(self)


class PerceiverEncoder(nn.Module):
    """Inputs (B, M, C) with an optional padding mask (B, M) -> latents (B, N, D)."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = c = config
        self.latents = nn.Parameter(torch.empty(c.num_latents, c.latent_channels))
        nn.init.trunc_normal_(self.latents, std=c.latent_init_std)
        num_cross_modules = 1 if c.num_cross_attends == 1 else 2 if c.share_cross_attention else c.num_cross_attends
        self.cross_attentions = nn.ModuleList(
            CrossAttentionBlock(
                query_channels=c.latent_channels,
                kv_channels=c.input_channels,
                num_heads=c.num_cross_attention_heads,
                qk_channels=c.cross_attention_qk_channels,
                v_channels=c.cross_attention_v_channels,
                widening_factor=c.cross_attention_widening_factor,
                use_query_residual=c.use_query_residual,
                dropout=c.dropout,
            )
            for _ in range(num_cross_modules)
        )
        with torch.no_grad():
            for block in self.cross_attentions:
                block.attention.query.weight.mul_(c.cross_attention_qk_gain)
                block.attention.key.weight.mul_(c.cross_attention_qk_gain)
        self.latent_blocks = nn.ModuleList(
            nn.ModuleList(
                SelfAttentionBlock(
                    channels=c.latent_channels,
                    num_heads=c.num_self_attention_heads,
                    qk_channels=c.self_attention_qk_channels,
                    v_channels=c.self_attention_v_channels,
                    widening_factor=c.self_attention_widening_factor,
                    dropout=c.dropout,
                )
                for _ in range(c.num_self_attends_per_block)
            )
            for _ in range(1 if c.share_latent_blocks else c.num_blocks)
        )

    def schedule(self) -> list[tuple[CrossAttentionBlock | None, nn.ModuleList]]:
        """Per block: the cross-attention applied before it (or None) and its self-attention layers."""
        every = self.config.cross_attend_every or self.config.num_blocks
        plan = []
        for block in range(self.config.num_blocks):
            cross = None
            if block % every == 0:
                cross = self.cross_attentions[min(block // every, len(self.cross_attentions) - 1)]
            plan.append((cross, self.latent_blocks[min(block, len(self.latent_blocks) - 1)]))
        return plan

    def forward(self, inputs: Tensor, mask: Tensor | None = None) -> Tensor:
        return self._encode(inputs, mask, need_weights=False)[0]

    def cross_attention_maps(self, inputs: Tensor, mask: Tensor | None = None) -> list[Tensor]:
        """The probabilities (B, H, N, M) of every cross-attention application, for visualization."""
        return self._encode(inputs, mask, need_weights=True)[1]

    def _encode(self, inputs: Tensor, mask: Tensor | None, need_weights: bool) -> tuple[Tensor, list[Tensor]]:
        c = self.config
        if inputs.dim() != 3 or inputs.shape[-1] != c.input_channels:
            raise ValueError(f"inputs must have shape (B, M, C={c.input_channels}), got {tuple(inputs.shape)}")
        if mask is not None:
            mask = key_padding_mask(mask, *inputs.shape[:2])
        checkpointing = c.activation_checkpointing and self.training and torch.is_grad_enabled()

        def run(module: nn.Module, *args, **kwargs):
            if checkpointing:
                return checkpoint(module, *args, use_reentrant=False, **kwargs)
            return module(*args, **kwargs)

        maps = []
        x = self.latents.expand(inputs.shape[0], -1, -1)
        for cross, layers in self.schedule():
            if cross is not None:
                x, weights = run(cross, x, inputs, mask=mask, need_weights=need_weights)
                if weights is not None:
                    maps.append(weights)
            for layer in layers:
                x = run(layer, x)
        return x, maps
