"""Labelled series of any number of channels and of any lengths: (B, T, C) zero-padded, their mask (B, T), labels.

Sources, by suffix: the UCR/UEA ``.ts`` text format (several dimensions, unequal lengths), ``.npz`` (``x``
(N, T, C) or (N, T), ``y`` (N,), and optionally ``lengths`` (N,)), a folder with a subfolder of ``.npy`` arrays
(T, C) or (T,) per class, and CSV: with an ``id`` column, one row per step (every other numeric column a
channel, the rows of one id in file order); without, one row per series of one channel, whose trailing empty
cells make it shorter.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch

from omniperceiver.data.splits import Splits, indexed_labels, package_file, pad_sequences, stratified_split

Series = tuple[list[np.ndarray], list[str]]  # arrays (T_i, C) and their labels


def read_ts(path: Path) -> Series:
    """A UCR/UEA .ts file: ``@`` header lines up to ``@data``, then one series per line, its dimensions
    separated by ``:`` (comma-separated values each) and its class label last."""
    arrays, labels, in_data = [], [], False
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower() == "@data"
                if line.lower().startswith("@timestamps") and line.split()[-1].lower() == "true":
                    raise ValueError(f"{path}, line {number}: series with time stamps are not read")
                continue
            *dimensions, label = line.split(":")
            try:
                channels = [np.array(d.split(","), dtype=np.float32) for d in dimensions]
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: {error}") from error
            if not dimensions or len({len(c) for c in channels}) != 1:
                lengths = [len(c) for c in channels]
                raise ValueError(f"{path}, line {number}: expected dimensions of one length, got lengths {lengths}")
            if not all(np.isfinite(c).all() for c in channels):
                raise ValueError(f"{path}, line {number}: missing (?) or non-finite values are refused")
            arrays.append(np.stack(channels, axis=1))
            labels.append(label.strip())
    if not in_data or not arrays:
        raise ValueError(f"{path}: no @data section with series")
    return arrays, labels


def read_npz(path: Path) -> Series:
    """A .npz with ``x`` (N, T, C) or (N, T), ``y`` (N,) and optionally ``lengths`` (N,) of each series."""
    with np.load(path, allow_pickle=False) as arrays:
        if "x" not in arrays or "y" not in arrays:
            raise ValueError(f"{path}: expected arrays 'x' (N, T, C) and 'y' (N,), got {sorted(arrays)}")
        x, y = arrays["x"].astype(np.float32), arrays["y"]
        lengths = arrays["lengths"] if "lengths" in arrays else np.full(len(x), x.shape[1] if x.ndim > 1 else 0)
    x = x[..., None] if x.ndim == 2 else x
    if x.ndim != 3 or len(y) != len(x) or len(lengths) != len(x):
        raise ValueError(f"{path}: expected x (N, T, C) or (N, T) and y, lengths (N,), got {x.shape}, {y.shape}")
    if not ((lengths >= 1) & (lengths <= x.shape[1])).all():
        raise ValueError(f"{path}: every length must lie in [1, {x.shape[1]}]")
    return [series[:length] for series, length in zip(x, lengths, strict=True)], [str(label) for label in y]


def read_npy_folder(root: Path) -> Series:
    """A subfolder per class of .npy arrays (T, C) or (T,)."""
    arrays, labels = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.npy")):
            array = np.load(path, allow_pickle=False).astype(np.float32)
            if array.ndim not in (1, 2) or not len(array):
                raise ValueError(f"{path}: expected a series (T, C) or (T,), got shape {array.shape}")
            arrays.append(array[:, None] if array.ndim == 1 else array)
            labels.append(folder.name)
    if not arrays:
        raise ValueError(f"{root} needs a subfolder per class holding .npy series (T, C)")
    return arrays, labels


def read_csv(path: Path, label_column: str = "label", id_column: str = "id") -> Series:
    """A CSV table: with ``id_column``, one row per step (the other numeric columns are the channels); else one
    row per series of one channel (every column but ``label_column``), trailing empty cells making it shorter."""
    try:
        with path.open(newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from error
    if not rows or label_column not in rows[0]:
        raise ValueError(f"{path} has no column {label_column!r}; its columns: {list(rows[0]) if rows else []}")
    for line, row in enumerate(rows, start=2):
        if None in row or None in row.values():  # csv's marks of extra and of missing fields
            more = "more" if None in row else "fewer"
            raise ValueError(f"{path}, line {line}: {more} fields than the header's {len(rows[0]) - (None in rows[0])}")
    columns = [c for c in rows[0] if c not in (label_column, id_column)]

    def numbers(row: dict[str, str], line: int, names: list[str]) -> list[float]:
        try:
            values = [float(row[c]) for c in names]
        except ValueError as error:
            raise ValueError(
                f"{path}, line {line}: every column but {label_column!r} must be numeric ({error})"
            ) from error
        if not np.isfinite(values).all():
            raise ValueError(f"{path}, line {line}: NaN and infinities are refused")
        return values

    if id_column in rows[0]:
        steps: dict[str, list[list[float]]] = {}
        labels: dict[str, str] = {}
        for line, row in enumerate(rows, start=2):
            key = row[id_column]
            if labels.setdefault(key, row[label_column]) != row[label_column]:
                raise ValueError(f"{path}, line {line}: series {key!r} changes its label")
            steps.setdefault(key, []).append(numbers(row, line, columns))
        return [np.array(s, dtype=np.float32) for s in steps.values()], list(labels.values())
    arrays = []
    for line, row in enumerate(rows, start=2):
        filled = [c for c in columns if row[c].strip()]
        if filled != columns[: len(filled)] or not filled:
            raise ValueError(f"{path}, line {line}: a shorter series leaves its last cells empty, none between")
        arrays.append(np.array(numbers(row, line, filled), dtype=np.float32)[:, None])
    return arrays, [row[label_column] for row in rows]


def read_series(path: str | Path, *, label_column: str = "label") -> Series:
    """The series of ``path`` by its kind (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        return read_npy_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    readers = {".ts": read_ts, ".npz": read_npz, ".csv": lambda p: read_csv(p, label_column)}
    if path.suffix.lower() not in readers:
        raise ValueError(f"{path}: expected a .ts, .npz or .csv file or a folder of .npy series per class")
    return readers[path.suffix.lower()](path)


def series(
    path: str | Path,
    *,
    label_column: str = "label",
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """Labelled series from ``path`` (and the ``validation`` and ``test`` parts, where given) as (B, T, C)
    zero-padded to the longest, the mask (B, T) of real steps and the labels; the classes are the training
    part's labels, sorted."""
    parts = {"train": path, "validation": validation, "test": test}
    read = {part: read_series(where, label_column=label_column) for part, where in parts.items() if where is not None}
    channels = {array.shape[1] for arrays, _ in read.values() for array in arrays}
    if len(channels) > 1:
        raise ValueError(f"the series of {path} differ in their number of channels: {sorted(channels)}")
    classes, labels, given = indexed_labels({part: names for part, (_, names) in read.items()})
    arrays = [torch.from_numpy(array) for arrays, _ in read.values() for array in arrays]
    values, mask = pad_sequences(arrays)
    where = ", ".join(f"{part}: {Path(parts[part]).name}" for part in read)
    lengths = mask.sum(1)
    description = (
        f"{len(arrays)} series of {channels.pop()} channels and {int(lengths.min())}-{int(lengths.max())} steps "
        f"({where})"
    )
    return stratified_split(Path(path).stem, (values, mask, labels), classes, description, seed=seed, given=given)


def csv_series(
    path: str | Path,
    *,
    label_column: str = "label",
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """:func:`series` of CSV files only (a folder is an error)."""
    for where in (path, validation, test):
        if where is not None and Path(where).is_dir():
            raise IsADirectoryError(f"{where} is a folder; csv-series reads one CSV file")
    return series(path, label_column=label_column, seed=seed, validation=validation, test=test)


def japanese_vowels(*, seed: int = 0) -> Splits:
    """The UEA archive's JapaneseVowels (as aeon ships it): 640 utterances of /ae/ by 9 speakers, 12 LPC
    cepstrum channels, 7-29 frames; the class is the speaker. The archive's own test part (370) is the test
    split; validation is cut from its training part (270), stratified."""
    folder = "datasets/data/JapaneseVowels"
    install = "pip install --no-deps aeon"
    train = package_file("aeon", f"{folder}/JapaneseVowels_TRAIN.ts", install)
    test = package_file("aeon", f"{folder}/JapaneseVowels_TEST.ts", install)
    return series(train, seed=seed, test=test)
