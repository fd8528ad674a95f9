"""Audio + video fusion (the seed's AudioSet table: Perceiver 38.4 mAP on audio, 25.8 on video, 43.2 on both):
on the audio-visual digits, the Perceiver on the image alone, on the audio alone, on both read at once (early
fusion), and late fusion (the two single-modality models' logits averaged); test accuracy."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from omniperceiver.loading import from_pretrained
from omniperceiver.reproduce.table import Reproduction, Table
from omniperceiver.train.demo import DEMO, run_demo
from omniperceiver.train.recipe import load_recipe

IMAGE, AUDIO, BOTH = "audiovisual-image", "audiovisual-audio", "audiovisual-digits"
NONE = math.nan


@torch.inference_mode()
def test_logits(recipe: str, run_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits (B, K) of the model trained by ``recipe`` in ``run_dir`` on its test split, and the labels (B,)."""
    task = load_recipe(recipe).task
    test = task.splits(None).test.tensors
    x, mask, labels = task.unpack(test)
    return from_pretrained(run_dir / "model").eval()(x, mask).float(), labels


def late_fusion_accuracy(first: tuple[str, Path], second: tuple[str, Path]) -> float:
    """Test accuracy of two models' averaged logits, each given as (its recipe, its run folder)."""
    (a, labels), (b, same) = (test_logits(recipe, run_dir) for recipe, run_dir in (first, second))
    if not torch.equal(labels, same):
        raise ValueError(f"{first[0]} and {second[0]} are tested on different examples")
    return float(((a + b) / 2).argmax(-1).eq(labels).float().mean())


def fusion(output_dir: Path, quick: bool, jobs: int) -> Table:
    demos = [d for d in DEMO if d.recipe in (IMAGE, AUDIO, BOTH)]
    results = run_demo(output_dir, quick=quick, progress=False, jobs=jobs, tasks=demos)
    return fusion_table({r.task: r.result for r in results}, output_dir)


def fusion_table(accuracies: dict[str, float], output_dir: Path) -> Table:
    """The table of the three audio-visual recipes' test ``accuracies`` (by recipe), their runs in
    ``output_dir``/RECIPE, and the late fusion of the single-modality runs."""
    late = late_fusion_accuracy((IMAGE, output_dir / IMAGE), (AUDIO, output_dir / AUDIO))
    return Table(
        title="Audio + video fusion (audio-visual digits; seed: AudioSet)",
        columns=("audio", "image (video)", "audio + image"),
        seed_rows=(("Perceiver (mel spectrogram), mAP %", (38.4, 25.8, 43.2)),),
        rows=(
            ("Perceiver, one modality / early fusion", (accuracies[AUDIO], accuracies[IMAGE], accuracies[BOTH])),
            ("late fusion (averaged logits)", (NONE, NONE, late)),
        ),
        caption="Ours: test accuracy on held-out examples (the image and the audio of a pair show the same digit,"
        " each noisy alone). Early fusion reads the image patches and the audio frames in one input array.",
    )


FUSION = Reproduction("fusion", "early and late fusion of image and audio against each modality alone", fusion)
