"""Input adapters: one file per modality, each turning a modality tensor into Perceiver inputs (B, M, C)."""

from omniperceiver.adapters.array import ArrayInputAdapter, ArrayInputConfig

__all__ = ["ArrayInputAdapter", "ArrayInputConfig"]
