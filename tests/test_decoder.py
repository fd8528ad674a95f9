import pytest
import torch

from omniperceiver.core import (
    DecoderConfig,
    FourierPositionConfig,
    InputQueryConfig,
    LearnedQueryConfig,
    PositionQueryConfig,
)


def decoder(queries, **overrides):
    return DecoderConfig(queries=queries, latent_channels=16, output_channels=3, num_heads=2, **overrides).build()


QUERIES = [
    LearnedQueryConfig(num_queries=37, num_channels=10),
    PositionQueryConfig(index_shape=(6, 7), position=FourierPositionConfig(num_bands=3)),
    InputQueryConfig(num_channels=12),
]


@pytest.mark.parametrize("queries", QUERIES, ids=["learned", "position", "input"])
def test_chunked_and_subset_decoding_equal_full_decoding(queries):
    latents = torch.randn(2, 8, 16)
    model = decoder(queries)
    inputs = torch.randn(2, 40, 12)
    full = model(latents, inputs)
    assert full.shape == (2, model.queries.num_queries(inputs), 3)
    torch.testing.assert_close(model(latents, inputs, chunk_size=5), full, atol=1e-6, rtol=0)
    indices = torch.tensor([33, 0, 17, 2, 2])
    torch.testing.assert_close(model(latents, inputs, indices=indices), full[:, indices], atol=1e-6, rtol=0)
    torch.testing.assert_close(
        model(latents, inputs, indices=indices, chunk_size=2), full[:, indices], atol=1e-6, rtol=0
    )


def test_queries_decode_independently_of_each_other():
    latents = torch.randn(1, 8, 16)
    model = decoder(QUERIES[2])
    inputs = torch.randn(1, 10, 12)
    changed = inputs.clone()
    changed[:, 3] += 1.0
    diff = (model(latents, inputs) - model(latents, changed)).abs().amax(-1)[0]
    assert diff[3] > 0 and diff[torch.arange(10) != 3].max() == 0


def test_position_queries_are_the_position_features():
    queries = QUERIES[1].build()
    features = FourierPositionConfig(num_bands=3).build((6, 7))()
    torch.testing.assert_close(queries(torch.zeros(2, 1, 1))[1], features)


def test_decoder_rejects_bad_latents_and_indices():
    latents = torch.randn(2, 8, 16)
    model = decoder(QUERIES[0])
    with pytest.raises(ValueError, match=r"latents must have shape \(B, N, D=16\), got \(2, 8, 15\)"):
        model(torch.randn(2, 8, 15), None)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 37\)"):
        model(latents, None, indices=torch.tensor([37]))
    with pytest.raises(ValueError, match="1-D integer tensor"):
        model(latents, None, indices=torch.tensor([[1.0]]))
    with pytest.raises(ValueError, match="chunk_size=0 is invalid"):
        model(latents, None, chunk_size=0)
