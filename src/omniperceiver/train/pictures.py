"""The pictures of a run folder (PNG), drawn by the tasks: training curves, the test confusion matrix of a
classifier, the encoder's cross-attention over one test input, predicted beside true optical flow and
segmentations, and a language model's samples."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import lightning
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor, nn
from torchmetrics.functional.image import peak_signal_noise_ratio

from omniperceiver.adapters.points import PointCloudInputAdapter
from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.files import atomic_write
from omniperceiver.inference.generate import generate
from omniperceiver.media.flow import flow_to_rgb

LATENTS_SHOWN = 4


def _figure(rows: int, columns: int, size: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure (drawn without pyplot, so no global backend, laid out by matplotlib's constrained layout) and
    its (rows, columns) axes."""
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


def _save(figure: Figure, path: Path) -> None:
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=110))


def samples(model: nn.Module, tokenizer: ByteTokenizer, prompts: list[str], path: Path, *, header: str = "") -> None:
    """``header``, then a continuation of each prompt (100 tokens sampled at temperature 0.8, seeded)."""
    prompts_ids = [tokenizer.encode(prompt)[:-1] for prompt in prompts]  # [CLS] ids, as the windows start
    generator = torch.Generator().manual_seed(0)
    outputs = generate(model.eval(), prompts_ids, 100, temperature=0.8, eos_id=ByteTokenizer.SEP, generator=generator)
    lines = [header] if header else []
    lines += [f"{tokenizer.decode(p)!r} -> {tokenizer.decode(o)!r}" for p, o in zip(prompts_ids, outputs, strict=True)]
    text = "".join(f"{line}\n" for line in lines)
    atomic_write(path, lambda file: file.write(text.encode()))


def last_value(metrics_csv: Path, column: str) -> float:
    """The last value logged in ``column`` of Lightning's CSV log."""
    with metrics_csv.open() as file:
        values = [row[column] for row in csv.DictReader(file) if row.get(column)]
    if not values:
        raise ValueError(f"{metrics_csv} has no {column} values")
    return float(values[-1])


def curves(metrics_csv: Path, metric: str, path: Path) -> None:
    """Loss and ``metric`` per epoch, train and validation, from Lightning's CSV log."""
    with metrics_csv.open() as file:
        rows = list(csv.DictReader(file))
    figure, axes = _figure(1, 2, (9, 3.5))
    for ax, name in zip(axes[0], ("loss", metric), strict=True):
        for part in ("train", "val"):
            points = {int(r["epoch"]): float(r[f"{part}_{name}"]) for r in rows if r.get(f"{part}_{name}")}
            ax.plot(list(points), list(points.values()), label={"train": "train", "val": "validation"}[part])
        ax.set(xlabel="epoch", title=name)
        ax.legend()
    _save(figure, path)


def confusion(matrix: np.ndarray, classes: tuple[str, ...], path: Path) -> None:
    """The test split's confusion matrix (K, K) (rows true, columns predicted)."""
    size = max(4.0, 0.5 * len(classes) + 2)
    figure, axes = _figure(1, 1, (size, size))
    ax = axes[0, 0]
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ticks = range(len(classes))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=classes, yticklabels=classes, xlabel="predicted", ylabel="true")
    ax.set_title(f"test confusion matrix, accuracy {np.trace(matrix) / matrix.sum():.3f}")
    ax.tick_params(axis="x", labelrotation=45)
    _save(figure, path)


def _panels(
    x: Tensor | dict[str, Tensor], mask: Tensor | dict[str, Tensor] | None, weights: Tensor, adapter: nn.Module
) -> list[tuple[str, Tensor, np.ndarray]]:
    """Split the attention (N, M) of one example over its input: (modality, what it attends, the input)."""
    if isinstance(x, dict):
        panels, start = [], 0
        for name, part in adapter.modalities.items():
            inputs, _ = part(x[name], None if mask is None else mask.get(name))
            count = inputs.shape[1]
            part_mask = None if mask is None else mask.get(name)
            for _, w, shown in _panels(x[name], part_mask, weights[:, start : start + count], part):
                panels.append((name, w, shown))
            start += count
        return panels
    sample = x[0]
    if sample.dim() == 4:  # flow frames (T, C, H, W): attention over pixels of the first frame
        h, w = sample.shape[-2:]
        return [("pixels", weights.view(-1, h, w), sample[0].mean(0).cpu().numpy())]
    if sample.dim() == 3:  # an image (C, H, W), read as pixels or patches
        grid = adapter.config.array.index_shape
        return [
            ("pixels" if grid == sample.shape[1:] else "patches", weights.view(-1, *grid), sample.mean(0).cpu().numpy())
        ]
    if isinstance(adapter, PointCloudInputAdapter):  # points (M, 3)
        return [("points", weights, sample.cpu().numpy())]
    length = int(mask[0].sum()) if mask is not None else weights.shape[1]
    return [("sequence", weights[:, :length], sample.cpu().numpy())]


