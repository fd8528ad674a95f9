"""Conversion from other formats (transformers' Perceiver checkpoints)."""

from omniperceiver.interop.transformers import config_from_transformers, convert_transformers, is_transformers_directory

__all__ = ["config_from_transformers", "convert_transformers", "is_transformers_directory"]
