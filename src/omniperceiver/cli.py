"""The ``omniperceiver`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import nn

import omniperceiver
from omniperceiver.core.config import Config
from omniperceiver.loading import from_pretrained

EXAMPLES = """examples:
  omniperceiver info runs/digits                          describe a model directory
  omniperceiver convert hf vision-perceiver-conv models/conv  convert a transformers checkpoint
  omniperceiver predict models/conv cat.jpg dog.png       top-5 classes of two images
  omniperceiver train recipes/digits.yaml                 train and test a recipe
  omniperceiver --version
"""


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def info(args: argparse.Namespace) -> None:
    """Print what a model directory holds: its parts, their configs and parameter counts."""
    model = from_pretrained(args.model_dir)
    print(f"{args.model_dir}: {type(model).__name__}, {_count(model):,} parameters")
    for name, child in model.named_children():
        config = getattr(child, "config", None)
        description = config.describe() if isinstance(config, Config) else type(child).__name__
        print(f"  {name:<15} {_count(child):>12,}  {description}")


def convert(args: argparse.Namespace) -> None:
    """Convert a transformers Perceiver directory (or Hub id) into an omniperceiver model directory."""
    model = from_pretrained(args.source)
    model.save_pretrained(args.output)
    print(f"{args.source} -> {args.output}: {type(model).__name__}, {_count(model):,} parameters")


def predict(args: argparse.Namespace) -> int:
    """Run a model on inputs; each failing input prints an error and the rest continue (exit 1 if any failed)."""
    from omniperceiver.predict import PredictOptions
    from omniperceiver.predict import predict as run

    model = from_pretrained(args.model_dir)
    options = PredictOptions(top=args.top, output_dir=Path(args.output_dir), progress=not args.quiet)
    failed = 0
    for item, result, error in run(model, args.inputs, options):
        if result is None:
            failed += 1
            print(f"omniperceiver: error: {item}: {error}", file=sys.stderr)
        else:
            print(f"{item}\n{result}", flush=True)
    return 1 if failed else 0


def train(args: argparse.Namespace) -> None:
    """Train a recipe; print its test metrics."""
    from omniperceiver.train import load_recipe
    from omniperceiver.train import train as run

    recipe = load_recipe(args.recipe, args.overrides)
    output = args.output_dir or f"runs/{recipe.dataset}"
    metrics = run(recipe, output, progress=not args.quiet)
    print(
        f"{recipe.dataset}: "
        + ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        + f"; model in {output}/model"
    )


def _parser() -> argparse.ArgumentParser:
    def command(name: str, help: str, description: str, example: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=description,
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    parser = argparse.ArgumentParser(
        prog="omniperceiver",
        description="Perceiver, Perceiver IO and Perceiver AR for every modality.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"omniperceiver {omniperceiver.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info_parser = command(
        "info",
        "describe a model directory",
        "Describe a model: an omniperceiver directory (config.json + model.safetensors) or a transformers one.",
        "omniperceiver info runs/digits",
    )
    info_parser.add_argument("model_dir", metavar="MODEL_DIR")
    info_parser.set_defaults(run=info)
    convert_parser = command(
        "convert",
        "convert a checkpoint from another format",
        "Convert a checkpoint into an omniperceiver model directory with identical outputs.",
        "omniperceiver convert hf ./vision-perceiver-conv models/conv",
    )
    convert_parser.add_argument("format", choices=["hf"], help="hf: a transformers Perceiver directory or Hub id")
    convert_parser.add_argument("source", metavar="SRC", help="directory with config.json + weights, or a Hub id")
    convert_parser.add_argument("output", metavar="OUT", help="the omniperceiver model directory to write")
    convert_parser.set_defaults(run=convert)
    predict_parser = command(
        "predict",
        "run a model on images, texts, frame pairs or clips",
        "Run a model; the task follows from the model: image files -> top classes; texts (or text files) with\n"
        "[MASK] / [MASK*N] spans -> the filled text; frame pairs -> optical flow (a colour-coded PNG and the raw\n"
        "field as .npy); .npz clips with 'video' and 'audio' arrays -> multimodal reconstruction.",
        "omniperceiver predict models/conv cat.jpg dog.png\n"
        "  omniperceiver predict models/language 'The capital of France is [MASK*5].'\n"
        "  omniperceiver predict models/flow frame1.png frame2.png --output-dir flows",
    )
    predict_parser.add_argument("model_dir", metavar="MODEL_DIR", help="a model directory or transformers directory")
    predict_parser.add_argument("inputs", metavar="INPUT", nargs="+", help="image files, texts, or clips")
    predict_parser.add_argument("--top", type=int, default=5, help="classes to show (default 5)")
    predict_parser.add_argument("--output-dir", default=".", help="where flow fields and reconstructions go")
    predict_parser.add_argument("--quiet", action="store_true", help="no progress display")
    predict_parser.set_defaults(run=predict)
    train_parser = command(
        "train",
        "train a recipe (needs the train extra)",
        "Train the Perceiver IO of a recipe (a YAML file: dataset, model, training) on its dataset's train split,\n"
        "validate every epoch, print the test metrics, save the model and CSV logs. Overrides: section.key=value.",
        "omniperceiver train recipes/digits.yaml training.epochs=10",
    )
    train_parser.add_argument("recipe", metavar="RECIPE.yaml")
    train_parser.add_argument("overrides", metavar="KEY=VALUE", nargs="*", help="e.g. training.epochs=10")
    train_parser.add_argument("--output-dir", help="run folder (default runs/DATASET)")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    train_parser.set_defaults(run=train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.run(args) or 0
    except (FileNotFoundError, ValueError) as error:
        print(f"omniperceiver: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
