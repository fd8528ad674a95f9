"""`omniperceiver reproduce`: the seed's tables in miniature, listed, printed in the seed's shape beside the
seed's figures, and written as markdown and a bar chart."""

import pytest
from helpers import needs_espeak_ng

pytest.importorskip("lightning")
import dataclasses

import torch

from omniperceiver.cli import main
from omniperceiver.train import load_recipe
from omniperceiver.train.initialize import build_model

CNN_DROP = 0.04  # the quick CNN's MNIST accuracy falls 0.079 ± 0.008 when permuted (seeds 0-3; README)
DIGITS_PERCEIVER_LEARNED = 0.75  # the quick digits Perceiver, raw pixels: 0.875 ± 0.021 over seeds 0-7 (README)


def quick_table(name: str, tmp_path, capsys) -> str:
    """What `omniperceiver reproduce NAME --quick --jobs 2` prints (its runs and table in ``tmp_path``)."""
    assert main(["reproduce", name, "--quick", "--jobs", "2", "--output-dir", str(tmp_path)]) == 0
    return capsys.readouterr().out


def our_rows(text: str) -> dict[str, list[float]]:
    """{row name: its values} of the rows of our figures ("| ours: ... |") in a printed table."""
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| ours: ")]
    return {name.strip(): [float(v) for v in values] for name, *values in rows}


