"""Perceiver IO: input adapter -> encoder -> decoder -> output adapter."""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from omniperceiver.core.adapter import InputAdapterConfig, OutputAdapterConfig
from omniperceiver.core.attention import force_kernel
from omniperceiver.core.config import Config, require
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.kernels import KERNELS
from omniperceiver.core.queries import LearnedQueryConfig
from omniperceiver.models.pretrained import PretrainedModel
from omniperceiver.outputs.classification import ClassificationOutputConfig


@dataclasses.dataclass(frozen=True)
class PerceiverIOConfig(Config):
    """The four parts of a Perceiver IO; ``output=None`` returns the decoder's (B, O, K) as they are."""

    input: InputAdapterConfig
    encoder: EncoderConfig
    decoder: DecoderConfig
    output: OutputAdapterConfig | None = None
    attention_kernel: str | None = None

    def __post_init__(self) -> None:
        require(
            self.attention_kernel is None or self.attention_kernel in KERNELS,
            "attention_kernel",
            self.attention_kernel,
            f"None (the compute policy picks) or one of {sorted(KERNELS)}",
        )
        require(
            self.encoder.input_channels == self.input.num_channels,
            "encoder.input_channels",
            self.encoder.input_channels,
            f"the input adapter's channels ({self.input.num_channels})",
        )
        require(
            self.decoder.latent_channels == self.encoder.latent_channels,
            "decoder.latent_channels",
            self.decoder.latent_channels,
            f"the encoder's latent_channels ({self.encoder.latent_channels})",
        )

    @classmethod
    def classifier(
        cls,
        input: InputAdapterConfig,
        num_classes: int,
        *,
        query_channels: int | None = None,
        decoder_heads: int = 1,
        decoder_query_residual: bool = False,
        labels: tuple[str, ...] | None = None,
        **encoder: object,
    ) -> PerceiverIOConfig:
        """A classifier: one learned query of ``query_channels`` (default D) decodes ``num_classes`` logits
        (the published classifiers add the query to the decoder's attention output:
        ``decoder_query_residual``). ``labels`` names the classes; ``encoder`` holds :class:`EncoderConfig`
        fields."""
        if labels is not None:
            require(len(labels) == num_classes, "labels", f"{len(labels)} names", f"{num_classes} names")
        encoder_config = EncoderConfig(input_channels=input.num_channels, **encoder)  # type: ignore[arg-type]
        d = encoder_config.latent_channels
        decoder = DecoderConfig(
            queries=LearnedQueryConfig(num_queries=1, num_channels=query_channels or d),
            latent_channels=d,
            output_channels=num_classes,
            num_heads=decoder_heads,
            use_query_residual=decoder_query_residual,
        )
        output = ClassificationOutputConfig(labels=labels)
        return cls(input=input, encoder=encoder_config, decoder=decoder, output=output)

    def build(self) -> PerceiverIO:
        return PerceiverIO(self)


class PerceiverIO(PretrainedModel):
    """A modality tensor (and optional mask) -> task output, linear in the input and output sizes."""

    config: PerceiverIOConfig

    def __init__(self, config: PerceiverIOConfig) -> None:
        super().__init__()
        self.config = config
        self.input_adapter = config.input.build()
        self.encoder = config.encoder.build()
        self.decoder = config.decoder.build()
        self.output_adapter = config.output.build(self.input_adapter) if config.output is not None else None
        force_kernel(self, config.attention_kernel)

    def forward(
        self,
        x: Tensor | dict[str, Tensor],
        mask: Tensor | dict[str, Tensor] | None = None,
        *,
        output_indices: Tensor | dict[str, Tensor] | None = None,
        chunk_size: int | None = None,
    ) -> Tensor | dict[str, Tensor]:
        """Run the model on ``x`` (the input adapter's modality tensor, or a dict of them for a multimodal
        adapter) with an optional padding ``mask``.

        ``output_indices`` (O',) decodes only those outputs (multimodal queries also take a dict of
        per-modality indices); ``chunk_size`` bounds decoder memory by decoding that many queries at a time.
        Both give exactly the corresponding rows of full decoding.
        """
        self.check_dtypes(x)
        inputs, mask = self.input_adapter(x, mask)
        if inputs.shape[0] == 0 or inputs.shape[1] == 0:
            raise ValueError(
                f"expected at least one example of at least one element, got inputs (B, M, C) = "
                f"{tuple(inputs.shape)} from {type(self.input_adapter).__name__}"
            )
        latents = self.encoder(inputs, mask)
        flat = output_indices
        if isinstance(output_indices, dict):
            flat = self.decoder.queries.flat_indices(output_indices, device=inputs.device)
        outputs = self.decoder(latents, inputs, indices=flat, chunk_size=chunk_size)
        return outputs if self.output_adapter is None else self.output_adapter(outputs, output_indices)

    def check_dtypes(self, x: Tensor | dict[str, Tensor]) -> None:
        """Raise ValueError if a floating-point input differs from the weights' dtype (outside autocast, where
        PyTorch would fail with "mixed dtype" deep inside)."""
        weights = next(self.parameters()).dtype
        for name, tensor in x.items() if isinstance(x, dict) else [("x", x)]:
            if not isinstance(tensor, Tensor):
                raise ValueError(f"{name} must be a tensor, got {type(tensor).__name__}")
            mismatch = tensor.is_floating_point() and tensor.dtype != weights
            if mismatch and not torch.is_autocast_enabled(tensor.device.type):
                raise ValueError(
                    f"{name} is {tensor.dtype}, the model's weights are {weights}: convert the input "
                    f"(x.to({weights})) or the model (model.to({tensor.dtype}))"
                )
