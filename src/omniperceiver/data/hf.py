"""Local files through Hugging Face ``datasets``: loaded offline into memory-mapped Arrow tables, each example
read when it is used (as a folder's files are).

``hf_image_folder``: ``datasets``' ``imagefolder`` (a subfolder per class, or ``train/``, ``validation/`` and
``test/`` folders holding such subfolders, which are then those parts) as images (H, W, 3) in [0, 1].
``hf_table``: a csv, json (lines) or parquet table, one example per row: its numeric columns are the steps of a
one-channel series (T, 1), ``label_column`` the class.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omniperceiver.data.file_dataset import FileDataset
from omniperceiver.data.folders import image_shape, read_image
from omniperceiver.data.splits import Splits, indexed_labels, require_module, stratified_split
from omniperceiver.errors import one_line

TABLES = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SPLIT_NAMES = {"validation": ("validation", "valid", "val"), "test": ("test",)}  # what datasets calls the parts
INSTALL = "pip install datasets"


def _datasets() -> Any:
    """The ``datasets`` library, without its progress bars (its packaged builders read local files offline)."""
    library = require_module("datasets", INSTALL)
    library.disable_progress_bars()
    library.logging.set_verbosity(library.logging.CRITICAL)  # (its errors reach the user as ours, one line)
    return library


def _source(cell: dict) -> str | io.BytesIO:
    """Where the bytes of an undecoded image cell are: its file, or the cell itself."""
    return cell["path"] if cell["bytes"] is None else io.BytesIO(cell["bytes"])


def read_image_row(row: int, table: Any, size: tuple[int, int] | None) -> tuple[Tensor]:
    """Row ``row`` of an imagefolder table (undecoded images) as a folder's image is read (:func:`read_image`)."""
    return read_image(_source(table[row]["image"]), size)


def read_table_row(row: int, table: Any, columns: tuple[str, ...]) -> tuple[Tensor]:
    """Row ``row`` of a table: its ``columns`` as a one-channel series (T, 1)."""
    values = table[row]
    return (torch.tensor([float(values[c]) for c in columns]).unsqueeze(-1),)


def _parts(load: Any, path: Path, validation: Path | None, test: Path | None) -> dict[str, Any]:
    """The tables of the training part and of the validation and test parts: given as their own paths, or
    found beside the training part (``datasets``' split folders or files)."""
    loaded = load(path)
    tables = {"train": loaded["train"]}
    for part, given in (("validation", validation), ("test", test)):
        if given is not None:
            tables[part] = next(iter(load(given).values()))
        elif found := [loaded[name] for name in SPLIT_NAMES[part] if name in loaded]:
            tables[part] = found[0]
    return tables


def _reading(where: Path, call: Callable[[], Any]) -> Any:
    """``call()``, a ``datasets`` load of ``where``; whatever fails there is a ValueError naming ``where``."""
    try:
        return call()
    except Exception as error:  # (pyarrow's, datasets' DatasetGenerationError, ...)
        raise ValueError(f"cannot read {where}: {one_line(error)}") from error


def _split(name: str, tables: dict[str, Any], labels: dict[str, list[str]], read: Any, what: str, seed: int) -> Splits:
    """Splits of ``tables`` (their label columns removed) with the labels named in ``labels``."""
    classes, indices, given = indexed_labels(labels)
    table = _datasets().concatenate_datasets(list(tables.values()))
    rows = FileDataset(list(range(len(table))), indices, functools.partial(read, table=table))
    parts = ", ".join(f"{part} {len(t):,}" for part, t in tables.items())
    return stratified_split(name, rows, classes, f"{what} ({parts})", seed=seed, given=given)


def hf_image_folder(
    root: str | Path,
    *,
    size: tuple[int, int] | None = None,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """Images of an ``imagefolder`` (see the module docstring) read per example from the memory-mapped table;
    all of one size (checked from the headers) or resized to ``size``."""
    library = _datasets()
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")

    def load(folder: Path) -> Any:
        return _reading(folder, lambda: library.load_dataset("imagefolder", data_dir=str(folder)))

    tables = _parts(load, root, Path(validation) if validation else None, Path(test) if test else None)
    labels = {}
    for part, table in tables.items():
        feature = table.features.get("label")
        if feature is None or not hasattr(feature, "names"):
            raise ValueError(f"the {part} part of {root} has no class folders (a subfolder per class)")
        labels[part] = [feature.names[i] for i in table["label"]]
        tables[part] = table.remove_columns("label").cast_column("image", library.Image(decode=False))
    if size is None:
        shapes = set()
        for cell in (cell for table in tables.values() for cell in table["image"]):
            try:
                shapes.add(image_shape(_source(cell)))
            except (OSError, ValueError) as error:
                raise ValueError(f"cannot read {cell['path'] or 'an image'}: {one_line(error)}") from error
        if len(shapes) > 1:
            raise ValueError(f"the images in {root} differ in size ({sorted(shapes)[:3]}...): pass size=(H, W)")
    read = functools.partial(read_image_row, size=size)
    return _split(root.name, tables, labels, read, f"images of {root} through datasets' imagefolder", seed)


def hf_table(
    path: str | Path,
    *,
    label_column: str = "label",
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """One-channel series from the rows of a csv, json or parquet table (see the module docstring)."""
    library = _datasets()
    path = Path(path)

    def load(file: Path) -> Any:
        if not file.is_file():
            raise FileNotFoundError(f"{file} does not exist")
        if file.suffix.lower() not in TABLES:
            raise ValueError(f"{file}: expected a {', '.join(sorted(TABLES))} file")
        builder = TABLES[file.suffix.lower()]
        return _reading(file, lambda: library.load_dataset(builder, data_files={"train": str(file)}))

    tables = _parts(load, path, Path(validation) if validation else None, Path(test) if test else None)
    columns = None
    labels = {}
    for part, table in tables.items():
        if label_column not in table.column_names:
            raise ValueError(f"the {part} table has no column {label_column!r}; its columns: {table.column_names}")
        labels[part] = [str(label) for label in table[label_column]]
        table = table.remove_columns(label_column)
        numeric = [c for c, f in table.features.items() if getattr(f, "dtype", "").startswith(("int", "float"))]
        if other := sorted(set(table.column_names) - set(numeric)):
            raise ValueError(f"the {part} table's columns {other} are not numeric (only {label_column!r} may not be)")
        if columns is not None and tuple(table.column_names) != columns:
            raise ValueError(f"the {part} table's columns differ from the training table's: {table.column_names}")
        columns = tuple(table.column_names)
        tables[part] = table
    read = functools.partial(read_table_row, columns=columns)
    return _split(path.stem, tables, labels, read, f"rows of {path} through datasets", seed)
