"""The multimodal autoencoding Perceiver: video + audio + label in, all three reconstructed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omniperceiver.adapters.audio import AudioInputConfig
from omniperceiver.adapters.label import LabelInputConfig
from omniperceiver.adapters.multimodal import ModalityInputConfig, MultimodalInputConfig
from omniperceiver.adapters.video import VideoInputConfig
from omniperceiver.core.decoder import DecoderConfig
from omniperceiver.core.encoder import EncoderConfig
from omniperceiver.core.position import FourierPositionConfig
from omniperceiver.core.queries import LearnedQueryConfig, PositionQueryConfig
from omniperceiver.models.perceiver_io import PerceiverIOConfig
from omniperceiver.outputs.multimodal import (
    ModalityOutputConfig,
    ModalityQueryConfig,
    MultimodalOutputConfig,
    MultimodalQueryConfig,
)
from omniperceiver.zoo.published import SMALL_ENCODER, Kind, Published, Transformers, image_size

MULTIMODAL_ENCODER = dict(
    num_latents=784,
    latent_channels=512,
    num_blocks=1,
    num_self_attends_per_block=8,
    num_self_attention_heads=8,
    num_cross_attention_heads=1,
)


def multimodal_perceiver(
    *,
    num_frames: int = 16,
    image_size: int = 224,
    audio_samples_per_frame: int = 1920,
    samples_per_patch: int = 16,
    num_classes: int = 700,
    output_channels: int = 512,
    label_query_channels: int = 1024,
    video_resolution: tuple[int, int, int] | None = None,
    **encoder: object,
) -> PerceiverIOConfig:
    """deepmind/multimodal-perceiver (Kinetics-700 autoencoding). Inputs: {"audio": (B, S), "image":
    (B, T, 3, H, W), "label": (B, 700)}, S = T·``audio_samples_per_frame``. Video in 1x4x4 patches with
    32-band 3-D Fourier features, audio in patches of 16 samples with 192-band features, the label always
    masked (the model infers it). Outputs {"audio": (B, S'), "image": (B, O, 3), "label": (B, 700)} for the
    requested output indices; decode in chunks (``chunk_size``) or subsets (``output_indices``).

    Decoder queries sit at positions ``-1 + 2·i/n`` (``endpoint=False``), the grid the reference uses for
    the subsampled decoding the checkpoint was trained and is run with; full and chunked decoding use it too.
    The video's Fourier features (inputs and queries) use ``video_resolution``, by default the published
    (T, H/4, W/4) = (16, 56, 56).
    """
    num_samples = num_frames * audio_samples_per_frame
    video_shape = (num_frames, image_size, image_size)
    audio_position = FourierPositionConfig(num_bands=192, max_resolution=(num_samples,))
    video_resolution = video_resolution or (num_frames, image_size // 4, image_size // 4)
    video_position = FourierPositionConfig(num_bands=32, max_resolution=tuple(video_resolution))
    inputs = MultimodalInputConfig(
        modalities=(
            ModalityInputConfig("audio", AudioInputConfig(num_samples, samples_per_patch, audio_position)),
            ModalityInputConfig("image", VideoInputConfig(video_shape, (1, 4, 4), position=video_position)),
            ModalityInputConfig("label", LabelInputConfig(num_classes), mask_probability=1.0),
        ),
        min_padding=4,
    )
    encoder_config = EncoderConfig(input_channels=inputs.num_channels, **{**MULTIMODAL_ENCODER, **encoder})  # type: ignore[arg-type]
    num_patches = num_samples // samples_per_patch
    queries = MultimodalQueryConfig(
        modalities=(
            ModalityQueryConfig("audio", PositionQueryConfig((num_patches,), _no_endpoint(audio_position))),
            ModalityQueryConfig("image", PositionQueryConfig(video_shape, _no_endpoint(video_position))),
            ModalityQueryConfig("label", LearnedQueryConfig(num_queries=1, num_channels=label_query_channels)),
        )
    )
    decoder = DecoderConfig(
        queries=queries, latent_channels=encoder_config.latent_channels, output_channels=output_channels
    )
    output = MultimodalOutputConfig(
        in_channels=output_channels,
        modalities=(
            ModalityOutputConfig("audio", num_patches, samples_per_patch, flatten=True),
            ModalityOutputConfig("image", num_frames * image_size * image_size, 3),
            ModalityOutputConfig("label", 1, num_classes, flatten=True),
        ),
    )
    return PerceiverIOConfig(input=inputs, encoder=encoder_config, decoder=decoder, output=output)


def _no_endpoint(position: FourierPositionConfig) -> FourierPositionConfig:
    return FourierPositionConfig(num_bands=position.num_bands, max_resolution=position.max_resolution, endpoint=False)


def _clip(hf: Mapping[str, Any], labels: tuple[str, ...] | None, num_classes: int) -> dict[str, Any]:
    """The video's size comes from output_shape; transformers' image_size only sets its Fourier resolution."""
    frames, side = hf["num_frames"], hf["output_shape"][2]
    if tuple(hf["output_shape"][1:]) != (frames, side, side):
        raise ValueError(
            f"output_shape {hf['output_shape']} must be (1, num_frames, S, S) = (1, {frames}, S, S) for the "
            "multimodal model"
        )
    return dict(
        num_frames=frames,
        image_size=side,
        video_resolution=(frames, *image_size(hf["image_size"])),
        audio_samples_per_frame=hf["audio_samples_per_frame"],
        samples_per_patch=hf["samples_per_patch"],
        num_classes=num_classes,
        output_channels=hf["output_num_channels"],
        label_query_channels=hf["_label_trainable_num_channels"],
    )


MULTIMODAL = Published(
    "multimodal-perceiver",
    multimodal_perceiver,
    dict(
        SMALL_ENCODER,
        num_frames=2,
        image_size=16,
        audio_samples_per_frame=32,
        samples_per_patch=8,
        num_classes=10,
        output_channels=32,
        label_query_channels=48,
    ),
    Transformers(
        "PerceiverForMultimodalAutoencoding",
        dict(
            num_latents=784,
            d_latents=512,
            d_model=704,
            num_blocks=1,
            num_self_attends_per_block=8,
            num_self_attention_heads=8,
            num_cross_attention_heads=1,
            num_labels=700,
        ),
        _clip,
    ),
    Kind(
        "multimodal autoencoding",
        MultimodalInputConfig,
        MultimodalOutputConfig,
        "video (T, H, W, 3) uint8 scaled to [0, 1], audio of T x samples per frame in [-1, 1], the label all zeros "
        "(masked: the model infers it)",
        subset=True,
    ),
)