def attention(module: lightning.LightningModule, example: tuple[Tensor, ...], path: Path) -> None:
    """The first cross-attention of the encoder over one test input, averaged over heads: for images, where
    the most selective latents look; for sequences, every latent (rows) over the steps (columns); for point
    clouds, the points coloured by a latent's attention."""
    model = module.model.eval()
    x, mask, _ = module.task.unpack(example)
    with torch.no_grad():
        inputs, input_mask = model.input_adapter(x, mask)
        weights = model.encoder.cross_attention_maps(inputs, input_mask)[0][0].mean(0).float()  # (N, M)
    panels = _panels(x, mask, weights, model.input_adapter)
    columns = LATENTS_SHOWN + 1
    figure, axes = _figure(len(panels), columns, (2.6 * columns, 2.6 * len(panels)))
    for index, (row, (kind, w, shown)) in enumerate(zip(axes, panels, strict=True)):
        if w.dim() == 3 or kind == "points":
            for ax in row:
                ax.axis("off")
            flat = w.flatten(1)
            chosen = flat.var(dim=1).argsort(descending=True)[:LATENTS_SHOWN].tolist()  # the most selective
            if kind == "points":
                row[0].scatter(shown[:, 0], shown[:, 1], s=3, c="gray")
            else:
                row[0].imshow(shown, cmap="gray")
            row[0].set_title(f"input ({kind})")
            for ax, latent in zip(row[1:], chosen, strict=False):
                if kind == "points":
                    ax.scatter(shown[:, 0], shown[:, 1], s=3, c=w[latent].cpu().numpy(), cmap="magma")
                else:
                    ax.imshow(w[latent].cpu().numpy(), cmap="magma", extent=(0, shown.shape[1], shown.shape[0], 0))
                ax.set_title(f"latent {latent}")
        else:  # one heat map across the row
            grid = row[0].get_gridspec()
            for ax in row:
                ax.remove()
            heat = figure.add_subplot(grid[index, :])
            heat.imshow(w.cpu().numpy(), aspect="auto", cmap="magma", interpolation="nearest")
            heat.set(xlabel=f"{kind} element", ylabel="latent")
    figure.suptitle("encoder cross-attention over one test input")
    _save(figure, path)


def flow(module: lightning.LightningModule, examples: tuple[Tensor, ...], path: Path) -> None:
    """For each test pair: the first frame, the true flow and the predicted flow (one colour scale per pair)."""
    model = module.model.eval()
    frames, _, target = module.task.unpack(examples)
    with torch.no_grad():
        predicted = model(frames).float()
    flow_rows(frames, target, predicted, path)


def flow_rows(frames: Tensor, target: Tensor, predicted: Tensor, path: Path, names: Sequence[str] = ()) -> None:
    """A row per pair of ``frames`` (P, 2, 3, H, W) in [-1, 1]: the first frame, the ``target`` flow and the
    ``predicted`` flow (P, H, W, 2) in one colour scale, titled by its row's ``names`` (default "predicted") and
    the end-point error over the pixels whose target is known (not NaN)."""
    names = names or ["predicted"] * len(frames)
    figure, axes = _figure(len(frames), 3, (9, 3.2 * len(frames) * frames.shape[-2] / frames.shape[-1]))
    for row, pair, true, guess, name in zip(axes, frames, target, predicted, names, strict=True):
        width = true.shape[1]
        colours = flow_to_rgb(torch.cat([true, guess], dim=1))
        epe = (guess - true).norm(dim=-1).nanmean()  # over the pixels whose target is known
        image = (pair[0].permute(1, 2, 0).cpu().numpy() + 1) / 2
        for ax, shown, title in zip(
            row,
            (image.clip(0, 1), colours[:, :width], colours[:, width:]),
            ("first frame", "true flow", f"{name}, EPE {epe:.2f} px"),
            strict=True,
        ):
            ax.imshow(shown)
            ax.set_title(title)
            ax.axis("off")
    _save(figure, path)


def segmentation(module: lightning.LightningModule, examples: tuple[Tensor, ...], classes: int, path: Path) -> None:
    """For each test image: the image, its true labels and the predicted labels (one colour per class)."""
    model = module.model.eval()
    images, mask, target = module.task.unpack(examples)
    with torch.no_grad():
        predicted = model(images, mask).argmax(-1)
    figure, axes = _figure(len(target), 3, (7.5, 2.5 * len(target)))
    labels = {"cmap": "tab20", "vmin": 0, "vmax": max(classes - 1, 1), "interpolation": "nearest"}
    for row, image, true, guess in zip(axes, images, target, predicted, strict=True):
        row[0].imshow(image.mean(0).cpu().numpy(), cmap="gray")
        row[1].imshow(true.cpu().numpy(), **labels)
        row[2].imshow(guess.cpu().numpy(), **labels)
        accuracy = (guess == true).float().mean()
        for ax, title in zip(row, ("image", "true labels", f"predicted, {accuracy:.1%} of pixels right"), strict=True):
            ax.set_title(title)
            ax.axis("off")
    _save(figure, path)


def reconstructions(images: Tensor, reconstructed: Tensor, path: Path) -> None:
    """Test images (B, H, W, C) in [0, 1] above their reconstructions (same shape), each with its PSNR."""
    figure, axes = _figure(2, len(images), (1.6 * len(images), 3.6))
    for column, (image, guess) in enumerate(zip(images, reconstructed, strict=True)):
        psnr = peak_signal_noise_ratio(guess, image, data_range=1.0)
        for ax, shown, title in ((axes[0, column], image, "input"), (axes[1, column], guess, f"{psnr:.1f} dB")):
            ax.imshow(shown.float().cpu().numpy().squeeze(-1) if shown.shape[-1] == 1 else shown.cpu().numpy(),
                      cmap="gray", vmin=0, vmax=1)  # fmt: skip
            ax.set_title(title)
            ax.axis("off")
    _save(figure, path)
