"""A user's own data: one subfolder per class (images, WAV files, texts, point clouds), or a text corpus."""

from __future__ import annotations

import dataclasses
import functools
import wave
import zlib
from collections.abc import Callable
from pathlib import Path, PurePath
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.data.byte_stream import byte_stream_splits
from omniperceiver.data.file_dataset import FileDataset, Read
from omniperceiver.data.splits import Splits, stratified_split
from omniperceiver.errors import one_line
from omniperceiver.media.audio import resample


def _class_files(
    root: str | Path, suffixes: tuple[str, ...], classes: tuple[str, ...] | None = None
) -> tuple[list[Path], list[int], tuple[str, ...]]:
    """Files with one of ``suffixes`` in each subfolder of ``root`` (the class, in sorted order); ``classes``:
    the training folder's classes, which the subfolders of a validation or test folder must be among."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder")
    names = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    if classes is not None and (unknown := sorted(set(names) - set(classes))):
        raise ValueError(f"{root} has classes the training folder lacks: {unknown} (its classes: {list(classes)})")
    classes = classes or names
    files, labels = [], []
    for name in names:
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in suffixes)
        files += found
        labels += [classes.index(name)] * len(found)
    if len(classes) < 2 or not files:
        raise ValueError(f"{root} needs a subfolder per class (2 or more) holding {'/'.join(suffixes)} files")
    return files, labels, classes


Source = Path | BinaryIO  # a file, or its bytes opened (named by their ``name``, "CLASS/FILE", as in shards)


def _name(source: Source) -> PurePath:
    return source if isinstance(source, Path) else PurePath(source.name)


def _contents(source: Source) -> bytes:
    return source.read_bytes() if isinstance(source, Path) else source.read()


Parts = tuple[int, int | None, int | None] | None  # the row counts of the folders given (see stratified_split)


def _folder_parts(
    root: str | Path, validation: str | Path | None, test: str | Path | None, suffixes: tuple[str, ...]
) -> tuple[list[Path], list[int], tuple[str, ...], Parts, str]:
    """The files and labels of the training folder ``root`` followed by those of the ``validation`` and
    ``test`` folders where given, the classes, the row counts for ``stratified_split`` and a description."""
    files, labels, classes = _class_files(root, suffixes)
    counts: list[int | None] = [len(files)]
    for folder in (validation, test):
        if folder is None:
            counts.append(None)
            continue
        more_files, more_labels, _ = _class_files(folder, suffixes, classes)
        files, labels = files + more_files, labels + more_labels
        counts.append(len(more_files))
    given = None if counts[1:] == [None, None] else (counts[0], counts[1], counts[2])
    return files, labels, classes, given, _described(root, validation, test)


def _described(root: str | Path, validation: str | Path | None, test: str | Path | None) -> str:
    """Where the parts come from, e.g. "PATH (validation: PATH, test: PATH)"."""
    named = [f"{part}: {path}" for part, path in (("validation", validation), ("test", test)) if path is not None]
    return f"{root}" + (f" ({', '.join(named)})" if named else "")


def _read_all(files: list[Path], read: Callable[[Path], object]) -> list:
    items = []
    for path in files:
        try:
            items.append(read(path))
        except (OSError, ValueError, wave.Error) as error:
            raise ValueError(f"cannot read {path}: {one_line(error)}") from error
    return items


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def image_shape(path: Path | BinaryIO) -> tuple[int, int]:
    """(H, W) of an image file (or its bytes) as :func:`~omniperceiver.media.load_image` returns it, from its
    header alone."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            transposed = image.getexif().get(0x0112) in TRANSPOSED
    except UnidentifiedImageError as error:
        raise ValueError("not an image Pillow can read") from error
    return (width, height) if transposed else (height, width)


