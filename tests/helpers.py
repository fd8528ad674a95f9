"""Small models shared by the tests."""

import omniperceiver as op


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
