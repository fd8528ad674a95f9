"""Reading and writing media files, the reference's preprocessing and audio features (torch, NumPy and Pillow
only)."""

from omniperceiver.media.audio import log_mel_spectrogram, mel_filterbank, mfcc, power_spectrogram
from omniperceiver.media.flow import flow_to_rgb, save_npy, save_png
from omniperceiver.media.image import imagenet_preprocess, load_image

__all__ = [
    "flow_to_rgb",
    "imagenet_preprocess",
    "load_image",
    "log_mel_spectrogram",
    "mel_filterbank",
    "mfcc",
    "power_spectrogram",
    "save_npy",
    "save_png",
]