def read_image(
    path: Source,
    size: tuple[int, int] | None = None,
    crop: tuple[int, int] | None = None,
    random_crop: bool = False,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> tuple[Tensor]:
    """An image file (or its bytes) as (H, W, 3) in [0, 1]: resized (bilinear) to ``size`` where it has another,
    cut to ``crop`` (H, W) at a random place (``random_crop``) or at its centre, then standardized per channel,
    (x - ``mean``) / ``std``, where they are given."""
    from omniperceiver.media import load_image

    image = torch.from_numpy(load_image(path)).float() / 255
    if size is not None and tuple(image.shape[:2]) != tuple(size):
        image = F.interpolate(image.permute(2, 0, 1)[None], size=size, mode="bilinear")[0].permute(1, 2, 0)
    if crop is not None:
        (h, w), (crop_h, crop_w) = image.shape[:2], crop
        if crop_h > h or crop_w > w:
            raise ValueError(f"the image is {h}x{w} pixels, smaller than crop={list(crop)}")
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        if random_crop:
            top, left = (int(torch.randint(extent + 1, ())) for extent in (h - crop_h, w - crop_w))
        image = image[top : top + crop_h, left : left + crop_w]
    if mean is not None:
        image = (image - torch.tensor(mean)) / torch.tensor(std)
    return (image,)


def image_reads(
    shapes: set[tuple[int, int]],
    where: str,
    size: tuple[int, int] | None,
    crop: tuple[int, int] | None,
    mean: tuple[float, float, float] | None,
    std: tuple[float, float, float] | None,
) -> tuple[Read, Read]:
    """The reads (:func:`read_image` with these options) of training images, cropped at random places, and of
    the other parts' images, cropped at their centres; images of the (H, W) ``shapes`` found in ``where``,
    which differ only if ``size`` resizes them. A bad option is a ValueError before anything is read."""
    if size is None and len(shapes) > 1:
        raise ValueError(f"the images in {where} differ in size ({sorted(shapes)[:3]}...): pass size=(H, W)")
    smallest = size or next(iter(shapes))
    if crop is not None and (crop[0] > smallest[0] or crop[1] > smallest[1]):
        raise ValueError(f"crop={list(crop)} is larger than the images of {where} ({list(smallest)})")
    if (mean is None) != (std is None) or (std is not None and min(std) <= 0):
        raise ValueError(f"mean and std go together, std > 0; got mean={mean}, std={std}")
    options = {"size": size, "crop": crop, "mean": mean, "std": std}
    return (
        functools.partial(read_image, **options, random_crop=crop is not None),
        functools.partial(read_image, **options),
    )


def image_folder(
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
    """PNG/JPEG/... images (H, W, 3) in [0, 1], read from disk per example (:class:`FileDataset`: the folder
    may be larger than memory); all of one size, or resized (bilinear) to ``size``; cut to ``crop`` (H, W), at
    a random place in each training example, at the centre in validation and test; standardized per channel
    with ``mean`` and ``std`` (e.g. ImageNet's). Every file's header is read at the start, so that a file
    that is no image, or of another size, is an error before training. The ``validation`` and ``test``
    folders, where given, are those parts (see :func:`stratified_split`)."""
    files, labels, classes, given, where = _folder_parts(root, validation, test, IMAGE_SUFFIXES)
    train_read, read = image_reads(set(_read_all(files, image_shape)), where, size, crop, mean, std)
    images = FileDataset(files, torch.tensor(labels), read)
    splits = stratified_split(Path(root).name, images, classes, f"images from {where}", seed=seed, given=given)
    return dataclasses.replace(splits, train=splits.train.reading(train_read))


def read_wav(path: Source) -> tuple[np.ndarray, int]:
    """Mono samples (S,) in [-1, 1) and the rate; a clip without samples or shorter than its header says is
    an error."""
    try:
        with wave.open(str(path) if isinstance(path, Path) else path) as clip:
            if clip.getsampwidth() != 2:
                raise ValueError(f"only 16-bit PCM WAV is read, this one has {8 * clip.getsampwidth()}-bit samples")
            frames, channels, rate = clip.getnframes(), clip.getnchannels(), clip.getframerate()
            data = clip.readframes(frames)
    except EOFError as error:
        raise ValueError("the file ends inside its WAV header") from error
    if frames == 0:
        raise ValueError("the clip holds no samples")
    if len(data) != frames * channels * 2:
        held = len(data) // (2 * channels)
        raise ValueError(f"truncated: the header announces {frames} frames, the file holds {held}")
    samples = np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768
    return samples.reshape(-1, channels).mean(1), rate


def read_clip(path: Source, sample_rate: int | None, length: int) -> tuple[Tensor, Tensor]:
    """A WAV file as a mono waveform (``length``,) resampled to ``sample_rate`` and zero-padded, and its mask."""
    samples, rate = read_wav(path)
    return _padded(resample(torch.from_numpy(samples), rate, sample_rate or rate), length)


def _padded(values: Tensor, length: int) -> tuple[Tensor, Tensor]:
    """``values`` (S, ...) zero-padded to (``length``, ...), and the mask (``length``,) of its own S."""
    mask = torch.zeros(length, dtype=torch.bool)
    mask[: len(values)] = True
    return torch.nn.functional.pad(values, (0, 0) * (values.dim() - 1) + (0, length - len(values))), mask


def wav_folder(
    root: str | Path,
    *,
    sample_rate: int | None = None,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """16-bit PCM WAV clips as mono waveforms (B, S) in [-1, 1], zero-padded to the longest, with their mask
    (B, S); every clip at one rate, or resampled (linear) to ``sample_rate``. Read per example
    (:class:`FileDataset`); every clip is read once at the start, to check it and to know the longest.
    ``validation`` and ``test``: those parts' folders, where given."""
    files, labels, classes, given, where = _folder_parts(root, validation, test, (".wav",))
    clips = FileDataset(files, torch.tensor(labels), clip_read(files, where, sample_rate))
    return stratified_split(Path(root).name, clips, classes, f"audio from {where}", seed=seed, given=given)


def clip_read(files: list[Path], where: str, sample_rate: int | None) -> Read:
    """The read (:func:`read_clip`) of the WAV ``files`` found in ``where``: each read once here, to check it
    and to know the longest, which every clip is padded to."""

    def rate_and_length(path: Path) -> tuple[int, int]:
        samples, rate = read_wav(path)
        return rate, resample(torch.from_numpy(samples), rate, sample_rate or rate).shape[-1]

    rates, lengths = zip(*_read_all(files, rate_and_length), strict=True)
    if sample_rate is None and len(set(rates)) > 1:
        raise ValueError(f"the clips in {where} have sample rates {sorted(set(rates))}: pass sample_rate")
    return functools.partial(read_clip, sample_rate=sample_rate, length=max(lengths))


def read_text(path: Source, length: int) -> tuple[Tensor, Tensor]:
    """A UTF-8 text file as byte ids [CLS] bytes [SEP] padded with [PAD] to ``length``, and its mask."""
    return encoded_text(_contents(path).decode("utf-8"), length)


def encoded_text(text: str, length: int) -> tuple[Tensor, Tensor]:
    """``text`` as byte ids [CLS] bytes [SEP] padded with [PAD] to ``length``, and its mask."""
    return _padded(torch.tensor(ByteTokenizer().encode(text), dtype=torch.long), length)


def text_folder(
    root: str | Path,
    *,
    max_length: int = 2048,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """UTF-8 text files, one example each, as byte ids [CLS] bytes [SEP] (B, L) with their mask, padded to the
    longest; a file longer than ``max_length`` tokens is an error (nothing is cut silently). Read per example
    (:class:`FileDataset`); every file is read once at the start, to check it and to know the longest.
    ``validation`` and ``test``: those parts' folders, where given."""
    files, labels, classes, given, where = _folder_parts(root, validation, test, (".txt",))
    lengths = _read_all(files, lambda path: len(path.read_text(encoding="utf-8").encode("utf-8")) + 2)
    if max(lengths) > max_length:
        longest = files[int(np.argmax(lengths))]
        raise ValueError(f"{longest} has {max(lengths)} tokens, more than max_length={max_length}")
    texts = FileDataset(files, torch.tensor(labels), functools.partial(read_text, length=max(lengths)))
    return stratified_split(Path(root).name, texts, classes, f"texts from {where}", seed=seed, given=given)


def read_points(path: Source) -> np.ndarray:
    """(P, 3) points of a .npy array, an ASCII .ply or an .off file."""
    suffix = _name(path).suffix.lower()
    if suffix == ".npy":
        points = np.load(path, allow_pickle=False)
    else:
        text = _contents(path).decode("utf-8")
        lines = [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]
        if suffix == ".off":
            if not lines or lines[0].split()[0] != "OFF":
                raise ValueError("an .off file starts with OFF")
            header = lines[0].split()
            counts, start = (header[1:], 1) if len(header) > 1 else (" ".join(lines[1:2]).split(), 2)
            count = counts[0] if counts else ""
        else:
            if lines[:1] != ["ply"] or "format ascii 1.0" not in "".join(lines[1:2]) or "end_header" not in lines:
                raise ValueError("only ASCII .ply files are read (ply, format ascii 1.0, ..., end_header)")
            counts = [line.split()[-1] for line in lines if line.startswith("element vertex")]
            count, start = (counts[0] if counts else ""), lines.index("end_header") + 1
        points = _vertices(lines[start:], count)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected points (P, 3), got shape {points.shape}")
    points = points.astype(np.float32)
    _require_finite(points, "point")
    return points


def _require_finite(values: np.ndarray, row_name: str) -> None:
    """Raise ValueError naming the first row of ``values`` (``row_name`` and its index from 0) holding NaN or
    an infinity."""
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if bad.any():
        row = int(bad.argmax())
        raise ValueError(f"{row_name} {row} is not finite ({values[row].tolist()}); NaN and infinities are refused")


def _vertices(lines: list[str], count: str) -> np.ndarray:
    """The first ``count`` (as the header gives it) of ``lines`` as points (count, 3)."""
    if not count.isdigit():
        raise ValueError(f"the header gives no vertex count (got {count!r})")
    rows = lines[: int(count)]
    if len(rows) < int(count):
        raise ValueError(f"truncated: the header announces {count} points, the file holds {len(rows)}")
    try:
        return np.array([line.split()[:3] for line in rows], dtype=np.float64)
    except ValueError as error:
        raise ValueError(f"expected 3 numbers per point ({error})") from error


def read_cloud(path: Source, points: int, seed: int) -> tuple[Tensor]:
    """``points`` points of a cloud file sampled without replacement (seeded by ``seed`` and the file's class
    folder and name, so that a file gives the same points wherever the folder lies) and centred (P, 3)."""
    cloud, name = read_points(path), _name(path)
    if len(cloud) < points:
        raise ValueError(f"{len(cloud)} points, fewer than points={points}")
    rng = np.random.default_rng([seed, zlib.crc32(f"{name.parent.name}/{name.name}".encode())])
    chosen = cloud[rng.choice(len(cloud), points, replace=False)]
    return (torch.from_numpy(chosen - chosen.mean(0)),)


def point_cloud_folder(
    root: str | Path,
    *,
    points: int = 512,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """Point clouds (.npy (P, 3), ASCII .ply, .off) as (B, ``points``, 3): each cloud's points sampled without
    replacement (seeded, the same every epoch) and centred; a cloud with fewer points is an error. Read per
    example (:class:`FileDataset`); every file is read once at the start, to check it. ``validation`` and
    ``test``: those parts' folders, where given."""
    files, labels, classes, given, where = _folder_parts(root, validation, test, (".npy", ".ply", ".off"))
    counts = _read_all(files, lambda path: len(read_points(path)))
    if min(counts) < points:
        fewest = int(np.argmin(counts))
        raise ValueError(f"{files[fewest]} has {counts[fewest]} points, fewer than points={points}")
    clouds = FileDataset(files, torch.tensor(labels), functools.partial(read_cloud, points=points, seed=seed))
    return stratified_split(Path(root).name, clouds, classes, f"point clouds from {where}", seed=seed, given=given)


def text_corpus(
    root: str | Path,
    *,
    length: int = 256,
    seed: int = 0,
    validation: str | Path | None = None,
    test: str | Path | None = None,
) -> Splits:
    """Every UTF-8 .txt file below ``root`` (sorted, recursively), for language modelling: each file's first
    90% for training, its next 5% for validation and its last 5% for test, read as
    :class:`~omniperceiver.data.byte_stream.ByteWindows` of ``length`` bytes. ``validation`` and ``test``: the
    folders of those parts, where given (all of their files), which are then not cut from ``root``'s."""

    def texts(folder: str | Path) -> list[bytes]:
        files = sorted(Path(folder).rglob("*.txt")) if Path(folder).is_dir() else []
        if not files:
            raise FileNotFoundError(f"{folder} is not a folder holding .txt files")
        return _read_all(files, lambda path: path.read_text(encoding="utf-8").encode("utf-8"))

    data = texts(root)
    given = {part: texts(folder) for part, folder in (("validation", validation), ("test", test)) if folder}
    description = f"{len(data)} text files in {_described(root, validation, test)}"
    return byte_stream_splits(data, Path(root).name, description, length=length, seed=seed, **given)
