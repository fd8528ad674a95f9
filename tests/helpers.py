"""Small models shared by the tests, and the marks of tests that need a Debian package (`make install` installs
them where it can; elsewhere these tests are skipped, saying what to install)."""

import shutil

import pytest

import omniperceiver as op
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
