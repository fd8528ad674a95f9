"""The byte-level language Perceiver: masked language model and text classifier."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omniperceiver.adapters.text import TextInputConfig
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.queries import InputQueryConfig, LearnedQueryConfig
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.classification import ClassificationOutputConfig
from omniperceiver.outputs.tokens import TiedTokenOutputConfig
from omniperceiver.zoo.published import SMALL_ENCODER, Kind, Published, Transformers

QUERIES = ("positions", "inputs")
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


def language_perceiver(
    *,
    channels: int = 768,
    max_length: int = 2048,
    vocab_size: int = TextInputConfig.vocab_size,
    ngram: int = 1,
    embedding_init_std: float = 0.02,
    queries: str = "positions",
    decoder_heads: int = 8,
    decoder_qk_channels: int | None = 256,
    **encoder: object,
) -> PerceiverIOConfig:
    """deepmind/language-perceiver: token ids (B, L <= ``max_length``) of ``vocab_size`` (UTF-8 bytes: 262)
    -> token logits (B, O, V) through the tied token embedding. ``queries``: "positions" (the published
    model's ``max_length`` learned position queries, O = ``max_length``) or "inputs" (each position's own
    input element, its ``ngram`` context included, added back after the attention: O = L); the token tables
    start with ``embedding_init_std`` (:class:`TextInputConfig`). ``encoder``
    overrides :class:`EncoderConfig` fields of the published 201M-parameter model."""
    if queries not in QUERIES:
        raise ValueError(f"queries={queries!r}: expected one of {QUERIES}")
    text = TextInputConfig(
        vocab_size=vocab_size,
        channels=channels,
        max_length=max_length,
        ngram=ngram,
        embedding_init_std=embedding_init_std,
    )
    encoder_config = EncoderConfig(input_channels=channels, **{**LANGUAGE_ENCODER, **encoder})  # type: ignore[arg-type]
    decoder = DecoderConfig(
        queries=(
            LearnedQueryConfig(num_queries=max_length, num_channels=channels)
            if queries == "positions"
            else InputQueryConfig(num_channels=channels)
        ),
        latent_channels=encoder_config.latent_channels,
        num_heads=decoder_heads,
        qk_channels=decoder_qk_channels,
        v_channels=channels,
        use_query_residual=queries == "inputs",
    )
    return PerceiverIOConfig(input=text, encoder=encoder_config, decoder=decoder, output=TiedTokenOutputConfig())


def text_classifier(
    *,
    num_classes: int = 2,
    labels: tuple[str, ...] | None = None,
    channels: int = 768,
    max_length: int = 2048,
    **encoder: object,
) -> PerceiverIOConfig:
    """The language Perceiver's encoder with a one-query classification head (the reference's
    PerceiverForSequenceClassification, ``num_classes`` as its default ``num_labels``; no checkpoint published)."""
    return PerceiverIOConfig.classifier(
        TextInputConfig(channels=channels, max_length=max_length),
        num_classes,
        decoder_query_residual=True,
        labels=labels,
        **{**LANGUAGE_ENCODER, **encoder},
    )


def _text(hf: Mapping[str, Any], labels: tuple[str, ...] | None, num_classes: int) -> dict[str, Any]:
    return dict(channels=hf["d_model"], max_length=hf["max_position_embeddings"])


def _classes(hf: Mapping[str, Any], labels: tuple[str, ...] | None, num_classes: int) -> dict[str, Any]:
    return dict(_text(hf, labels, num_classes), num_classes=num_classes, labels=labels)


_BYTES = "UTF-8 bytes as ids 6-261 (0-5: [PAD] [BOS] [EOS] [MASK] [CLS] [SEP]), padded on the right under a mask"
_SMALL = dict(
    SMALL_ENCODER,
    channels=32,
    max_length=48,
    num_cross_attention_heads=4,
    cross_attention_qk_channels=32,
    cross_attention_v_channels=64,
    self_attention_qk_channels=32,
    self_attention_v_channels=64,
)
LANGUAGE = Published(
    "language-perceiver",
    language_perceiver,
    _SMALL,
    Transformers("PerceiverForMaskedLM", dict(qk_channels=256, v_channels=1280), _text),
    Kind("masked byte prediction", TextInputConfig, TiedTokenOutputConfig, _BYTES, dynamic=("batch", "length")),
)
TEXT_CLASSIFIER = Published(
    "text-classifier",
    text_classifier,
    dict(_SMALL, num_classes=3),
    Transformers("PerceiverForSequenceClassification", None, _classes),
    Kind("text classification", TextInputConfig, ClassificationOutputConfig, _BYTES, dynamic=("batch", "length")),
)
