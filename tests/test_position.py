import math

import pytest
import torch

from omniperceiver.core import (
    CoordinatePositionConfig,
    FourierPositionConfig,
    LearnedPositionConfig,
    RotaryPositionEmbedding,
    SinusoidalPositionConfig,
)
from omniperceiver.core.position import resize_learned_positions


def test_fourier_features_follow_the_reference_layout():
    encoding = FourierPositionConfig(num_bands=3, max_resolution=(8, 6)).build((4, 5))
    features = encoding()
    assert features.shape == (20, encoding.num_channels) == (20, 2 + 2 * 2 * 3)
    freqs = [torch.linspace(1, 4, 3), torch.linspace(1, 3, 3)]
    for row in range(4):
        for col in range(5):
            pos = [-1 + 2 * row / 3, -1 + 2 * col / 4]
            scaled = [pos[d] * freqs[d][k] for d in range(2) for k in range(3)]
            expected = pos + [math.sin(math.pi * s) for s in scaled] + [math.cos(math.pi * s) for s in scaled]
            torch.testing.assert_close(features[row * 5 + col], torch.tensor(expected), atol=1e-5, rtol=0)


def test_fourier_features_equal_transformers():
    modeling = pytest.importorskip("transformers.models.perceiver.modeling_perceiver")
    for concat_pos, sine_only in ((True, False), (False, True)):
        config = FourierPositionConfig(
            num_bands=16, max_resolution=(56, 40), concat_pos=concat_pos, sine_only=sine_only
        )
        ours = config.build((28, 20))()
        reference = modeling.PerceiverFourierPositionEncoding(
            num_bands=16, max_resolution=(56, 40), concat_pos=concat_pos, sine_only=sine_only
        )(index_dims=(28, 20), batch_size=2, device=torch.device("cpu"), dtype=torch.float32)
        # the reference drops the batch dimension when concat_pos is off
        torch.testing.assert_close(ours, reference.reshape(-1, *ours.shape)[0].to(ours.device), atol=1e-6, rtol=0)


def test_fourier_subset_and_other_sizes():
    encoding = FourierPositionConfig(num_bands=4).build((6, 7))
    indices = torch.tensor([0, 41, 17, 3])
    torch.testing.assert_close(encoding(indices=indices), encoding()[indices])
    assert encoding((12, 3)).shape == (36, encoding.num_channels)
    with pytest.raises(ValueError, match=r"2-D index shapes"):
        encoding((5,))


def test_sinusoidal_matches_the_seed_talk_table():
    # The talk's table: positions 0..3, dimensions i = 0..3 of a d = 50 encoding.
    features = SinusoidalPositionConfig(channels=50).build((4,))()
    table = torch.tensor(
        [
            [0.000, 0.841, 0.909, 0.141],
            [1.000, 0.540, -0.416, -0.990],
            [0.000, 0.638, 0.983, 0.875],
            [1.000, 0.770, 0.186, -0.484],
        ]
    )
    torch.testing.assert_close(features[:, :4].T, table, atol=5e-4, rtol=0)
    assert SinusoidalPositionConfig(channels=7).build((3,))().shape == (3, 7)


def test_learned_positions_have_fixed_shape_and_select_indices():
    encoding = LearnedPositionConfig(channels=5).build((3, 4))
    assert encoding().shape == (12, 5) and encoding().requires_grad
    torch.testing.assert_close(encoding(indices=torch.tensor([11, 2])), encoding.embedding[[11, 2]])
    with pytest.raises(ValueError, match=r"index shape \(3, 4\), got \(4, 3\)"):
        encoding((4, 3))
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 12\)"):
        encoding(indices=torch.tensor([12]))


def test_coordinates_append_row_and_column():
    raw = CoordinatePositionConfig(normalize=False).build((2, 3))()
    assert raw.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    normalized = CoordinatePositionConfig().build((2, 3))()
    assert normalized[:, 1].tolist() == [-1, 0, 1, -1, 0, 1]


def test_rotary_scores_depend_only_on_relative_position():
    rotary = RotaryPositionEmbedding(8)
    q, k = torch.randn(1, 1, 1, 12), torch.randn(1, 1, 1, 12)

    def score(p_q, p_k):
        return (rotary(q, torch.tensor([[p_q]])) * rotary(k, torch.tensor([[p_k]]))).sum()

    torch.testing.assert_close(score(5, 2), score(103, 100))
    assert not torch.allclose(score(5, 2), score(5, 3))
    torch.testing.assert_close(rotary(q, torch.tensor([[7]]))[..., 8:], q[..., 8:])  # channels beyond 8 untouched
    with pytest.raises(ValueError, match="positive even"):
        RotaryPositionEmbedding(7)


