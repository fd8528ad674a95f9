"""Multimodal autoencoding: reconstruct a clip's video and audio and infer its label."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm


@torch.inference_mode()
def reconstruct(
    model: nn.Module, video: np.ndarray, audio: np.ndarray, *, chunk_size: int = 16384, progress: bool = False
) -> dict[str, np.ndarray]:
    """A clip -> {"video": (T, H, W, 3) in [0, 1], "audio": (S,), "label": (K,) probabilities}.

    ``video`` is uint8 (T, H, W, 3) and ``audio`` float samples (S,) in [-1, 1], of the sizes the model was
    built for; the label input is all zeros (the published model always masks it). Outputs are decoded
    ``chunk_size`` queries at a time.
    """
    adapters = {m.name: m.adapter for m in model.config.input.modalities}
    t, h, w = adapters["image"].video_shape
    samples = adapters["audio"].num_samples
    if video.shape != (t, h, w, 3) or video.dtype != np.uint8:
        raise ValueError(f"video must be uint8 (T, H, W, 3) = {(t, h, w, 3)}, got {video.dtype} {video.shape}")
    if audio.shape != (samples,):
        raise ValueError(f"audio must have {samples} samples, got shape {audio.shape}")
    device = next(model.parameters()).device
    inputs = {
        "image": torch.from_numpy(video).permute(0, 3, 1, 2)[None].float().div(255).to(device),
        "audio": torch.from_numpy(audio.astype(np.float32))[None].to(device),
        "label": torch.zeros(1, adapters["label"].num_classes, device=device),
    }
    sizes = model.config.decoder.queries.sizes
    outputs: dict[str, list[torch.Tensor]] = {name: [] for name in sizes}
    chunks = [
        (name, torch.arange(start, min(start + chunk_size, size)))
        for name, size in sizes.items()
        for start in range(0, size, chunk_size)
    ]
    for name, indices in tqdm(chunks, desc="decoding", disable=not progress, leave=False):
        outputs[name].append(model(inputs, output_indices={name: indices.to(device)})[name][0].float().cpu())
    return {
        "video": torch.cat(outputs["image"]).reshape(t, h, w, 3).clamp(0, 1).numpy(),
        "audio": torch.cat(outputs["audio"]).numpy(),
        "label": torch.cat(outputs["label"]).softmax(-1).numpy(),
    }
