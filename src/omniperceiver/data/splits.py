"""Fixed, seeded, stratified train/validation/test splits of datasets held in memory or read from files."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor
from torch.utils.data import IterableDataset, TensorDataset

from omniperceiver.data.file_dataset import FileDataset

TRAIN_FRACTION = 0.7  # the rest is halved between validation and test (test gets an odd one)


def package_file(package: str, relative: str, install: str) -> Path:
    """The path of a data file shipped inside ``package`` (read by path: some packages import slowly), or an
    ImportError that names the command installing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ImportError(f"this dataset needs the {package} package: {install}")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise FileNotFoundError(f"{package} is installed but has no {relative}; reinstall it: {install}")
    return path


def require_module(name: str, install: str) -> ModuleType:
    """Import ``name``, or raise an ImportError that names the command installing it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"this dataset needs the {name} package: {install}") from error


def pad_sequences(sequences: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Sequences (L_i, ...) -> zero-padded (B, L_max, ...) and the mask (B, L_max) of real steps."""
    longest = max(len(s) for s in sequences)
    values = torch.zeros(len(sequences), longest, *sequences[0].shape[1:])
    mask = torch.zeros(len(sequences), longest, dtype=torch.bool)
    for i, s in enumerate(sequences):
        values[i, : len(s)] = s
        mask[i, : len(s)] = True
    return values, mask


@dataclasses.dataclass(frozen=True)
class Splits:
    """A dataset cut once into train, validation and test parts (TensorDatasets, FileDatasets read per row, or
    streams of shards, whose rows' last tensor holds the targets: integer labels, or flow fields), with the
    class names (none for regression) and a line describing the data."""

    name: str
    train: TensorDataset | FileDataset | IterableDataset
    validation: TensorDataset | FileDataset | IterableDataset
    test: TensorDataset | FileDataset | IterableDataset
    classes: tuple[str, ...]
    description: str

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.validation), len(self.test)


def stratified_rows(
    labels: Tensor, *, seed: int = 0, fractions: tuple[float, float] = (TRAIN_FRACTION, 0.5)
) -> list[Tensor]:
    """Row indices of three parts of a dataset with ``labels`` (N,), class by class after a shuffle seeded by
    ``seed``: ``fractions[0]`` of each class for the first, ``fractions[1]`` of the rest for the second, the
    rest for the third; each part's rows shuffled (classes interleaved). The same seed gives the same parts."""
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] = [[], [], []]
    for label in labels.unique(sorted=True):
        rows = (labels == label).nonzero()[:, 0]
        rows = rows[torch.randperm(len(rows), generator=generator)]
        first = round(len(rows) * fractions[0])
        second = first + round((len(rows) - first) * fractions[1] - 1e-9)  # (a half rounds down: test gets it)
        for part, chunk in zip(parts, (rows[:first], rows[first:second], rows[second:]), strict=True):
            part.append(chunk)
    ordered = []
    for chunks in parts:
        rows = torch.cat(chunks)
        ordered.append(rows[torch.randperm(len(rows), generator=generator)])
    return ordered


def select(dataset: TensorDataset | FileDataset, rows: Tensor) -> TensorDataset | FileDataset:
    """The rows ``rows`` of ``dataset``, in that order."""
    if isinstance(dataset, FileDataset):
        return dataset.subset(rows)
    return TensorDataset(*(t[rows] for t in dataset.tensors))


def labels_of(dataset: TensorDataset | FileDataset) -> Tensor:
    """The targets (N, ...) of every row."""
    return dataset.labels if isinstance(dataset, FileDataset) else dataset.tensors[-1]


def stratified_split(
    name: str,
    data: tuple[Tensor, ...] | FileDataset,
    classes: tuple[str, ...],
    description: str,
    *,
    seed: int = 0,
    given: tuple[int, int | None, int | None] | None = None,
) -> Splits:
    """Split the rows of ``data`` (tensors, labels last, or a FileDataset) class by class, 70% train and the
    rest halved between validation and test, after a shuffle seeded by ``seed``: every part holds every class
    in the same proportion, and the same seed always gives the same parts.

    ``given``: the user gave some parts (their own validation or test folder): ``data``'s rows are the first
    folder's, then the validation folder's, then the test folder's, ``given`` their counts (None: not given).
    The given parts are used as they are; the missing ones are cut from the first folder's rows, stratified, in
    the same 70:15:15 proportions."""
    dataset = data if isinstance(data, FileDataset) else TensorDataset(*data)
    labels = labels_of(dataset)
    if given is None:
        rows = stratified_rows(labels, seed=seed)
    else:
        first, validation, test = given
        rest = 1 - TRAIN_FRACTION
        train_share = 1.0 if validation is not None and test is not None else TRAIN_FRACTION / (1 - rest / 2)
        cut = stratified_rows(labels[:first], seed=seed, fractions=(train_share, 1.0 if test is not None else 0.0))
        after = first + (validation or 0)
        rows = [
            cut[0],
            cut[1] if validation is None else torch.arange(first, after),
            cut[2] if test is None else torch.arange(after, after + test),
        ]
        if len(rows[0]) == 0:
            raise ValueError(f"{name}: no training examples left")
    parts = [select(dataset, part) for part in rows]
    return Splits(name, *parts, classes=classes, description=description)


def indexed_labels(names: dict[str, list[str]]) -> tuple[tuple[str, ...], Tensor, tuple | None]:
    """For each row's class name of the parts "train" (first), "validation" and "test" (where given): the
    classes (the training part's, sorted), every row's class index in part order, and the row counts that
    :func:`stratified_split` takes as ``given`` (None: the training part alone). A class the training part lacks
    is an error naming the part."""
    classes = tuple(sorted(set(names["train"])))
    for part, labels in names.items():
        if unknown := sorted(set(labels) - set(classes)):
            raise ValueError(f"the {part} part has classes the training part lacks: {unknown}")
    indices = torch.tensor([classes.index(label) for labels in names.values() for label in labels])
    counts = [len(names[part]) if part in names else None for part in ("train", "validation", "test")]
    return classes, indices, None if len(names) == 1 else (counts[0], counts[1], counts[2])


def label_fraction(splits: Splits, fraction: float, *, seed: int = 0) -> Splits:
    """``splits`` whose training part keeps a seeded ``fraction`` of each class's examples (at least one of
    each), as when only a few labels are known; validation and test stay whole."""
    if fraction == 1:
        return splits
    if not splits.classes:
        raise ValueError(f"training.label_fraction: {splits.name} has no class labels to keep a fraction of")
    labels = labels_of(splits.train)
    if labels.dim() != 1:
        raise ValueError(
            f"training.label_fraction: {splits.name} labels every element of an example, not the example:"
            " there is no class of an example to keep a fraction of"
        )
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for label in labels.unique(sorted=True):
        rows = (labels == label).nonzero()[:, 0]
        kept.append(rows[torch.randperm(len(rows), generator=generator)[: max(1, round(len(rows) * fraction))]])
    rows = torch.cat(kept).sort().values
    train = select(splits.train, rows)
    description = f"{splits.description}; training on {len(rows)} labelled examples ({fraction:g} of them)"
    return dataclasses.replace(splits, train=train, description=description)
