"""Small models shared by the tests, and the marks of tests that need a Debian package (`make install` installs
them where it can; elsewhere these tests are skipped, saying what to install)."""

import shutil

import pytest
import torch

import omniperceiver as op
from omniperceiver.core import ARConfig
from omniperceiver.data import speech, text

needs_fortunes = pytest.mark.skipif(
    not text.FORTUNES.joinpath("de").is_dir(),  # the check of data.fortunes()
    reason=f"the fortunes corpus is not installed: {text.INSTALL}",
)
needs_espeak_ng = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason=f"the espeak-ng program is not installed: {speech.INSTALL}"
)


def small_classifier(index_shape=(6, 5), in_channels=3, num_classes=7, **encoder) -> op.PerceiverIO:
    options = dict(num_latents=8, latent_channels=16, num_self_attends_per_block=2, num_self_attention_heads=4)
    options.update(encoder)
    position = op.FourierPositionConfig(num_bands=4)
    config = op.PerceiverIOConfig.classifier(
        op.ArrayInputConfig(index_shape=index_shape, in_channels=in_channels, position=position),
        num_classes,
        **options,
    )
    return config.build()


def random_ar(**overrides) -> op.PerceiverAR:
    """A random model with large weights (std 0.5): its logits are spread widely (greedy choices are no
    near-ties) and its tokens vary (with small weights it repeats its last token)."""
    ar = ARConfig(channels=32, num_latents=8, num_heads=4, num_self_attention_layers=2)
    options = dict(vocab_size=50, max_seq_len=24, ar=ar)
    options.update(overrides)
    model = op.PerceiverARConfig(**options).build().eval()
    for weight in model.parameters():
        if weight.dim() == 2:
            torch.nn.init.normal_(weight, std=0.5)
    return model
