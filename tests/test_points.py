"""The point-cloud adapter: what its features do and do not change with (pose, point order, padding)."""

import torch

from omniperceiver.adapters.points import PointCloudInputConfig
from omniperceiver.data.points import shapes


def random_pose(points: torch.Tensor, seed: int) -> torch.Tensor:
    """Clouds (B, M, 3) rotated, reflected and moved at random, one pose per cloud."""
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(points.shape[0], 3, 3, generator=generator))  # orthogonal: det ±1
    return points @ q + torch.randn(points.shape[0], 1, 3, generator=generator)


def test_aligned_clouds_give_the_same_features_in_any_pose():
    """Clouds whose principal axes and third moments differ clearly (a symmetric shape's axes and their signs
    are arbitrary: a box gives the same features up to a flip of each axis)."""
    clouds = torch.rand(6, 256, 3, generator=torch.Generator().manual_seed(0)) ** 2 * torch.tensor([3.0, 2.0, 1.0])
    moved = random_pose(clouds, seed=0)
    aligned = PointCloudInputConfig(num_bands=8, max_frequency=8, radial_features=True, align_axes=True).build()
    (features, _), (moved_features, _) = aligned(clouds), aligned(moved)
    assert features.shape == (6, 256, aligned.config.num_channels)
    torch.testing.assert_close(moved_features, features, atol=2e-3, rtol=0)
    plain = PointCloudInputConfig(num_bands=8, max_frequency=8, radial_features=True).build()
    assert (plain(moved)[0] - plain(clouds)[0]).abs().max() > 0.5  # without alignment the pose shows
    radius = 3  # [x, y, z, distance from the centre, sines, cosines]: the distance is the same in any pose
    torch.testing.assert_close(plain(moved)[0][..., radius], plain(clouds)[0][..., radius], atol=1e-4, rtol=0)


def test_point_order_and_padding_change_nothing():
    clouds, _ = shapes(clouds_per_shape=1, points=64).train.tensors
    adapter = PointCloudInputConfig(num_bands=4, max_frequency=4, radial_features=True, align_axes=True).build()
    features, _ = adapter(clouds)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(adapter(clouds[:, order])[0], features[:, order], atol=1e-4, rtol=0)
    padded = torch.cat([clouds, torch.full((len(clouds), 10, 3), 5.0)], dim=1)  # far-away padding
    mask = torch.arange(74) < 64
    padded_features, _ = adapter(padded, mask.expand(len(clouds), -1))
    torch.testing.assert_close(padded_features[:, :64], features, atol=1e-4, rtol=0)
