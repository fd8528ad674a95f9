"""Model directories: ``config.json`` plus ``model.safetensors``, written atomically, loaded strictly. Loading
trusts only data: tensors from safetensors or weights-only ``torch.load``, config types from the table of known
names; a bad file gets one ValueError naming it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from omniperceiver.core.config import Config
from omniperceiver.files import atomic_write

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"

M = TypeVar("M", bound="PretrainedModel")


def unique_state(model: nn.Module) -> dict[str, Tensor]:
    """The model's state dict with each shared tensor (tied embeddings) once, under its first name."""
    state, seen = {}, set()
    for name, tensor in model.state_dict().items():
        key = (tensor.data_ptr(), tuple(tensor.shape), tensor.stride())
        if tensor.numel() and key in seen:
            continue
        seen.add(key)
        state[name] = tensor
    return state


def read_safetensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a safetensors file (whose reader checks the header's sizes and offsets against the file
    before allocating); ValueError naming the file if it is empty, truncated or corrupt."""
    try:
        return load_file(str(path))
    except SafetensorError as error:
        raise ValueError(f"{path} is not a readable safetensors file: {error}") from None


def read_torch_file(path: str | os.PathLike, *, map_location: Any = "cpu") -> Any:
    """What ``torch.save`` wrote to ``path``, unpickled weights-only: tensors, containers and plain values;
    a file that names any other class or function is refused, also under TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD,
    which does not override an explicit ``weights_only=True`` (torch >= 2.6). ValueError naming the file if
    it is empty, truncated, corrupt or holds more than data."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # any failure to parse an untrusted file means a bad file: one clear line
        reason = str(error).rpartition("WeightsUnpickler error:")[2]  # torch's refusal: its reason, not its advice
        reason = next((line.strip() for line in reason.splitlines() if line.strip()), type(error).__name__)
        reason = reason.partition(". Please use")[0]
        raise ValueError(f"{path} is not a readable file of tensors and plain values: {reason}") from None


def load_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load a safetensors file into ``model`` (see :func:`load_state`)."""
    load_state(model, read_safetensors(path), str(path))


def load_state(model: nn.Module, stored: dict[str, Tensor], source: str) -> None:
    """Load ``stored`` tensors into ``model``: every tensor must match a parameter or buffer by name and shape,
    and every one of the model's must be present (ValueError listing the differences, naming ``source``)."""
    expected = unique_state(model)
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    misshaped = [
        f"{name}: stored {tuple(stored[name].shape)}, model {tuple(expected[name].shape)}"
        for name in sorted(set(stored) & set(expected))
        if stored[name].shape != expected[name].shape
    ]
    if missing or unexpected or misshaped:
        raise ValueError(
            f"weights in {source} do not fit {type(model).__name__}: missing {missing}, unexpected {unexpected}, "
            f"mis-shaped {misshaped}"
        )
    model.load_state_dict(stored, strict=False)  # strictness checked above; tied aliases load through one name


def model_folder(path: str | os.PathLike) -> Path:
    """``path``, or its ``model/`` folder where ``path`` is a run folder of ``omniperceiver train``."""
    path = Path(path)
    if path.is_dir() and not (path / CONFIG_FILE).exists() and (path / "model" / CONFIG_FILE).is_file():
        return path / "model"
    return path


def load_directory(directory: str | os.PathLike) -> nn.Module:
    """Rebuild the model saved in ``directory`` by :meth:`PretrainedModel.save_pretrained`."""
    directory = Path(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory} is not an omniperceiver model directory: {name} is missing")
    config_file = directory / CONFIG_FILE
    try:
        text = config_file.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{config_file} is not UTF-8 text: {error}") from None
    if '"model_type": "perceiver"' in text and '"type"' not in text:  # (what transformers writes: never ours)
        raise ValueError(f"{config_file} is transformers': omniperceiver.from_pretrained converts it")
    config = Config.from_json(text, where=str(config_file))
    build = getattr(config, "build", None)
    if build is None:
        raise ValueError(f"{config_file} holds a {type(config).__name__}, which describes no model")
    model = build()
    load_weights(model, directory / WEIGHTS_FILE)
    return model.eval()


class PretrainedModel(nn.Module):
    """A model described by a config: ``save_pretrained(dir)`` and ``from_pretrained(dir)``."""

    config: Config

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in unique_state(self).items()}
        weights = save(tensors, metadata={"format": "pt"})
        atomic_write(directory / WEIGHTS_FILE, lambda file: file.write(weights))
        atomic_write(directory / CONFIG_FILE, lambda file: file.write((self.config.to_json() + "\n").encode()))

    @classmethod
    def from_pretrained(cls: type[M], directory: str | os.PathLike) -> M:
        """Load in eval mode from a directory that ``save_pretrained`` wrote, or a run folder of
        ``omniperceiver train``; :func:`omniperceiver.from_pretrained` also converts transformers directories
        and Hub ids."""
        if not Path(directory).is_dir():
            raise FileNotFoundError(
                f"{directory} is not a model directory (transformers directories and Hub ids load with "
                "omniperceiver.from_pretrained)"
            )
        model = load_directory(model_folder(directory))
        if not isinstance(model, cls):
            raise ValueError(f"{directory} holds a {type(model).__name__}, not a {cls.__name__}")
        return model
