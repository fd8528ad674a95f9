"""Real datasets that load offline from installed packages, each with a fixed seeded split.

Every loader returns :class:`Splits` (train / validation / test datasets, labels last). A missing
package raises an ImportError naming the command that installs it.
"""

from omniperceiver.data.audio import spoken_digits
from omniperceiver.data.audiovisual import audiovisual_digits
from omniperceiver.data.flow import flow_pairs, moving_shapes, stereo_pair
from omniperceiver.data.folders import (
    image_folder,
    point_cloud_folder,
    text_corpus,
    text_folder,
    wav_folder,
)
from omniperceiver.data.hf import hf_audio_folder, hf_image_folder, hf_table, hf_text_corpus, hf_text_table
from omniperceiver.data.images import digits, mnist
from omniperceiver.data.points import shapes
from omniperceiver.data.segmentation import pasted_shapes
from omniperceiver.data.series import csv_series, japanese_vowels, series
from omniperceiver.data.speech import synthesized_digits
from omniperceiver.data.splits import Splits, stratified_split
from omniperceiver.data.text import fortunes, fortunes_corpus, fortunes_mixed

__all__ = [
    "Splits",
    "audiovisual_digits",
    "csv_series",
    "digits",
    "flow_pairs",
    "fortunes",
    "fortunes_corpus",
    "fortunes_mixed",
    "hf_audio_folder",
    "hf_image_folder",
    "hf_table",
    "hf_text_corpus",
    "hf_text_table",
    "image_folder",
    "japanese_vowels",
    "mnist",
    "moving_shapes",
    "pasted_shapes",
    "point_cloud_folder",
    "series",
    "shapes",
    "spoken_digits",
    "stereo_pair",
    "stratified_split",
    "synthesized_digits",
    "text_corpus",
    "text_folder",
    "wav_folder",
]
