"""The ``omniperceiver`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from torch import nn

import omniperceiver
from omniperceiver.core.config import Config
from omniperceiver.models.pretrained import from_pretrained

EXAMPLES = """examples:
  omniperceiver info runs/digits        describe a saved model directory
  omniperceiver --version
"""


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def info(directory: str) -> None:
    """Print what a model directory holds: its parts, their configs and parameter counts."""
    model = from_pretrained(directory)
    print(f"{directory}: {type(model).__name__}, {_count(model):,} parameters")
    for name, child in model.named_children():
        config = getattr(child, "config", None)
        description = config.describe() if isinstance(config, Config) else type(child).__name__
        print(f"  {name:<15} {_count(child):>12,}  {description}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="omniperceiver",
        description="Perceiver, Perceiver IO and Perceiver AR for every modality.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"omniperceiver {omniperceiver.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info_parser = commands.add_parser(
        "info",
        help="describe a saved model directory",
        description="Describe a model directory written by save_pretrained (config.json + model.safetensors).",
        epilog="example:\n  omniperceiver info runs/digits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info_parser.add_argument("model_dir", metavar="MODEL_DIR")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        info(args.model_dir)
    except (FileNotFoundError, ValueError) as error:
        print(f"omniperceiver: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
