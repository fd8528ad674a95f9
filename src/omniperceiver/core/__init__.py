"""Perceiver building blocks; imports only torch."""

from omniperceiver.core.adapter import InputAdapter, InputAdapterConfig, OutputAdapter, OutputAdapterConfig
from omniperceiver.core.ar import ARCache, ARConfig, PerceiverARCore, sequence_positions
from omniperceiver.core.attention import MultiHeadAttention, attend, causal_mask, key_padding_mask, seq2seq_mask
from omniperceiver.core.blocks import MLP, CrossAttentionBlock, SelfAttentionBlock
from omniperceiver.core.config import Config
from omniperceiver.core.decoder import DecoderConfig, PerceiverDecoder
from omniperceiver.core.encoder import EncoderConfig, PerceiverEncoder
from omniperceiver.core.kv_cache import KVCache
from omniperceiver.core.position import (
    CoordinatePositionConfig,
    FourierPositionConfig,
    LearnedPositionConfig,
    PositionConfig,
    PositionEncoding,
    RotaryPositionEmbedding,
    SinusoidalPositionConfig,
    fourier_features,
    grid_coordinates,
    sinusoidal_features,
)
from omniperceiver.core.queries import (
    InputQueries,
    InputQueryConfig,
    LearnedQueries,
    LearnedQueryConfig,
    PositionQueries,
    PositionQueryConfig,
    QueryConfig,
    QueryProvider,
)

__all__ = [
    "MLP",
    "ARCache",
    "ARConfig",
    "Config",
    "CoordinatePositionConfig",
    "CrossAttentionBlock",
    "DecoderConfig",
    "EncoderConfig",
    "FourierPositionConfig",
    "InputAdapter",
    "InputAdapterConfig",
    "InputQueries",
    "InputQueryConfig",
    "KVCache",
    "LearnedPositionConfig",
    "LearnedQueries",
    "LearnedQueryConfig",
    "MultiHeadAttention",
    "OutputAdapter",
    "OutputAdapterConfig",
    "PerceiverARCore",
    "PerceiverDecoder",
    "PerceiverEncoder",
    "PositionConfig",
    "PositionEncoding",
    "PositionQueries",
    "PositionQueryConfig",
    "QueryConfig",
    "QueryProvider",
    "RotaryPositionEmbedding",
    "SelfAttentionBlock",
    "SinusoidalPositionConfig",
    "attend",
    "causal_mask",
    "fourier_features",
    "grid_coordinates",
    "key_padding_mask",
    "seq2seq_mask",
    "sequence_positions",
    "sinusoidal_features",
]
