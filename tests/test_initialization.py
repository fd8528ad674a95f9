"""Learned vectors start as DeepMind's: a normal distribution with std 0.02, cut at ±2 std."""

import math

import omniperceiver as op
from omniperceiver.adapters.text import TextInputConfig
from omniperceiver.core import ARConfig, EncoderConfig, LearnedPositionConfig, LearnedQueryConfig

# the std of a standard normal cut at ±2: sqrt(1 - 2·2·φ(2) / (Φ(2) - Φ(-2))) = 0.8796
CUT_STD = math.sqrt(1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))


def test_latents_queries_positions_and_embeddings_are_cut_at_2_std():
    encoder = EncoderConfig(input_channels=4, num_latents=256, latent_channels=64, num_self_attention_heads=4)
    ar = op.PerceiverARConfig(
        vocab_size=256,
        max_seq_len=64,
        absolute_positions=True,
        ar=ARConfig(channels=64, num_latents=8, num_heads=4, num_self_attention_layers=1),
    ).build()
    learned = {
        "latents": encoder.build().latents,
        "queries": LearnedQueryConfig(num_queries=256, num_channels=64).build().queries,
        "positions": LearnedPositionConfig(channels=64).build((16, 16)).embedding,
        "text embedding": TextInputConfig(channels=64, max_length=256).build().embedding.weight,
        "text positions": TextInputConfig(channels=64, max_length=256).build().position.weight,
        "AR embedding": ar.embedding.weight,
        "AR positions": ar.position.weight,
    }
    for name, values in learned.items():
        assert values.abs().max() <= 0.04, name
    values = learned["latents"].detach()  # 16,384 values
    assert abs(values.std() / (0.02 * CUT_STD) - 1) < 0.02, values.std()
    assert abs(values.mean()) < 3e-4
