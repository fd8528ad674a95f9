"""Conversion of transformers' Perceiver checkpoints (config.json + pytorch_model.bin or model.safetensors).

Needs neither transformers nor a network: the seven published classes are recognized by their
``architectures`` entry (each :class:`omniperceiver.zoo.Published` names its class and translates its
config), their hyper-parameters are read from config.json (with transformers' defaults for the fields it leaves
out), and every weight is renamed to its omniperceiver name. A weight that no rule claims, or a parameter left
without a weight, is an error.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from torch import Tensor

from omniperceiver.models.perceiver_io import PerceiverIO, PerceiverIOConfig
from omniperceiver.models.pretrained import load_state, read_safetensors, read_torch_file
from omniperceiver.zoo import PUBLISHED, Published

# transformers' PerceiverConfig defaults: its config.json stores only the fields that differ from them.
HF_DEFAULTS: dict[str, Any] = {
    "num_latents": 256,
    "d_latents": 1280,
    "d_model": 768,
    "num_blocks": 1,
    "num_self_attends_per_block": 26,
    "num_self_attention_heads": 8,
    "num_cross_attention_heads": 8,
    "qk_channels": None,
    "v_channels": None,
    "cross_attention_shape_for_attention": "kv",
    "self_attention_widening_factor": 1,
    "cross_attention_widening_factor": 1,
    "hidden_act": "gelu",
    "attention_probs_dropout_prob": 0.1,
    "use_query_residual": True,
    "vocab_size": 262,
    "max_position_embeddings": 2048,
    "image_size": 56,
    "train_size": (368, 496),
    "num_frames": 16,
    "audio_samples_per_frame": 1920,
    "samples_per_patch": 16,
    "output_shape": (1, 16, 224, 224),
    "output_num_channels": 512,
    "_label_trainable_num_channels": 1024,
}

# config.json's "architectures" entry -> the published model it converts to
ARCHITECTURES: dict[str, Published] = {entry.transformers.architecture: entry for entry in PUBLISHED.values()}

# Weight names: transformers prefix -> (omniperceiver prefix, layer kind); then the layer's own names.
_PREFIXES = [
    (r"perceiver\.embeddings\.latents", "encoder.latents", None),
    (r"perceiver\.encoder\.cross_attention\.", "encoder.cross_attentions.0.", "cross"),
    (r"perceiver\.encoder\.self_attends\.(\d+)\.", r"encoder.latent_blocks.0.\1.", "self"),
    (r"perceiver\.decoder\.(?:decoder\.)?decoding_cross_attention\.", "decoder.cross_attention.", "cross"),
    (r"perceiver\.decoder\.(?:decoder\.)?final_layer\.", "decoder.projection.", None),
    (
        r"perceiver\.decoder\.(?:decoder\.)?output_position_encodings\.position_embeddings",
        "decoder.queries.queries",
        None,
    ),
    (
        r"perceiver\.decoder\.modalities\.(\w+)\.decoder\.output_position_encodings\.position_embeddings",
        r"decoder.queries.providers.\1.queries",
        None,
    ),
    (r"perceiver\.decoder\.padding\.(\w+)", r"decoder.queries.padding.\1", None),
    (r"perceiver\.input_preprocessor\.embeddings\.", "input_adapter.embedding.", None),
    (r"perceiver\.input_preprocessor\.position_embeddings\.weight", "input_adapter.position.weight", None),
    (r"perceiver\.input_preprocessor\.convnet_1x1\.", "input_adapter.stem.conv.", None),
    (
        r"perceiver\.input_preprocessor\.position_embeddings\.position_embeddings",
        "input_adapter.array.position.encoding.embedding",
        None,
    ),
    (r"perceiver\.input_preprocessor\.positions_projection\.", "input_adapter.array.position.projection.", None),
    (r"perceiver\.input_preprocessor\.convnet\.conv\.", "input_adapter.stem.conv.", None),
    (r"perceiver\.input_preprocessor\.convnet\.batchnorm\.", "input_adapter.stem.norm.", None),
    (r"perceiver\.input_preprocessor\.conv_after_patches\.", "input_adapter.array.projection.", None),
    (r"perceiver\.input_preprocessor\.padding\.(\w+)", r"input_adapter.padding.\1", None),
    (r"perceiver\.input_preprocessor\.mask\.(\w+)", r"input_adapter.mask_token.\1", None),
    (r"perceiver\.output_postprocessor\.modalities\.(\w+)\.classifier\.", r"output_adapter.heads.\1.", None),
    (r"embedding_decoder\.bias", "output_adapter.bias", None),
]
_LAYER = {
    "cross": {
        "attention.self.layernorm1.": "query_norm.",
        "attention.self.layernorm2.": "kv_norm.",
    },
    "self": {"attention.self.layernorm1.": "norm."},
}
_LAYER_COMMON = {
    "attention.self.query.": "attention.query.",
    "attention.self.key.": "attention.key.",
    "attention.self.value.": "attention.value.",
    "attention.output.dense.": "attention.output.",
    "layernorm.": "mlp_norm.",
    "mlp.dense1.": "mlp.0.",
    "mlp.dense2.": "mlp.2.",
}


def rename(name: str) -> str | None:
    """A transformers weight name -> its omniperceiver name (None: no rule claims it)."""
    for pattern, replacement, kind in _PREFIXES:
        match = re.match(pattern, name)
        if match is None:
            continue
        prefix, rest = match.expand(replacement), name[match.end() :]
        if kind is None:
            return prefix + rest
        for old, new in {**_LAYER[kind], **_LAYER_COMMON}.items():
            if rest.startswith(old):
                return prefix + new + rest[len(old) :]
        return None
    return None


def read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no config.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a JSON file ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of config fields, got a {type(data).__name__}")
    if data.get("model_type") != "perceiver":
        raise ValueError(f"{path} describes a {data.get('model_type')!r} model, not a transformers 'perceiver'")
    return {**HF_DEFAULTS, **data}


def is_transformers_directory(directory: str | os.PathLike) -> bool:
    path = Path(directory) / "config.json"
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):  # not UTF-8 or not JSON: not transformers'
        return False
    return isinstance(data, dict) and data.get("model_type") == "perceiver"


def read_weights(directory: Path) -> dict[str, Tensor]:
    """model.safetensors, or pytorch_model.bin loaded without unpickling code (weights_only)."""
    if (directory / "model.safetensors").is_file():
        return read_safetensors(directory / "model.safetensors")
    if (directory / "pytorch_model.bin").is_file():
        weights = read_torch_file(directory / "pytorch_model.bin")
        if not (isinstance(weights, dict) and all(isinstance(t, Tensor) for t in weights.values())):
            raise ValueError(f"{directory / 'pytorch_model.bin'} holds a {type(weights).__name__}, not a state dict")
        return weights
    raise FileNotFoundError(f"{directory} has neither model.safetensors nor pytorch_model.bin")


def _labels(hf: dict[str, Any]) -> tuple[tuple[str, ...] | None, int]:
    """Class names and count: ``id2label`` with the ids 0 .. K-1, else ``num_labels`` (default 2)."""
    id2label = hf.get("id2label")
    if id2label:
        if not isinstance(id2label, dict):
            raise ValueError(f"config.json: id2label must map ids to names, got {id2label!r}")
        names = {str(i): str(name) for i, name in id2label.items()}
        ids = [str(i) for i in range(len(names))]
        if sorted(names) != sorted(ids):
            raise ValueError(f"config.json: id2label must have the ids 0 .. {len(ids) - 1}, got {sorted(names)}")
        return tuple(names[i] for i in ids), len(ids)
    num_labels = hf.get("num_labels", 2)
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 1:
        raise ValueError(f"config.json: num_labels must be a positive integer, got {num_labels!r}")
    return None, num_labels


def config_from_transformers(hf: dict[str, Any]) -> PerceiverIOConfig:
    """An omniperceiver config equal in structure to a transformers Perceiver config (with defaults applied)."""
    architectures = hf.get("architectures") or []
    known = [a for a in architectures if a in ARCHITECTURES]
    if not known:
        raise ValueError(f"config.json names architectures {architectures}; convertible: {sorted(ARCHITECTURES)}")
    if hf["hidden_act"] != "gelu":
        raise ValueError(f"hidden_act={hf['hidden_act']!r} is not supported: the published models use 'gelu'")
    entry = ARCHITECTURES[known[0]]
    qk, v = hf["qk_channels"], hf["v_channels"]
    cross_qk = qk
    if qk is None and hf["cross_attention_shape_for_attention"] == "q":
        cross_qk = hf["d_latents"]
    encoder = dict(
        num_latents=hf["num_latents"],
        latent_channels=hf["d_latents"],
        num_blocks=hf["num_blocks"],
        num_self_attends_per_block=hf["num_self_attends_per_block"],
        num_self_attention_heads=hf["num_self_attention_heads"],
        num_cross_attention_heads=hf["num_cross_attention_heads"],
        cross_attention_qk_channels=cross_qk,
        cross_attention_v_channels=v,
        self_attention_qk_channels=qk,
        self_attention_v_channels=v,
        self_attention_widening_factor=hf["self_attention_widening_factor"],
        cross_attention_widening_factor=hf["cross_attention_widening_factor"],
        use_query_residual=hf["use_query_residual"],
        dropout=float(hf["attention_probs_dropout_prob"]),
    )
    return entry.config(**entry.transformers.translate(hf, *_labels(hf)), **encoder)


def convert_transformers(directory: str | os.PathLike) -> PerceiverIO:
    """Load a transformers Perceiver directory as an omniperceiver model with identical outputs (eval mode)."""
    directory = Path(directory)
    model = config_from_transformers(read_config(directory)).build()
    expected = model.state_dict()
    converted, unclaimed = {}, []
    for name, tensor in read_weights(directory).items():
        target = rename(name)
        if target is None:
            unclaimed.append(name)
            continue
        if target in expected and tensor.dim() == 2 and tensor.shape[0] == 1 and expected[target].dim() == 1:
            tensor = tensor[0]  # per-modality padding and mask tokens are stored as (1, C)
        converted[target] = tensor
    if unclaimed:
        raise ValueError(f"{directory}: weights with no omniperceiver counterpart: {sorted(unclaimed)}")
    load_state(model, converted, str(directory))
    return model.eval()
