"""Local files through Hugging Face ``datasets``: loaded offline into memory-mapped Arrow tables, each example
read when it is used (as a folder's files are).

``hf_image_folder``: ``datasets``' ``imagefolder`` (a subfolder per class, or ``train/``, ``validation/`` and
``test/`` folders holding such subfolders, which are then those parts) as images (H, W, 3) in [0, 1].
``hf_audio_folder``: an ``audiofolder`` laid out the same way, its WAV clips read as ``audio-folder`` reads them
(``datasets`` >= 4 decodes audio only through ``torchcodec``, whose build on this project's package index is a
CUDA one: ``datasets`` indexes the files, they are decoded here).
``hf_table``: a csv, json (lines) or parquet table, one example per row: its numeric columns are the steps of a
one-channel series (T, 1), ``label_column`` the class. ``hf_text_table``: such a table's ``text_column``, one
text per row, as byte ids.
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from omniperceiver.data.byte_stream import HELD_OUT, TableBytes, windows_splits
from omniperceiver.data.file_dataset import FileDataset, Read
from omniperceiver.data.folders import clip_read, encoded_text, image_reads, image_shape
from omniperceiver.data.splits import Splits, indexed_labels, require_module, stratified_split
from omniperceiver.errors import one_line

TABLES = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
AUDIO_SUFFIXES = (".wav",)  # (the clips read_wav reads)
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


def read_image_row(row: int, table: Any, read: Read) -> tuple[Tensor]:
    """Row ``row`` of an imagefolder table (undecoded images) as a folder's image is read (by a
    :func:`read_image` partial)."""
    return read(_source(table[row]["image"]))


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


def _split(
    name: str, tables: dict[str, Any], labels: dict[str, list[str]], read: Any, what: str, seed: int, train_read=None
) -> Splits:
    """Splits of ``tables`` (their label columns removed) with the labels named in ``labels``, their rows read
    by ``read`` (training rows by ``train_read``, where given)."""
    classes, indices, given = indexed_labels(labels)
    table = _datasets().concatenate_datasets(list(tables.values()))
    rows = FileDataset(list(range(len(table))), indices, functools.partial(read, table=table))
    parts = ", ".join(f"{part} {len(t):,}" for part, t in tables.items())
    splits = stratified_split(name, rows, classes, f"{what} ({parts})", seed=seed, given=given)
    if train_read is None:
        return splits
    return dataclasses.replace(splits, train=splits.train.reading(functools.partial(train_read, table=table)))


def hf_image_folder(
    root: str | Path,
    *,
    size: tuple[int, int] | None = None,
    crop: tuple[int, int] | None = None,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """Images of an ``imagefolder`` (see the module docstring) read per example from the memory-mapped table;
    all of one size (checked from the headers) or resized to ``size``, cropped and standardized as
    :func:`~omniperceiver.data.folders.image_folder` says."""
    library = _datasets()
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")

    def load(folder: Path) -> Any:
        return _reading(folder, lambda: library.load_dataset("imagefolder", data_dir=str(folder)))

    tables = _parts(load, root, _path(validation), _path(test))
    labels = {}
    for part, table in tables.items():
        feature = table.features.get("label")
        if feature is None or not hasattr(feature, "names"):
            raise ValueError(f"the {part} part of {root} has no class folders (a subfolder per class)")
        labels[part] = [feature.names[i] for i in table["label"]]
        tables[part] = table.remove_columns("label").cast_column("image", library.Image(decode=False))
    shapes = set()
    for cell in (cell for table in tables.values() for cell in table["image"]):
        try:
            shapes.add(image_shape(_source(cell)))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read {cell['path'] or 'an image'}: {one_line(error)}") from error
    train_read, read = image_reads(shapes, str(root), size, crop, mean, std)
    read, train_read = (functools.partial(read_image_row, read=r) for r in (read, train_read))
    return _split(root.name, tables, labels, read, f"images of {root} through datasets' imagefolder", seed, train_read)


def hf_audio_folder(
    root: str | Path,
    *,
    sample_rate: int | None = None,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """16-bit PCM WAV clips of an ``audiofolder`` (laid out as an imagefolder, see the module docstring),
    indexed by ``datasets`` and read per example as :func:`~omniperceiver.data.folders.wav_folder` reads
    them (mono, resampled to ``sample_rate``, padded to the longest, with their mask)."""
    library = _datasets()
    root = Path(root)
    folders = [folder for folder in (root, _path(validation), _path(test)) if folder is not None]
    for folder in folders:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
    parents = {path.parent.name for folder in folders for path in folder.rglob("*") if path.suffix in AUDIO_SUFFIXES}
    names = sorted(parents - {name for names in SPLIT_NAMES.values() for name in names} - {"train"})
    if len(names) < 2:
        raise ValueError(f"{root} needs a subfolder per class (2 or more) holding {'/'.join(AUDIO_SUFFIXES)} files")
    features = library.Features({"audio": library.Value("string"), "label": library.ClassLabel(names=names)})

    def load(folder: Path) -> Any:  # (its audio as paths: datasets decodes audio only through torchcodec)
        return _reading(folder, lambda: library.load_dataset("audiofolder", data_dir=str(folder), features=features))

    tables = _parts(load, root, _path(validation), _path(test))
    classes, labels, given = indexed_labels({part: [names[i] for i in t["label"]] for part, t in tables.items()})
    files = [Path(path) for table in tables.values() for path in table["audio"]]
    clips = FileDataset(files, labels, clip_read(files, str(root), sample_rate))
    what = f"audio of {root} through datasets' audiofolder"
    return stratified_split(root.name, clips, classes, what, seed=seed, given=given)


def _labelled_tables(path: Path, validation: Path | None, test: Path | None, label_column: str) -> tuple[dict, dict]:
    """The tables of a csv, json or parquet file ``path`` (and of the ``validation`` and ``test`` files where
    given), their ``label_column`` removed, and each part's labels (as text)."""
    library = _datasets()

    def load(file: Path) -> Any:
        if not file.is_file():
            raise FileNotFoundError(f"{file} does not exist")
        if file.suffix.lower() not in TABLES:
            raise ValueError(f"{file}: expected a {', '.join(sorted(TABLES))} file")
        builder = TABLES[file.suffix.lower()]
        return _reading(file, lambda: library.load_dataset(builder, data_files={"train": str(file)}))

    tables = _parts(load, path, validation, test)
    labels = {}
    for part, table in tables.items():
        if label_column not in table.column_names:
            raise ValueError(f"the {part} table has no column {label_column!r}; its columns: {table.column_names}")
        labels[part] = [str(label) for label in table[label_column]]
        tables[part] = table.remove_columns(label_column)
    return tables, labels


