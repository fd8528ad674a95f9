"""Perceiver AR language model: token embedding -> causal Perceiver AR stack -> logits of the last n positions."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from omniperceiver.core.ar import ARCache, ARConfig, sequence_positions
from omniperceiver.core.attention import check_mask, force_kernel
from omniperceiver.core.config import Config, require, require_positive
from omniperceiver.core.kernels import KERNELS
from omniperceiver.core.linear import Linear
from omniperceiver.models.pretrained import PretrainedModel


@dataclasses.dataclass(frozen=True)
class PerceiverARConfig(Config):
    """A Perceiver AR over token ids in [0, ``vocab_size``), at most ``max_seq_len`` positions per call.

    ``ar`` is the causal stack (its N = ``ar.num_latents`` at most ``max_seq_len``); ``tied_output`` computes
    the logits with the token embedding's weight instead of a separate linear layer; ``absolute_positions``
    adds a learned position embedding to the tokens (rotary embeddings in the attention are the default
    position signal, see ``ar.rotary_channels``); ``prefix_dropout`` drops that fraction of the prefix
    positions (those before the latents) from the cross-attention in training (Perceiver AR paper, sec. 3.1);
    ``pad_id`` is the padding token id that generation fills finished rows with.
    """

    vocab_size: int
    max_seq_len: int
    ar: ARConfig
    tied_output: bool = True
    absolute_positions: bool = False
    prefix_dropout: float = 0.0
    pad_id: int | None = None
    attention_kernel: str | None = None

    def __post_init__(self) -> None:
        require(
            self.attention_kernel is None or self.attention_kernel in KERNELS,
            "attention_kernel",
            self.attention_kernel,
            f"None (the compute policy picks) or one of {sorted(KERNELS)}",
        )
        require_positive(vocab_size=self.vocab_size, max_seq_len=self.max_seq_len)
        require(isinstance(self.ar, ARConfig), "ar", self.ar, "an ARConfig")
        require(
            self.ar.num_latents <= self.max_seq_len,
            "ar.num_latents",
            self.ar.num_latents,
            f"at most max_seq_len ({self.max_seq_len})",
        )
        require(0.0 <= self.prefix_dropout < 1.0, "prefix_dropout", self.prefix_dropout, "a fraction in [0, 1)")
        require(
            self.pad_id is None or 0 <= self.pad_id < self.vocab_size,
            "pad_id",
            self.pad_id,
            f"None or an id in [0, {self.vocab_size}) (vocab_size)",
        )

    def build(self) -> PerceiverAR:
        return PerceiverAR(self)


def drop_prefix(
    x: Tensor, positions: Tensor, mask: Tensor | None, num_latents: int, rate: float
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Keep a random ``1 - rate`` of the prefix of x (B, L, D) (its first L - n positions, in order) and all n
    latents; ``positions`` (B, L) and the padding ``mask`` (B, L) are gathered along, so the kept positions
    keep their positions and padding."""
    batch, length = positions.shape
    prefix = length - num_latents
    keep = prefix - int(prefix * rate)
    if keep == prefix:
        return x, positions, mask
    kept = torch.rand(batch, prefix, device=x.device).argsort(dim=1)[:, :keep].sort(dim=1).values
    index = torch.cat([kept, torch.arange(prefix, length, device=x.device).expand(batch, -1)], dim=1)
    x = x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))
    return x, positions.gather(1, index), None if mask is None else mask.gather(1, index)


class PerceiverAR(PretrainedModel):
    """Token ids (B, L) -> next-token logits (B, n, V) of the last n positions, causally."""

    config: PerceiverARConfig

    def __init__(self, config: PerceiverARConfig) -> None:
        super().__init__()
        self.config = c = config
        channels = c.ar.channels
        self.embedding = nn.Embedding(c.vocab_size, channels)
        nn.init.normal_(self.embedding.weight, std=0.02)
        self.position = nn.Embedding(c.max_seq_len, channels) if c.absolute_positions else None
        if self.position is not None:
            nn.init.normal_(self.position.weight, std=0.02)
        self.core = c.ar.build()
        self.output = Linear(channels, c.vocab_size, bias=not c.tied_output)
        if c.tied_output:
            self.output.weight = self.embedding.weight  # one parameter, saved once
        force_kernel(self, config.attention_kernel)

    def new_cache(self) -> ARCache:
        return self.core.new_cache()

    def with_num_latents(self, num_latents: int) -> PerceiverAR:
        """These weights reading the last ``num_latents`` positions as latents (N of the config): no weight
        depends on N, so a model trained with one N can be evaluated and sampled with another, more or fewer
        (the Perceiver AR paper's evaluation-time sweep). A cache then keeps ``num_latents`` latents."""
        config = dataclasses.replace(self.config, ar=dataclasses.replace(self.config.ar, num_latents=num_latents))
        model = type(self)(config)
        model.load_state_dict(self.state_dict())
        return model.train(self.training)

    def check_ids(self, ids: Tensor, seen: int = 0) -> None:
        """Raise ValueError unless ids is an integer (B, L) tensor, B >= 1, L >= 1, of ids in [0, V), and
        ``seen`` cached positions plus L are at most ``max_seq_len``."""
        c = self.config
        if ids.dim() != 2 or 0 in ids.shape or ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"ids must be an int64 or int32 tensor of shape (B, L) with B, L >= 1, got {ids.dtype} of shape "
                f"{tuple(ids.shape)}"
            )
        total = seen + ids.shape[1]
        if total > c.max_seq_len:
            raise ValueError(
                f"expected at most max_seq_len={c.max_seq_len} positions (cached ones included), got {total}"
            )
        if torch.compiler.is_compiling():  # a traced graph cannot read values: runtimes check their indices
            return
        low, high = torch.stack([ids.min(), ids.max()]).tolist()  # one device sync
        if low < 0 or high >= c.vocab_size:
            raise ValueError(f"ids must lie in [0, {c.vocab_size}) (vocab_size), got values in [{low}, {high}]")

    def forward(
        self,
        ids: Tensor,
        *,
        mask: Tensor | None = None,
        num_latents: int | None = None,
        cache: ARCache | None = None,
        source_lengths: Tensor | None = None,
    ) -> Tensor:
        """Logits (B, n, V) predicting the token after each of the last n positions of ids (B, L).

        ``mask`` (B, L) marks real tokens (False = left padding); ``num_latents``, ``cache`` and
        ``source_lengths`` (the first S_b real tokens a source read bidirectionally) work as in
        :meth:`PerceiverARCore.forward` (with a cache that has seen positions, n = L). Prefix dropout acts only
        in training and without a cache.
        """
        seen = cache.length if cache is not None else 0
        self.check_ids(ids, seen)
        batch, length = ids.shape
        if mask is not None:
            check_mask(mask, "(B, L)", (batch, length))
        full_mask = cache.padding_mask(mask, batch, length) if cache is not None else mask
        positions = sequence_positions(full_mask, batch, length, seen, ids.device)
        x = self.embedding(ids)
        if self.position is not None:
            x = x + self.position(positions)
        rate = self.config.prefix_dropout
        if self.training and rate > 0 and cache is None:
            n = min(num_latents or self.config.ar.num_latents, length)
            x, positions, mask = drop_prefix(x, positions, mask, n, rate)
        h = self.core(
            x, num_latents=num_latents, mask=mask, positions=positions, cache=cache, source_lengths=source_lengths
        )
        return self.output(h)