def test_features_are_cached_for_fixed_encodings_only():
    fourier = FourierPositionConfig(num_bands=3).build((4, 5))
    with torch.inference_mode():  # a cache filled here must still serve autograd later
        first = fourier.features((4, 5), dtype=torch.float32)
    assert fourier.features((4, 5), dtype=torch.float32) is first
    torch.testing.assert_close(first, fourier())
    x = torch.randn(20, 2, requires_grad=True)
    torch.cat([x, first], dim=-1).square().sum().backward()
    assert fourier.features((6, 5), dtype=torch.float32).shape == (30, fourier.num_channels)
    assert fourier.features((4, 5), dtype=torch.float64).dtype == torch.float64
    learned = LearnedPositionConfig(channels=3).build((4, 5))
    assert learned.features((4, 5), dtype=torch.float32).requires_grad
    before = learned.features((4, 5), dtype=torch.float32).detach().clone()
    with torch.no_grad():
        learned.embedding.add_(1.0)
    torch.testing.assert_close(learned.features((4, 5), dtype=torch.float32), before + 1.0)  # never stale


def test_resize_learned_positions_keeps_equal_shapes():
    weight = torch.randn(12, 5)
    assert resize_learned_positions(weight, (3, 4), [3, 4]) is weight


def test_resize_learned_positions_equals_transformers():
    modeling = pytest.importorskip("transformers.models.perceiver.modeling_perceiver")
    reference = modeling.PerceiverTrainablePositionEncoding(index_dims=64, num_channels=6)
    weight = reference.position_embeddings.detach().clone()
    for new_shape in ((12, 12), (6, 10)):
        expected = reference.interpolate_pos_encoding(reference.position_embeddings, *new_shape).detach()
        ours = resize_learned_positions(weight, (8, 8), new_shape)
        assert ours.shape == (math.prod(new_shape), 6)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_resize_learned_positions_keeps_the_row_major_layout():
    # On a 6 x 8 grid: channel 0 varies along rows only, channel 1 along columns only, channel 2 is constant.
    rows, cols = torch.meshgrid(torch.randn(6), torch.randn(8), indexing="ij")
    weight = torch.stack([rows, cols, torch.full_like(rows, 0.5)], dim=-1).reshape(48, 3)
    for new_shape in ((9, 20), (4, 5)):
        resized = resize_learned_positions(weight, (6, 8), new_shape).reshape(*new_shape, 3)
        torch.testing.assert_close(resized[..., 0], resized[:, :1, 0].expand(new_shape))
        torch.testing.assert_close(resized[..., 1], resized[:1, :, 1].expand(new_shape))
        torch.testing.assert_close(resized[..., 2], torch.full(new_shape, 0.5))
        grid = weight.T.reshape(1, 3, 6, 8)
        expected = torch.nn.functional.interpolate(grid, size=new_shape, mode="bicubic", align_corners=False)
        torch.testing.assert_close(resized, expected[0].permute(1, 2, 0))


def test_resize_learned_positions_keeps_linear_tables_linear_in_1d_and_3d():
    # align_corners=False: output index i samples the source at (i + 0.5)·n / n' - 0.5, clamped at the borders
    line = resize_learned_positions(2 * torch.arange(4.0)[:, None], (4,), (8,))[:, 0]
    torch.testing.assert_close(line[1:-1], 2 * ((torch.arange(1, 7) + 0.5) * 4 / 8 - 0.5))
    a, b, c = torch.meshgrid(torch.arange(2.0), torch.arange(3.0), torch.arange(4.0), indexing="ij")
    volume = resize_learned_positions((a - 2 * b + 3 * c).reshape(24, 1), (2, 3, 4), (2, 6, 8)).reshape(2, 6, 8)
    src_b, src_c = (torch.arange(1, 5) + 0.5) / 2 - 0.5, (torch.arange(1, 7) + 0.5) / 2 - 0.5
    expected = torch.arange(2.0)[:, None, None] - 2 * src_b[None, :, None] + 3 * src_c[None, None, :]
    torch.testing.assert_close(volume[:, 1:-1, 1:-1], expected)


def test_resize_learned_positions_rejects_bad_inputs():
    weight = torch.randn(12, 5)
    with pytest.raises(ValueError, match=r"1-D, 2-D or 3-D, got \(3, 4\) and \(6,\)"):
        resize_learned_positions(weight, (3, 4), (6,))
    with pytest.raises(ValueError, match=r"M = 20 positions of index shape \(4, 5\), got shape \(12, 5\)"):
        resize_learned_positions(weight, (4, 5), (8, 10))
    with pytest.raises(ValueError, match=r"positive sizes, got \(0, 4\)"):
        resize_learned_positions(weight, (3, 4), (0, 4))