def hf_table(
    path: str | Path,
    *,
    label_column: str = "label",
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """One-channel series from the rows of a csv, json or parquet table (see the module docstring)."""
    path = Path(path)
    tables, labels = _labelled_tables(path, _path(validation), _path(test), label_column)
    columns = None
    for part, table in tables.items():
        numeric = [c for c, f in table.features.items() if getattr(f, "dtype", "").startswith(("int", "float"))]
        if other := sorted(set(table.column_names) - set(numeric)):
            raise ValueError(f"the {part} table's columns {other} are not numeric (only {label_column!r} may not be)")
        if columns is not None and tuple(table.column_names) != columns:
            raise ValueError(f"the {part} table's columns differ from the training table's: {table.column_names}")
        columns = tuple(table.column_names)
        tables[part] = table.cast(_datasets().Features({c: _datasets().Value("float64") for c in columns}))
    read = functools.partial(read_table_row, columns=columns)
    return _split(path.stem, tables, labels, read, f"rows of {path} through datasets", seed)


def read_text_row(row: int, table: Any, column: str, length: int) -> tuple[Tensor, Tensor]:
    """Row ``row``'s text in ``column`` as byte ids padded to ``length``, and its mask (:func:`encoded_text`)."""
    return encoded_text(table[row][column], length)


def hf_text_table(
    path: str | Path,
    *,
    text_column: str = "text",
    label_column: str = "label",
    max_length: int = 2048,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """Texts of a csv, json or parquet table's ``text_column``, one example per row, as byte ids [CLS] bytes
    [SEP] (B, L) with their mask, padded to the longest; a text longer than ``max_length`` tokens is an error
    naming its row (nothing is cut silently). Read per example from the memory-mapped table."""
    path = Path(path)
    tables, labels = _labelled_tables(path, _path(validation), _path(test), label_column)
    longest = 0
    for part, table in tables.items():
        if getattr(table.features.get(text_column), "dtype", None) not in ("string", "large_string"):
            raise ValueError(f"the {part} table has no text column {text_column!r}; its columns: {table.column_names}")
        tables[part] = table.select_columns([text_column]).cast_column(text_column, _datasets().Value("string"))
        lengths = [len(text.encode("utf-8")) + 2 for text in table[text_column]]
        if max(lengths) > max_length:
            row = max(range(len(lengths)), key=lengths.__getitem__)
            tokens = lengths[row]
            raise ValueError(f"row {row} of the {part} table has {tokens} tokens, more than max_length={max_length}")
        longest = max(longest, max(lengths))
    read = functools.partial(read_text_row, column=text_column, length=longest)
    return _split(path.stem, tables, labels, read, f"texts of {path} through datasets", seed)


def hf_text_corpus(
    root: str | Path,
    *,
    length: int = 256,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """Every UTF-8 .txt file below ``root`` (sorted, recursively) for language modelling, through ``datasets``'
    ``text`` builder: one memory-mapped table of their lines, read as
    :class:`~omniperceiver.data.byte_stream.ByteWindows` of ``length`` bytes over its rows, the first 90% of
    its bytes for training, the next 5% for validation, the last 5% for test (cut at line ends), so that a
    corpus larger than memory stays on disk (one int64 per line is held). ``validation`` and ``test``: the
    folders of those parts, where given (all of their files), which are then not cut from ``root``'s."""
    library = _datasets()

    def corpus(folder: Path) -> TableBytes:
        files = sorted(folder.rglob("*.txt")) if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(f"{folder} is not a folder holding .txt files")
        files = {"train": list(map(str, files))}
        loaded = _reading(folder, lambda: library.load_dataset("text", data_files=files, keep_linebreaks=True))
        return TableBytes.of(loaded["train"])

    whole = corpus(Path(root))
    named = (("validation", validation), ("test", test))
    given = {part: corpus(Path(folder)) for part, folder in named if folder is not None}
    held_out = [0.0 if part in given else share for part, share in zip(("validation", "test"), HELD_OUT, strict=True)]
    first, second = whole.row_at(1 - sum(held_out)), whole.row_at(1 - held_out[1])
    parts = (
        whole.rows(0, first),
        given.get("validation") or whole.rows(first, second),
        given.get("test") or whole.rows(second, whole.end),
    )
    total = len(whole) + sum(map(len, given.values()))
    where = f"{root}" + "".join(f", {part}: {folder}" for part, folder in named if folder is not None)
    description = f"the lines of the .txt files in {where} through datasets"
    return windows_splits(parts, Path(root).name, description, length=length, seed=seed, total=total)


def _path(given: str | Path | None) -> Path | None:
    return Path(given) if given is not None else None
