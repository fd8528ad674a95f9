"""The byte-level language Perceiver: masked language model and text classifier."""

from __future__ import annotations

from omniperceiver.adapters.text import TextInputConfig
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.queries import LearnedQueryConfig
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.tokens import TiedTokenOutputConfig

LANGUAGE_ENCODER = dict(
    num_latents=256,
    latent_channels=1280,
    num_blocks=1,
    num_self_attends_per_block=26,
    num_self_attention_heads=8,
    num_cross_attention_heads=8,
    cross_attention_qk_channels=256,
    cross_attention_v_channels=1280,
    self_attention_qk_channels=256,
    self_attention_v_channels=1280,
)


def language_perceiver(*, channels: int = 768, max_length: int = 2048, **encoder: object) -> PerceiverIOConfig:
    """deepmind/language-perceiver: UTF-8 bytes (B, L <= ``max_length``) -> byte logits (B, max_length, 262)
    through ``max_length`` learned position queries and the tied byte embedding. ``encoder`` overrides
    :class:`EncoderConfig` fields of the published 201M-parameter model."""
    text = TextInputConfig(channels=channels, max_length=max_length)
    encoder_config = EncoderConfig(input_channels=channels, **{**LANGUAGE_ENCODER, **encoder})  # type: ignore[arg-type]
    decoder = DecoderConfig(
        queries=LearnedQueryConfig(num_queries=max_length, num_channels=channels),
        latent_channels=encoder_config.latent_channels,
        num_heads=8,
        qk_channels=256,
        v_channels=channels,
    )
    return PerceiverIOConfig(input=text, encoder=encoder_config, decoder=decoder, output=TiedTokenOutputConfig())


def text_classifier(
    *,
    num_classes: int,
    labels: tuple[str, ...] | None = None,
    channels: int = 768,
    max_length: int = 2048,
    **encoder: object,
) -> PerceiverIOConfig:
    """The language Perceiver's encoder with a one-query classification head (the reference's
    PerceiverForSequenceClassification)."""
    return PerceiverIOConfig.classifier(
        TextInputConfig(channels=channels, max_length=max_length),
        num_classes,
        decoder_query_residual=True,
        labels=labels,
        **{**LANGUAGE_ENCODER, **encoder},
    )
