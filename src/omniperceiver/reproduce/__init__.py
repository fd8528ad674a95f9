"""The seed talk's tables in miniature: ``omniperceiver reproduce NAME`` trains what a table compares on data
that ships here and prints the table in the seed's shape, the seed's figures beside ours. Each is one small
file built on the training engine's tasks and recipes."""

from omniperceiver.reproduce.fusion import FUSION
from omniperceiver.reproduce.multimodal_autoencoding import MULTIMODAL_AUTOENCODING
from omniperceiver.reproduce.optical_flow import OPTICAL_FLOW
from omniperceiver.reproduce.point_clouds import POINT_CLOUDS
from omniperceiver.reproduce.raw_audio import RAW_AUDIO
from omniperceiver.reproduce.raw_vs_permuted import RAW_VS_PERMUTED
from omniperceiver.reproduce.table import Reproduction
from omniperceiver.reproduce.transfer import TRANSFER

REPRODUCTIONS: dict[str, Reproduction] = {
    r.name: r
    for r in (RAW_VS_PERMUTED, RAW_AUDIO, POINT_CLOUDS, FUSION, MULTIMODAL_AUTOENCODING, OPTICAL_FLOW, TRANSFER)
}

__all__ = ["REPRODUCTIONS", "Reproduction"]