def test_list_names_every_table(capsys):
    assert main(["reproduce", "--list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [
        "raw-vs-permuted",
        "raw-audio-vs-spectrogram",
        "point-clouds",
        "fusion",
        "multimodal-autoencoding",
        "optical-flow",
        "transfer",
    ]


def test_transfer_fine_tunes_the_masked_language_model_of_each_seed_and_trains_the_same_classifier_anew(
    tmp_path, capsys
):
    rows = our_rows(quick_table("transfer", tmp_path, capsys))
    assert list(rows) == ["ours: from scratch", "ours: pretrained (masked LM), fine-tuned"]
    assert all(len(values) == 2 and 0.25 < values[0] <= 1 and values[1] == values[0] for values in rows.values())
    log = (tmp_path / "fortunes-few-labels-pretrained-0" / "logs" / "initialization.txt").read_text()
    assert f"weights from {tmp_path / 'fortunes-mlm-0'}" in log and "decoder.projection.weight" in log
    assert not (tmp_path / "fortunes-few-labels-scratch-0" / "logs" / "initialization.txt").exists()


def test_an_unknown_table_is_one_line_naming_the_known_ones(capsys):
    assert main(["reproduce", "fusio"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no table named 'fusio'" in err and "fusion" in err


@needs_espeak_ng
def test_fusion_prints_the_seed_row_beside_the_demo_runs_and_their_late_fusion(demo_results, demo_dir):
    """(`reproduce fusion` trains the three audio-visual demo recipes: the session's demo has; test_learning
    asserts the directions.)"""
    from omniperceiver.reproduce.fusion import AUDIO, BOTH, IMAGE, fusion_table, late_fusion_accuracy

    accuracies = {name: demo_results[name].result for name in (IMAGE, AUDIO, BOTH)}
    text = fusion_table(accuracies, demo_dir).markdown()
    assert "| model / inputs | audio | image (video) | audio + image |" in text
    assert "| seed: Perceiver (mel spectrogram), mAP % | 38.4 | 25.8 | 43.2 |" in text
    early = " | ".join(f"{accuracies[name]:.3f}" for name in (AUDIO, IMAGE, BOTH))
    assert f"| ours: Perceiver, one modality / early fusion | {early} |" in text
    late = late_fusion_accuracy((IMAGE, demo_dir / IMAGE), (AUDIO, demo_dir / AUDIO))
    assert f"| ours: late fusion (averaged logits) | - | - | {late:.3f} |" in text


def test_a_perceiver_reads_permuted_pixels_as_the_image_and_a_cnn_sees_them_moved():
    recipe = load_recipe("digits-pixels")
    splits = recipe.splits()
    model = build_model(recipe, recipe.task, splits)[0].eval()
    images = splits.test.tensors[0][:16]
    permuted = load_recipe("digits-pixels", ["input.permutation_seed=1"]).input
    raw_set, _ = recipe.input.unpack((images,))
    permuted_set, _ = permuted.unpack((images,))
    assert not torch.equal(raw_set, permuted_set)  # another order of the same (position, value) elements
    assert torch.equal(raw_set.sort(dim=1).values, permuted_set.sort(dim=1).values)
    with torch.inference_mode():
        assert torch.allclose(model(raw_set), model(permuted_set), atol=1e-5)  # positions travel with the pixels
    moved, _ = dataclasses.replace(permuted, as_image=True).unpack((images,))
    unmoved, _ = dataclasses.replace(recipe.input, as_image=True).unpack((images,))
    assert torch.equal(unmoved, images.permute(0, 3, 1, 2)) and not torch.equal(moved, unmoved)
    assert torch.equal(moved.flatten(2).sort(-1).values, unmoved.flatten(2).sort(-1).values)


def test_raw_vs_permuted_prints_the_seed_rows_beside_ours_the_cnn_drops_and_the_perceiver_reads_alike(tmp_path, capsys):
    out = quick_table("raw-vs-permuted", tmp_path, capsys)
    assert "| model / inputs | raw pixels | permuted pixels |" in out
    assert "| seed: ResNet-50, top-1 % | 73.5 | 39.4 |" in out and "| seed: Perceiver, top-1 % | 78.0 | 78.0 |" in out
    rows = our_rows(out)
    cnn_raw, cnn_permuted = rows["ours: CNN, MNIST"]
    assert cnn_raw - cnn_permuted >= CNN_DROP  # the CNN needs its pixels' neighbours
    assert "changed 0 of its 750 MNIST test predictions and 0 of its 272 8x8 digits test predictions" in out
    # it learned: the unchanged predictions are not those of an untrained model
    assert rows["ours: Perceiver, 8x8 digits"][0] >= DIGITS_PERCEIVER_LEARNED
    assert (tmp_path / "table.md").read_text() in out and (tmp_path / "table.png").is_file()


def test_point_clouds_prints_the_seed_rows_and_the_cost_of_more_points_linear_against_quadratic(tmp_path, capsys):
    out = quick_table("point-clouds", tmp_path, capsys)
    assert "| seed: PointNet++, % | 91.9 |" in out and "| seed: Perceiver, % | 85.7 |" in out
    accuracies, costs = out.split("Time and tensor memory")
    accuracy = our_rows(accuracies)
    assert set(accuracy) == {"ours: Perceiver", "ours: Transformer over all points", "ours: PointNet"}
    assert all(value > 1 / 7 for (value,) in accuracy.values())  # above chance after the quick training
    assert "| model / inputs | 512 points | 2,048 points |" in costs
    ms = our_rows(costs)
    perceiver, transformer = ms["ours: Perceiver, ms"], ms["ours: Transformer over all points, ms"]
    # 4x the points: the transformer's time grows about 10x (quadratic attention), the Perceiver's about 1.5x
    assert transformer[1] / transformer[0] > 2 * perceiver[1] / perceiver[0]


# quick test accuracies over training seeds 0-3 (chance 0.1): Perceiver raw samples 0.30, 0.25, 0.31, 0.20,
# MFCC 0.54, 0.52, 0.42, 0.42 (log-mel 0.10-0.29: not asserted); 1-D CNN 0.85-1.0 on every representation
@needs_espeak_ng
def test_raw_audio_prints_the_seed_rows_and_both_models_learn_from_the_raw_samples(tmp_path, capsys):
    out = quick_table("raw-audio-vs-spectrogram", tmp_path, capsys)
    assert "| model / inputs | raw samples | log-mel | MFCC |" in out
    assert "| seed: Perceiver, mAP % | 38.3 | 38.4 | - |" in out and "| seed: CNN-14, mAP % | - | 43.1 | - |" in out
    assert "Elements per clip: 1,173 (raw samples), 74 (log-mel), 74 (MFCC)" in out
    rows = our_rows(out)
    (raw, _, mfcc), cnn = rows["ours: Perceiver"], rows["ours: 1-D CNN"]
    assert raw > 0.15 and mfcc > 0.3 and min(cnn) > 0.7
    assert (tmp_path / "noisy-synthesized-digits-raw-samples" / "model" / "model.safetensors").is_file()


# quick (2 epochs) over training seeds 0-3, against the training mean's 11.7 dB, 19.6 dB and 10 %: 8 x 16 latents
# image 10.1-10.9 dB, audio 19.6-20.1 dB, label 38.9-63.6 %; 32 x 64: image 11.1-11.4, audio 20.5-20.6, label
# 84.4-94.0 % (the images need the full run: 12.7 and 15.2 dB)
def test_multimodal_autoencoding_infers_the_hidden_label_and_the_larger_bottleneck_does_better(tmp_path, capsys):
    out = quick_table("multimodal-autoencoding", tmp_path, capsys)
    assert "| model / inputs | image PSNR, dB | audio PSNR, dB | label accuracy %, label hidden |" in out
    assert "1,990 values per example" in out and "compression 16x (8 x 16), 1x (32 x 64)" in out
    rows = our_rows(out)
    (_, mean_audio, majority), small, large = rows.values()
    assert list(rows)[1:] == ["ours: Perceiver IO, 8 x 16 latents", "ours: Perceiver IO, 32 x 64 latents"]
    assert majority == 10.0 and small[2] > 25 and large[2] > small[2] + 15  # the label, hidden, is inferred
    assert large[1] > mean_audio + 0.5
    assert (tmp_path / "audiovisual-autoencoding-32x64" / "reconstructions.png").is_file()


# quick (200 batches of 4) over training seeds 0-3, against zero flow's 4.93 px (held-out layers) and 4.61 px
# (stereo 1/8): moving-shapes 4.41-4.47 and 3.89-4.35 px, flow-pairs 4.76-4.87 and 4.27-4.54 px
def test_optical_flow_trained_on_moving_layers_beats_zero_flow_beyond_its_training(tmp_path, capsys):
    out = quick_table("optical-flow", tmp_path, capsys)
    header = "| model / inputs | moving layers 48x64 | 16x16 crops of them | stereo 1/8 | stereo 1/4 |"
    assert header in out and "mean motion 4.6 and 8.9 px; 125x185 pixels" in out
    rows = our_rows(out)
    zero, smooth, layers = rows.values()
    assert list(rows) == [
        "ours: zero flow",
        "ours: Perceiver IO, trained on smooth warps <= 3 px (flow-pairs)",
        "ours: Perceiver IO, trained on moving layers <= 10 px (moving-shapes)",
    ]
    assert layers[0] < zero[0] - 0.3 and layers[0] < smooth[0] - 0.15  # gaps of at least 0.45 and 0.29
    assert layers[2] < zero[2] - 0.1  # the real pair, never seen: a gap of at least 0.26
    assert (tmp_path / "stereo.png").is_file()
    assert (tmp_path / "moving-shapes" / "flow.png").is_file()
