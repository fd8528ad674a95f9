"""Export: ONNX and ``torch.export`` (.pt2) files of every Perceiver IO and of a Perceiver AR's generation
graphs, checked against the eager model, and a generation loop over the ONNX graphs for a plain runtime."""

from omniperceiver.export.exporter import FORMATS, Exported, export, graphs_of

__all__ = ["FORMATS", "Exported", "export", "graphs_of"]
