"""``from_pretrained``: an omniperceiver model directory, a training run folder, a transformers Perceiver directory,
or a Hub id."""

from __future__ import annotations

import os
import re
from pathlib import Path

from torch import nn

from omniperceiver.interop.transformers import convert_transformers, is_transformers_directory
from omniperceiver.models.pretrained import CONFIG_FILE, load_directory, model_folder


def from_pretrained(source: str | os.PathLike) -> nn.Module:
    """Load a model in eval mode from ``source``:

    - a directory written by ``save_pretrained`` (config.json + model.safetensors);
    - a run folder of ``omniperceiver train`` (the model in its ``model/`` folder);
    - a transformers Perceiver directory (any of the seven published classes), converted on the fly;
    - a Hugging Face Hub id such as ``deepmind/vision-perceiver-conv`` (needs huggingface_hub and a network):
      only a string that can be nothing but a Hub id (see :func:`is_hub_id`) is looked up on the Hub.
    """
    path = model_folder(source)
    if path.is_dir():
        return convert_transformers(path) if is_transformers_directory(path) else load_directory(path)
    if path.exists():
        raise FileNotFoundError(f"{source} is a file, not a model directory")
    if not is_hub_id(source):
        raise FileNotFoundError(f"{source} does not exist (and is not a Hub id of the form owner/name)")
    return convert_transformers(_download(source))


def is_hub_id(source: str | os.PathLike) -> bool:
    """Whether ``source`` can only mean a Hub repository: a string ``owner/name`` of letters, digits, ``_``,
    ``-`` and ``.``, neither part starting with ``.`` or ``-``, whose owner is not a local path (``runs/x``
    with no folder ``runs/x`` is a missing local folder, not a Hub id)."""
    match = isinstance(source, str) and re.fullmatch(r"([A-Za-z0-9_][\w.-]*)/[A-Za-z0-9_][\w.-]*", source)
    return bool(match) and not Path(match.group(1)).exists()


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise FileNotFoundError(
            f"{repo_id} is not a local directory; to fetch it from the Hub: pip install huggingface_hub"
        ) from error
    try:
        return Path(snapshot_download(repo_id, allow_patterns=[CONFIG_FILE, "model.safetensors", "pytorch_model.bin"]))
    except Exception as error:  # network, authentication or unknown repository: one clear message
        raise FileNotFoundError(f"cannot download {repo_id} from the Hugging Face Hub: {error}") from error
