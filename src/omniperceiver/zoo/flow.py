"""The optical-flow Perceiver: frame pairs -> a flow vector per pixel, decoded with the inputs as queries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omniperceiver.adapters.flow import FlowInputConfig
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.position import FourierPositionConfig
from omniperceiver.core.queries import InputQueryConfig
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.flow import FlowOutputConfig
from omniperceiver.zoo.published import SMALL_ENCODER, Kind, Published, Transformers

FLOW_ENCODER = dict(
    num_latents=2048,
    latent_channels=512,
    num_blocks=1,
    num_self_attends_per_block=24,
    num_self_attention_heads=16,
    num_cross_attention_heads=1,
)


def optical_flow_perceiver(*, train_size: tuple[int, int] = (368, 496), **encoder: object) -> PerceiverIOConfig:
    """deepmind/optical-flow-perceiver: two RGB frames (B, 2, 3, H, W) at ``train_size``, scaled to [-1, 1],
    -> flow (B, H, W, 2) in pixels (:func:`omniperceiver.inference.estimate_flow` tiles larger frames).
    Each pixel holds both frames' 3x3 patches (54 values) projected to 64 channels plus 64-band Fourier
    features (322 channels); the inputs are also the decoder's queries."""
    position = FourierPositionConfig(num_bands=64, max_resolution=train_size)
    flow = FlowInputConfig(train_size, position=position)
    encoder_config = EncoderConfig(input_channels=flow.num_channels, **{**FLOW_ENCODER, **encoder})  # type: ignore[arg-type]
    decoder = DecoderConfig(
        queries=InputQueryConfig(num_channels=flow.num_channels),
        latent_channels=encoder_config.latent_channels,
        output_channels=2,
    )
    return PerceiverIOConfig(
        input=flow, encoder=encoder_config, decoder=decoder, output=FlowOutputConfig(image_shape=train_size)
    )


def _frames(hf: Mapping[str, Any], labels: tuple[str, ...] | None, num_classes: int) -> dict[str, Any]:
    return dict(train_size=tuple(hf["train_size"]))


OPTICAL_FLOW = Published(
    "optical-flow-perceiver",
    optical_flow_perceiver,
    dict(SMALL_ENCODER, train_size=(12, 16)),
    Transformers(
        "PerceiverForOpticalFlow",
        dict(
            num_latents=2048,
            d_latents=512,
            d_model=322,
            num_blocks=1,
            num_self_attends_per_block=24,
            num_self_attention_heads=16,
            num_cross_attention_heads=1,
        ),
        _frames,
    ),
    Kind(
        "optical flow",
        FlowInputConfig,
        FlowOutputConfig,
        "two RGB frames of one size scaled to [-1, 1], cut into overlapping tiles of the training size",
    ),
)
