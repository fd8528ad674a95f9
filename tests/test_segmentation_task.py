"""The segmentation task: one query per pixel (the pixel's own input element), logits laid out as the image,
a soft Dice term beside cross-entropy, and a clear refusal of inputs whose elements are not the pixels."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("lightning")
from omniperceiver import data
from omniperceiver.train.catalog import get_task
from omniperceiver.train.inputs import ImageInput
from omniperceiver.train.sections import TrainingSettings, Trunk
from omniperceiver.train.tasks.segmentation import soft_dice_loss


@pytest.fixture(scope="module")
def splits():
    return data.pasted_shapes(size=(24, 20), per_texture=2)


def test_each_pixel_is_queried_by_its_own_input_element(splits):
    task = get_task("pasted-shapes")
    model = task.model_config(splits, Trunk(num_latents=8, latent_channels=16), TrainingSettings()).build().eval()
    images = splits.test.tensors[0][:2]  # (B, H, W, 1)
    inputs, _ = model.input_adapter(images.permute(0, 3, 1, 2))  # (B, H·W, C)
    assert torch.equal(model.decoder.queries(inputs), inputs)
    logits = model(images.permute(0, 3, 1, 2))
    assert logits.shape == (2, 24, 20, len(splits.classes))


def test_patches_are_refused_with_the_setting_to_change(splits):
    task = dataclasses.replace(get_task("pasted-shapes"), input=ImageInput(patch_size=2))
    with pytest.raises(ValueError, match=r"set input.patch_size: 1 \(the input has \(12, 10\) elements for \(24, 20\)"):
        task.model_config(splits, Trunk(), TrainingSettings())


def test_soft_dice_loss_against_a_hand_computation():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])  # (P=4, K=3)
    target = torch.tensor([0, 1, 2, 2])
    p = logits.softmax(-1)
    dice = [(2 * p[target == k, k].sum() + 1) / (p[:, k].sum() + (target == k).sum() + 1) for k in range(3)]
    assert soft_dice_loss(logits, target).item() == pytest.approx(1 - sum(dice).item() / 3, abs=1e-6)
    certain = F.one_hot(target, 3).float() * 50
    assert soft_dice_loss(certain, target).item() == pytest.approx(0, abs=1e-6)


def test_soft_dice_weighs_a_rare_class_as_much_as_a_common_one():
    """Predicting background everywhere with one foreground pixel in 100: cross-entropy averages the one miss
    over the 100 pixels (0.1), the Dice term loses about half of the missed class's share of 1 (0.25)."""
    target = torch.zeros(100, dtype=torch.long)
    target[0] = 1
    background = torch.tensor([[5.0, -5.0]]).expand(100, 2)
    assert F.cross_entropy(background, target).item() == pytest.approx(0.1, abs=0.001)
    assert soft_dice_loss(background, target).item() == pytest.approx(0.255, abs=0.002)
