"""Multimodal autoencoding: image + audio + label in, each reconstructed by its own queries; the label hidden
at random in training and always in evaluation, so the model infers it."""

import pytest

pytest.importorskip("lightning")
import torch

from omniperceiver.data.file_dataset import rows_of
from omniperceiver.train import load_recipe
from omniperceiver.train.initialize import build_model
from omniperceiver.train.inputs import AudiovisualLabelInput
from omniperceiver.train.tasks.autoencoding import image_patches, patched_images, reconstruction_error


@pytest.fixture(scope="module")
def autoencoder():
    """The recipe's module (untrained, a small trunk) and 64 training examples."""
    recipe = load_recipe("audiovisual-autoencoding", ["model.num_self_attends_per_block=1"])
    splits = recipe.splits()
    model = build_model(recipe, recipe.task, splits)[0]
    return recipe.task.module(model, recipe.task, recipe.training), rows_of(splits.train, 64)


def test_image_patches_are_undone_exactly():
    images = torch.rand(3, 8, 12, 3)
    patches = image_patches(images, 2)
    assert patches.shape == (3, 24, 12) and torch.equal(patches[0, 0], images[0, :2, :2].flatten())
    assert torch.equal(patched_images(patches, (8, 12, 3), 2), images)


def test_the_error_is_scale_free_one_for_predicting_the_mean():
    target = torch.randn(100) * 7 + 3
    assert reconstruction_error(target.mean().expand(100), target) == pytest.approx(0.99, abs=0.01)
    assert reconstruction_error(target, target) == 0


def test_every_modality_is_decoded_at_its_shape(autoencoder):
    module, batch = autoencoder
    module.eval()
    with torch.inference_mode():
        outputs, target = module.predict(batch)
    _, audio, _, label = target
    assert outputs["image"].shape == (64, 49, 16)  # one query per 4x4 patch of the 28x28 image
    assert outputs["audio"].shape == audio.shape and outputs["label"].shape == (64, 10)
    assert torch.equal(label, batch[3])


def test_training_hides_labels_at_the_recipes_rate_and_evaluation_hides_every_label(autoencoder):
    module, batch = autoencoder
    seen = []
    hook = module.model.register_forward_pre_hook(lambda model, args: seen.append(args[0]["label"]))
    module.train()
    for _ in range(20):
        module.predict(batch)
    shown = torch.cat(seen).sum(-1)  # 1 where the one-hot label was shown, 0 where hidden
    assert module.task.input.hide_label == 0.5 and 0.4 < 1 - shown.mean() < 0.6
    assert torch.equal(torch.cat(seen)[shown == 1].argmax(-1), batch[3].repeat(20)[shown == 1])
    module.eval()
    seen.clear()
    module.predict(batch)
    hook.remove()
    assert (seen[0] == 0).all()


def test_the_inferred_label_does_not_depend_on_the_true_one(autoencoder):
    module, batch = autoencoder
    module.eval()
    other = (*batch[:3], (batch[3] + 1) % 10)
    with torch.inference_mode():
        assert torch.equal(module.predict(batch)[0]["label"], module.predict(other)[0]["label"])


def test_the_audio_error_reads_only_real_frames(autoencoder):
    module, batch = autoencoder
    module.eval()
    with torch.inference_mode():
        outputs, target = module.predict(batch)
        padding = ~target[2]
        assert padding.any()
        changed = {**outputs, "audio": outputs["audio"].masked_fill(padding[..., None], 100.0)}
        assert module.loss(changed, target) == module.loss(outputs, target)


def test_bad_labels_and_hiding_rates_are_one_line_errors():
    with pytest.raises(ValueError, match=r"hide_label=1.5 is invalid: expected a probability in \[0, 1\]"):
        AudiovisualLabelInput(hide_label=1.5)
    batch = (torch.rand(2, 28, 28, 1), torch.rand(2, 5, 13), torch.ones(2, 5, dtype=torch.bool), torch.tensor([3, 12]))
    with pytest.raises(ValueError, match=r"expected labels in \[0, 10\), got 3..12"):
        AudiovisualLabelInput().unpack(batch)
