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
