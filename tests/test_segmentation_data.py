"""The pasted-shapes segmentation data: every class in every part, fixed by the seed, held-out textures, shapes
that stand out but are not segmented by intensity alone."""

import numpy as np
import pytest
import torch

from omniperceiver import data
from omniperceiver.data import segmentation


@pytest.fixture(scope="module")
def splits():
    return data.pasted_shapes()


def mean_iou(predicted, labels, classes=5):
    """The mean over classes of |predicted ∩ true| / |predicted ∪ true| per pixel."""
    confusion = torch.bincount(labels.flatten() * classes + predicted.flatten(), minlength=classes**2)
    confusion = confusion.reshape(classes, classes).double()
    return (confusion.diag() / (confusion.sum(0) + confusion.sum(1) - confusion.diag())).mean().item()


def test_pasted_shapes_have_every_class_in_every_part(splits):
    assert splits.sizes() == (1800, 300, 600)
    assert splits.classes == ("background", "disc", "square", "triangle", "cross")
    for part in (splits.train, splits.validation, splits.test):
        images, labels = part.tensors
        assert images.shape[1:] == (32, 32, 1) and images.dtype == torch.float32
        assert labels.shape[1:] == (32, 32) and labels.dtype == torch.int64
        assert images.min() >= 0 and images.max() <= 1
        assert labels.min() >= 0 and labels.max() <= 4
        assert (labels.flatten().bincount(minlength=5) > 0).all()
        assert ((labels > 0).flatten(1).any(1)).all()  # every image holds a shape


def test_pasted_shapes_are_fixed_by_the_seed():
    first, again, other = (data.pasted_shapes(size=(24, 20), per_texture=3, seed=s) for s in (0, 0, 1))
    assert first.sizes() == (18, 3, 6) and first.test.tensors[0].shape[1:] == (24, 20, 1)
    assert all(torch.equal(a, b) for a, b in zip(first.test.tensors, again.test.tensors, strict=True))
    assert not torch.equal(first.train.tensors[1], other.train.tensors[1])


def test_pasted_shapes_hold_out_the_test_textures():
    parts = {part: set(names) for part, names in segmentation.TEXTURES.items()}
    assert parts["train"].isdisjoint(parts["test"]) and parts["train"].isdisjoint(parts["validation"])
    assert parts["validation"].isdisjoint(parts["test"])


def test_pasted_shapes_stand_out_from_their_surroundings(splits):
    from scipy import ndimage

    images, labels = splits.test.tensors
    contrasts = []
    for image, label in zip(images[..., 0].numpy(), labels.numpy(), strict=True):
        shape = label > 0
        ring = ndimage.binary_dilation(shape, iterations=2) & ~shape
        contrasts.append(abs(image[shape].mean() - image[ring].mean()))
    assert np.mean(contrasts) > 0.2


def test_pasted_shapes_are_not_segmented_by_intensity_alone(splits):
    from sklearn.linear_model import LogisticRegression

    (images, labels), (test_images, test_labels) = splits.train.tensors, splits.test.tensors
    rows = np.random.default_rng(0).choice(labels.numel(), 50_000, replace=False)
    model = LogisticRegression(max_iter=300).fit(images.reshape(-1, 1)[rows], labels.flatten()[rows])
    predicted = torch.from_numpy(model.predict(test_images.reshape(-1, 1)))
    assert mean_iou(predicted, test_labels) < 0.3  # all background


@pytest.mark.parametrize("shape", segmentation.SHAPES)
def test_shapes_are_filled_and_turned_about_their_centre(shape):
    upright, turned = segmentation.shape_mask(shape, 40, 0.0), segmentation.shape_mask(shape, 40, np.pi / 2)
    assert upright[20, 20] and 0.15 < upright.mean() < 0.7  # filled, the centre inside
    assert abs(int(turned.sum()) - int(upright.sum())) <= 0.03 * upright.sum()  # turning keeps the area
    if shape != "triangle":  # the others have a right-angle symmetry
        assert (turned == upright).mean() > 0.97
