"""Writing files: atomic writes (readers see the old file or the complete new one, never a partial one) and
output folders checked before any work is done."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary file in its directory, flushed to disk, then
    renamed into place. The file gets the permissions of an ordinary one."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a folder to write into, created if missing; NotADirectoryError when it is a file,
    PermissionError when it cannot be written, each naming it."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder to write into")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a parent is a file, or not writable
        raise type(error)(f"cannot create the folder {folder}: {error.strerror}: {error.filename}") from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write into the folder {folder}: no permission")
    return folder
