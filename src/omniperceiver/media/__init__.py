"""Reading and writing media files and the reference's preprocessing (torch, NumPy and Pillow only)."""

from omniperceiver.media.flow import flow_to_rgb, save_npy, save_png
from omniperceiver.media.image import imagenet_preprocess, load_image

__all__ = ["flow_to_rgb", "imagenet_preprocess", "load_image", "save_npy", "save_png"]
