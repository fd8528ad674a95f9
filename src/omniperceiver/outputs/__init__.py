"""Output adapters: decoder outputs (B, O, K) -> a task's output."""

from omniperceiver.outputs.classification import ClassificationOutput, ClassificationOutputConfig

__all__ = ["ClassificationOutput", "ClassificationOutputConfig"]
