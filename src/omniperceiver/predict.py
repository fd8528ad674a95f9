"""``omniperceiver predict``: run a model on files or texts, with the task of the published models of its structure
(:func:`omniperceiver.zoo.kind_of`).

Each input is handled on its own: an unreadable or wrong-kind input prints an error naming it and the
others still run. Inputs are files; a text model also takes literal texts (:class:`Text`, ``--text``), so a
mistyped file name is an error, never classified as text. Results are printed; flow fields and
reconstructions are written to ``output_dir``, at the input's path relative to the inputs' common folder
(a/f1.png -> a/f1_flow.png), so no two inputs share one.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm import tqdm

from omniperceiver import zoo
from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.errors import one_line
from omniperceiver.files import atomic_write, output_folder
from omniperceiver.inference import estimate_flow, fill_masks, normalize_frames, reconstruct, top_k
from omniperceiver.media import flow_to_rgb, imagenet_preprocess, load_image, save_npy, save_png

# (model, input: a path or Text, or a pair of frames, options, where the input's output files go less their suffix)
Runner = Callable[[nn.Module, Any, "PredictOptions", Path], str]


@dataclasses.dataclass(frozen=True)
class Text:
    """A literal text (``--text``), as opposed to the name of a text file."""

    text: str

    def __str__(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """``top`` classes to report; where flow fields and reconstructions go; whether to show progress."""

    top: int = 5
    output_dir: Path = Path(".")
    progress: bool = True


def _format_top(predictions: list[tuple[str, float]]) -> str:
    return "\n".join(f"  {probability:7.2%}  {label}" for label, probability in predictions)


def classify_image(model: nn.Module, path: str, options: PredictOptions, output: Path) -> str:
    shape, preprocessing = model.config.input.image_shape, zoo.kind_of(model.config).preprocessing
    if shape[0] != shape[1]:
        raise ValueError(f"the ImageNet preprocessing makes square images; this model takes {shape}")
    pixels = imagenet_preprocess(load_image(path), size=shape[0], **dataclasses.asdict(preprocessing))[None]
    return _format_top(top_k(model, pixels, options.top)[0])


def classify_text(model: nn.Module, text: str | Text, options: PredictOptions, output: Path) -> str:
    ids, mask = ByteTokenizer().batch([_read_text(text)], max_length=model.config.input.max_length)
    return _format_top(top_k(model, ids, options.top, mask)[0])


def fill_text(model: nn.Module, text: str | Text, options: PredictOptions, output: Path) -> str:
    return "  " + fill_masks(model, _read_text(text))


def optical_flow(model: nn.Module, pair: tuple[str, str], options: PredictOptions, output: Path) -> str:
    first, second = pair
    frames = [load_image(first), load_image(second)]
    if frames[0].shape != frames[1].shape:
        raise ValueError(f"the frames differ in size: {frames[0].shape} and {frames[1].shape}")
    flow = estimate_flow(model, normalize_frames(np.stack(frames)), progress=options.progress).numpy()
    stem = output.with_name(f"{output.name}_flow")
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_png(stem.with_suffix(".png"), flow_to_rgb(flow))
    save_npy(stem.with_suffix(".npy"), flow)
    magnitude = np.linalg.norm(flow, axis=-1)
    return (
        f"  flow {flow.shape[0]}x{flow.shape[1]}, mean |flow| {magnitude.mean():.2f} px, max {magnitude.max():.2f} px"
        f" -> {stem}.png, {stem}.npy"
    )


def autoencode(model: nn.Module, path: str, options: PredictOptions, output: Path) -> str:
    """A .npz clip with ``video`` (T, H, W, 3) uint8 and ``audio`` (S,) -> reconstruction .npz and label."""
    try:
        with np.load(path) as clip:
            video, audio = clip["video"], clip["audio"]
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path}: expected a .npz file with arrays 'video' and 'audio' ({error})") from error
    result = reconstruct(model, video, audio, progress=options.progress)
    out = output.with_name(f"{output.name}_reconstruction.npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda file: np.savez(file, **result))
    order = np.argsort(result["label"])[::-1][: options.top]
    video_error = np.abs(result["video"] - video / 255).mean()
    audio_error = np.abs(result["audio"] - audio).mean()
    lines = [f"  video mean |error| {video_error:.4f}, audio mean |error| {audio_error:.4f}"]
    lines += [f"  {result['label'][i]:7.2%}  class {i}" for i in order]
    return "\n".join([*lines, f"  -> {out}"])


def _read_text(item: str | Text) -> str:
    """A literal text as it is, a file's UTF-8 text (FileNotFoundError for a missing file, never its name as
    text)."""
    if isinstance(item, Text):
        return item.text
    try:
        return Path(item).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no such file (a literal text is given with --text {item!r})") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text ({error})") from error


RUNNERS: dict[str, Runner] = {
    "image classification": classify_image,
    "text classification": classify_text,
    "masked byte prediction": fill_text,
    "optical flow": optical_flow,
    "multimodal autoencoding": autoencode,
}


def task(model: nn.Module) -> tuple[str, Runner]:
    """(task, runner) of the published models whose structure ``model`` has."""
    kind = zoo.kind_of(getattr(model, "config", None))
    if kind is None:
        adapters = [type(getattr(model, name, None)).__name__ for name in ("input_adapter", "output_adapter")]
        structure = f" of {adapters[0]} -> {adapters[1]}" if hasattr(model, "output_adapter") else ""
        raise ValueError(
            f"predict knows no task for a {type(model).__name__}{structure}: it runs the published "
            f"models' tasks ({', '.join(RUNNERS)}); a model that `omniperceiver train` made predicts from its run "
            "folder"
        )
    return kind.task, RUNNERS[kind.task]


def predict(
    model: nn.Module, inputs: Sequence[str], options: PredictOptions, *, texts: Sequence[str] = ()
) -> Iterator[tuple[str, str | None, str]]:
    """Yield (input, result or None, error message) per input file, then per literal text of ``texts`` (text
    models only); flow takes its inputs in pairs. Flow and reconstruction check ``output_dir`` first."""
    name, runner = task(model)
    if texts and runner not in (classify_text, fill_text):
        raise ValueError(f"--text is for text models; this model does {name} on files")
    if runner in (optical_flow, autoencode):
        output_folder(options.output_dir)
    items: list = [*inputs, *map(Text, texts)]
    if runner is optical_flow:
        if len(inputs) % 2:
            raise ValueError(f"optical flow takes frames in pairs (first, second); got {len(inputs)} files")
        items = list(zip(inputs[::2], inputs[1::2], strict=True))
    if runner in (optical_flow, autoencode):  # the runners that write files
        outputs = _output_paths([item[0] if isinstance(item, tuple) else item for item in items], options.output_dir)
    else:
        outputs = [options.output_dir] * len(items)
    bar = tqdm(items, desc=name, disable=not options.progress or len(items) < 2, file=sys.stderr)
    for item, output in zip(bar, outputs, strict=True):
        label = " + ".join(item) if isinstance(item, tuple) else str(item)
        try:
            yield label, runner(model, item, options, output), ""
        except (OSError, ValueError) as error:
            yield label, None, one_line(error)


def _output_paths(inputs: Sequence[str], output_dir: Path) -> list[Path]:
    """Where each input's output files go, less their suffix: ``output_dir`` / the input's path relative to the
    inputs' common folder, without its suffix; an input named twice (or a.png beside a.jpg) is numbered: a_2."""
    paths = [Path(item).resolve() for item in inputs]
    root = Path(os.path.commonpath([path.parent for path in paths])) if paths else Path()
    outputs: dict[Path, None] = {}  # ordered, with set lookups
    for path in paths:
        output, number = output_dir / path.relative_to(root).with_suffix(""), 1
        while output in outputs:
            number += 1
            output = output.with_name(f"{path.stem}_{number}")
        outputs[output] = None
    return list(outputs)
