"""The ``omniperceiver`` command."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import textwrap
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

import omniperceiver
from omniperceiver.core.config import Config
from omniperceiver.errors import USER_ERRORS, one_line
from omniperceiver.files import output_folder
from omniperceiver.loading import from_pretrained

EXAMPLES = """examples:
  omniperceiver info runs/digits                          describe a model directory
  omniperceiver info models/conv --compute                its attention kernels, and why
  omniperceiver calibrate                                 measure kernel costs for the compute policy
  omniperceiver convert hf vision-perceiver-conv models/conv  convert a transformers checkpoint
  omniperceiver predict models/conv cat.jpg dog.png       top-5 classes of two images
  omniperceiver predict models/language --text 'Paris is the [MASK*7] of France.'
  omniperceiver train mnist                               train and test a shipped recipe
  omniperceiver evaluate runs/mnist                       test metrics of a trained run
  omniperceiver shards my_images.yaml shards/             a recipe's folder as WebDataset shards
  omniperceiver demo --quick                              every modality in under 2 minutes
  omniperceiver generate runs/fortunes-lm --prompt 'Love'   continue a text, streamed
  omniperceiver tokenizer corpus/ --vocab-size 4096 --output tok/   learn a BPE tokenizer
  omniperceiver export runs/fortunes-lm out/ --dynamic batch,length   ONNX graphs, checked
  omniperceiver reproduce --list                          the seed's tables this reproduces
  omniperceiver --version

A mistake in the input (a missing or unreadable file, a bad value) prints one line
`omniperceiver: error: ...` and exits 1 (2 for a wrong command line); --debug, or
OMNIPERCEIVER_DEBUG=1, shows the traceback.
"""


SHIPPED_RECIPES = textwrap.fill(
    "Shipped recipes: " + ", ".join(sorted(path.stem for path in (Path(__file__).parent / "recipes").glob("*.yaml"))),
    108,
    break_on_hyphens=False,
)
MODEL_DIR_HELP = "an omniperceiver model directory, a training run folder, or a transformers directory"


class UsageError(Exception):
    """A command line that cannot work (exit status 2, like argparse's own usage errors)."""


def at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def available_device(text: str) -> torch.device:
    """argparse type: a torch device that this machine has (cpu, cuda, cuda:1, ...)."""
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu or cuda, got {text!r}") from None
    if device.type != "cpu" and not (device.type == "cuda" and torch.cuda.is_available()):
        raise argparse.ArgumentTypeError(
            f"this machine has no {text} device (torch sees: cpu{', cuda' if torch.cuda.is_available() else ''})"
        )
    return device


def _count(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def info(args: argparse.Namespace) -> None:
    """Print what a model directory holds: its parts, their configs and parameter counts (and with
    ``--compute`` the kernels that the compute policy picks for each attention)."""
    model = from_pretrained(args.model_dir)
    print(f"{args.model_dir}: {type(model).__name__}, {_count(model):,} parameters")
    for name, child in model.named_children():
        config = getattr(child, "config", None)
        description = config.describe() if isinstance(config, Config) else type(child).__name__
        print(f"  {name:<15} {_count(child):>12,}  {description}")
    if args.compute:
        compute_policy(model, args.inputs, args.device)


def _configured_inputs(model: nn.Module) -> int | None:
    """M, the number of input elements of the input adapter's configured size (None: it has none)."""
    config = model.config.input
    if hasattr(config, "max_length"):
        return config.max_length
    shape = getattr(config, "index_shape", None) or getattr(config, "image_shape", None)
    stem = getattr(config, "stem", None)
    if shape is not None and stem is not None:
        shape = stem.output_shape(shape)
    return None if shape is None else math.prod(shape)


def compute_policy(model: nn.Module, inputs: int | None, device: torch.device) -> None:
    """Print, for each attention of ``model`` at batch 1, the kernel that the compute policy of ``device`` picks
    in fp32 and bf16, forward and training, and why (one run of the model on zeros on the CPU, recorded)."""
    from omniperceiver.core.attention import MultiHeadAttention
    from omniperceiver.core.kernels import AttentionCall, use_policy
    from omniperceiver.core.kernels.policy import policy_from_environment

    policy = policy_from_environment(device)
    print(f"compute policy: {policy.describe()}")
    linear = policy.linear(device)
    print(f"  Linear under bf16 autocast: {linear.name} units ({linear.reason})")
    names: list[tuple[str, str | None]] = []  # each attention's name and its forced kernel
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention):
            module.register_forward_pre_hook(lambda module, _args, name=name: names.append((name, module.kernel)))
    with use_policy(policy), policy.record() as calls, torch.no_grad():
        if isinstance(model, omniperceiver.PerceiverAR):
            model(torch.zeros(1, model.config.max_seq_len, dtype=torch.long))
        else:
            inputs = inputs or _configured_inputs(model)
            if inputs is None:
                raise UsageError("this model's input adapter has no configured size: give --inputs M")
            elements = torch.zeros(1, inputs, model.input_adapter.num_channels)
            model.decoder(model.encoder(elements), elements)
    print(f"  attention at batch 1 on {inputs or model.config.max_seq_len} inputs (B·H grows with the batch):")
    modules: dict[tuple[AttentionCall, str | None], list[str]] = {}  # each call class and the attentions making it
    for (name, forced), call in zip(names, calls, strict=True):
        named = modules.setdefault((call, forced), [])
        if name not in named:
            named.append(name)
    for (call, forced), named in modules.items():
        more = f" (and {len(named) - 1} more with this call)" if len(named) > 1 else ""
        print(f"  {named[0]}{more}: {call.shapes()}")
        for dtype in ("fp32", "bf16"):
            for grad in (False, True):
                on_device = dataclasses.replace(call, device=device.type, dtype=dtype, grad=grad)
                choice = policy.attention(on_device, forced=forced)
                print(f"    {dtype} {'train' if grad else 'fwd  '}  {choice.name:<12}  {choice.reason}")


def calibrate(args: argparse.Namespace) -> None:
    """Measure this machine's costs for the compute policy and cache them."""
    from omniperceiver.core.kernels.calibration import calibrate as measure
    from omniperceiver.core.kernels.policy import Policy, save_table

    table = measure(args.device, budget_s=args.budget)
    path = save_table(table)
    print(f"{Policy(table).describe()}\nsaved to {path}")
    entries = [(key, terms, "") for key, terms in table.attention.items()]
    entries += [(key, terms, "  (no fit: a floor, for the default only)") for key, terms in table.floors.items()]
    for key, (per_call, per_gflop, per_mscore, per_reread), note in entries:
        rate = f"{1 / per_gflop:.0f} GFLOP/s" if per_gflop else "-"
        costs = f"{1e6 * per_call:8.1f} µs per call, {rate:>14}, {1e3 * per_mscore:.2f} ms per M scores"
        reread = f", {1e3 * per_reread:.2f} ms per M values read again" if per_reread else ""
        print(f"  {key:<26} {costs}{reread}{note}")


def convert(args: argparse.Namespace) -> None:
    """Convert a transformers Perceiver directory (or Hub id) into a new omniperceiver model directory."""
    output = Path(args.output)
    if output.exists() and not (output.is_dir() and not any(output.iterdir())):
        raise FileExistsError(f"{output} already exists: convert writes a new folder (remove it or pick another)")
    model = from_pretrained(args.source)
    output_folder(output)
    model.save_pretrained(args.output)
    print(f"{args.source} -> {args.output}: {type(model).__name__}, {_count(model):,} parameters")


def export(args: argparse.Namespace) -> None:
    """Export a model as ONNX or .pt2 graphs, each checked against the eager model; one line per graph."""
    from omniperceiver import zoo
    from omniperceiver.export import export as export_model

    model = from_pretrained(args.model_dir)
    kind = zoo.kind_of(getattr(model, "config", None))  # a published structure: its defaults
    dynamic = args.dynamic if args.dynamic is not None else kind.dynamic if kind else ()
    subset = args.subset if args.subset is not None else bool(kind and kind.subset and args.chunk_size is None)
    task = f" ({kind.task})" if kind else ""
    print(f"{args.model_dir}: {type(model).__name__}{task}, {_count(model):,} parameters")
    written = export_model(
        model,
        args.output,
        format=args.format,
        dynamic=dynamic,
        dtype=args.dtype,
        refill_latents=args.refill_latents,
        subset=subset,
        chunk_size=args.chunk_size,
        progress=_status_line,
    )
    _status_line("")
    for graph in written:
        sizes = "; ".join(graph.differences)
        print(
            f"  {graph.file}  {graph.bytes / 2**20:.1f} MiB  exported in {graph.seconds:.1f} s  "
            f"max |difference| from eager {graph.max_difference:.1e} ({sizes})"
        )
    print(f"  {Path(args.output) / 'export.json'}: inputs, outputs and their dynamic axes")


def _status_line(message: str) -> None:
    """What a long step is doing, on one line of a terminal's stderr that the next one overwrites ("" clears it)."""
    if sys.stderr.isatty():
        print("\r\033[K" + (f"  {message} ..." if message else ""), end="", file=sys.stderr, flush=True)


def axes(text: str) -> tuple[str, ...]:
    """``batch,length`` -> ("batch", "length"); ``none`` -> (); an unknown axis is refused before a model loads."""
    from omniperceiver.export.graph import AXES

    names = () if text == "none" else tuple(name.strip() for name in text.split(",") if name.strip())
    if unknown := [name for name in names if name not in AXES]:
        raise argparse.ArgumentTypeError(f"unknown axis {', '.join(unknown)}: expected {', '.join(AXES)} or none")
    return names


def tokenizer(args: argparse.Namespace) -> None:
    """Learn a byte-level BPE from text files and write it as DIR/tokenizer.json."""
    from omniperceiver.data.bpe import TOKENIZER_FILE, BPETokenizer

    files = []
    for name in args.texts:
        path = Path(name)
        found = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
        if not found or not all(file.is_file() for file in found):
            raise FileNotFoundError(f"{name} is neither a text file nor a folder holding .txt files")
        files += found
    output = output_folder(args.output)
    if (output / TOKENIZER_FILE).exists() and not args.overwrite:
        raise FileExistsError(f"{output / TOKENIZER_FILE} exists: --overwrite replaces it")
    texts = [file.read_bytes() for file in files]
    for file, text in zip(files, texts, strict=True):
        try:
            text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{file}: byte {error.start:,} is not UTF-8; a BPE learns from UTF-8 text") from None
    data = b"".join(text.rstrip(b"\n") + b"\n" for text in texts)  # (every file ends its line)
    bpe = BPETokenizer.train(data, args.vocab_size)
    path = bpe.save(output)
    tokens, plural = len(bpe.ids_of(data)), "s" * (len(files) > 1)
    print(
        f"{path}: a byte-level BPE of {bpe.vocab_size:,} ids from {len(data):,} bytes in {len(files)} file{plural} "
        f"({len(data) / tokens:.2f} bytes per token on them)"
    )


def predict(args: argparse.Namespace) -> int:
    """Run a model on inputs; each failing input prints an error and the rest continue (exit 1 if any failed)."""
    from omniperceiver.predict import PredictOptions
    from omniperceiver.predict import predict as run

    if not args.inputs and not args.text:
        raise UsageError("predict needs an INPUT file or a --text")
    model = from_pretrained(args.model_dir)
    run_dir = _run_folder(Path(args.model_dir))
    if run_dir is not None:  # a model the engine trained: its task reads the files its dataset's folders hold
        from omniperceiver.train import load_recipe

        if args.text:
            raise UsageError("--text is for published text models; a trained run's model reads files")
        recipe = load_recipe(run_dir / "recipe.yaml")
        task = recipe.task.reading_as(run_dir / "model")
        results = task.predict(model.eval(), args.inputs, args.top, Path(args.output_dir), recipe.data)
    else:
        options = PredictOptions(top=args.top, output_dir=Path(args.output_dir), progress=not args.quiet)
        results = run(model, args.inputs, options, texts=args.text or ())
    failed = 0
    for item, result, error in results:
        if result is None:
            failed += 1
            print(f"omniperceiver: error: {item}: {error}", file=sys.stderr)
        else:
            print(f"{item}\n{result}", flush=True)
    return 1 if failed else 0


def _run_folder(path: Path) -> Path | None:
    """The training run folder that ``path`` is, or whose model folder it is; None for other models."""
    for folder in (path, path.parent):
        if (folder / "recipe.yaml").is_file() and (folder / "model").is_dir():
            return folder
    return None


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))


def train(args: argparse.Namespace) -> None:
    """Train a recipe; print its test metrics."""
    from lightning.pytorch.utilities import rank_zero_only

    from omniperceiver.train import load_recipe
    from omniperceiver.train import train as run

    recipe = load_recipe(args.recipe, args.overrides)
    output = args.output_dir or f"runs/{Path(args.recipe).stem}"
    metrics = run(recipe, output, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if rank_zero_only.rank == 0:  # one line, not one per process
        print(f"{recipe.dataset}: {_metrics(metrics)}; run folder {output}")


def shards(args: argparse.Namespace) -> None:
    """Write a recipe's data parts (a folder, as the recipe reads it) as WebDataset shards."""
    from tqdm import tqdm

    from omniperceiver.data.shards import write_shards
    from omniperceiver.train import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    if recipe.data_path is None:
        raise ValueError(f"shards are written from a folder: recipe {args.recipe} reads dataset {recipe.dataset!r}")
    splits = recipe.splits()
    output = output_folder(args.output)
    with tqdm(total=sum(splits.sizes()), desc="writing shards", unit=" samples", disable=args.quiet) as bar:
        write_shards(splits, recipe.dataset, output, per_shard=args.per_shard, progress=bar.update)
    counts = ", ".join(f"{part} {n:,}" for part, n in zip(("train", "validation", "test"), splits.sizes(), strict=True))
    print(f"{recipe.data_path} -> {output}: {counts} samples, {len(list(output.glob('*.tar')))} shards")
    print(f"train on them: omniperceiver train {args.recipe} data_path={output}")


def evaluate(args: argparse.Namespace) -> None:
    """Print the test metrics of a trained run folder; with several --num-latents, a table of them."""
    from omniperceiver.train import evaluate as run

    if not args.num_latents:
        print(f"{args.run_dir}: {_metrics(run(args.run_dir, progress=not args.quiet))}")
        return
    rows = []
    for n in args.num_latents:
        start = time.perf_counter()
        metrics = run(args.run_dir, num_latents=n, progress=not args.quiet)
        rows.append((n, metrics, time.perf_counter() - start))
    names = sorted(rows[0][1])
    print(f"{args.run_dir}, read with N latents:")
    print("| N | " + " | ".join(names) + " | seconds |")
    print("|---:|" + "---:|" * len(names) + "---:|")
    for n, metrics, seconds in rows:
        print(f"| {n} | " + " | ".join(f"{metrics[name]:.4f}" for name in names) + f" | {seconds:.0f} |")


def demo(args: argparse.Namespace) -> int:
    """Train every modality; print the results table (exit 1 if a task misses its threshold)."""
    from omniperceiver.train.demo import format_table, run_demo

    output_folder(args.output_dir)
    results = run_demo(args.output_dir, quick=args.quick, progress=not args.quiet, jobs=args.jobs)
    print(format_table(results, quick=args.quick))
    print(f"pictures and models in {args.output_dir}/TASK")
    return 0 if args.quick or all(r.passed for r in results) else 1


def reproduce(args: argparse.Namespace) -> int:
    """Train what one of the seed's tables compares; print it and write table.md and table.png."""
    from omniperceiver.reproduce import REPRODUCTIONS

    if args.list or args.name is None:
        for name, reproduction in REPRODUCTIONS.items():
            print(f"{name:24} {reproduction.description}")
        return 0
    if args.name not in REPRODUCTIONS:
        raise ValueError(f"reproduce: no table named {args.name!r}; expected one of {sorted(REPRODUCTIONS)}")
    output = output_folder(args.output_dir or f"runs/reproduce/{args.name}")
    table = REPRODUCTIONS[args.name].run(output, args.quick, args.jobs)
    paths = table.write(output)
    print(table.markdown())
    print(f"written: {', '.join(map(str, paths))}")
    return 0


def generate(args: argparse.Namespace) -> None:
    """Continue a prompt with a Perceiver AR (of bytes, or of the BPE saved beside it), printing the text as it
    is produced."""
    import codecs

    from omniperceiver.data.bpe import BPETokenizer, load_tokenizer
    from omniperceiver.inference.generate import generate as run
    from omniperceiver.inference.sampling import Sampling
    from omniperceiver.models.perceiver_ar import PerceiverAR

    model = PerceiverAR.from_pretrained(args.model)
    if args.num_latents is not None:
        model = model.with_num_latents(args.num_latents)
    tokenizer = load_tokenizer(args.model)
    if tokenizer.vocab_size != model.config.vocab_size:
        found = "its tokenizer.json" if isinstance(tokenizer, BPETokenizer) else "bytes (no tokenizer.json beside it)"
        raise ValueError(
            f"{args.model}: the model reads {model.config.vocab_size} ids; {found} give {tokenizer.vocab_size}"
        )
    prompt = tokenizer.encode(args.prompt)[:-1]  # [CLS] ids, as the model trained
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def stream(tokens) -> None:
        print(decoder.decode(tokenizer.token_bytes(int(tokens[0]))), end="", flush=True)

    Sampling(args.temperature, args.top_k, args.top_p)  # checks the options before the prompt is printed
    print(args.prompt, end="", flush=True)
    generator = torch.Generator().manual_seed(args.seed)
    run(
        model,
        [prompt],
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        eos_id=tokenizer.SEP,
        generator=generator,
        stream=stream,
    )
    print(decoder.decode(b"", final=True))


class IntermixedParser(argparse.ArgumentParser):
    """A command's parser that takes options among its positional arguments, as in
    ``predict MODEL --top 3 a.png b.png`` (argparse's own parser ends INPUT... at the first option)."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:  # parse_known_intermixed_args calls back in here
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


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
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error (or OMNIPERCEIVER_DEBUG=1)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=IntermixedParser)
    info_parser = command(
        "info",
        "describe a model directory",
        "Describe a model: an omniperceiver directory (config.json + model.safetensors), a run folder of\n"
        "`omniperceiver train`, or a transformers directory.",
        "omniperceiver info runs/digits",
    )
    info_parser.add_argument("model_dir", metavar="MODEL_DIR", help=MODEL_DIR_HELP)
    info_parser.add_argument(
        "--compute", action="store_true", help="the kernel the compute policy picks for each attention, and why"
    )
    info_parser.add_argument("--inputs", type=at_least(1), help="with --compute: input elements M (default: config)")
    info_parser.add_argument(
        "--device", type=available_device, default="cpu", help="with --compute: whose policy (default cpu)"
    )
    info_parser.set_defaults(run=info)
    calibrate_parser = command(
        "calibrate",
        "measure this machine's kernel costs for the compute policy",
        "Time GEMMs and each attention kernel on a few shapes (seconds) and cache the cost table that the\n"
        "compute policy picks kernels by (in $XDG_CACHE_HOME/omniperceiver or ~/.cache/omniperceiver).",
        "omniperceiver calibrate",
    )
    calibrate_parser.add_argument(
        "--device", type=available_device, default="cpu", help="torch device to measure (default cpu)"
    )
    calibrate_parser.add_argument("--budget", type=positive_seconds, default=30.0, help="seconds at most (default 30)")
    calibrate_parser.set_defaults(run=calibrate)
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
    export_parser = command(
        "export",
        "export a model as ONNX or torch.export graphs",
        "Export a model as ONNX (the dynamo exporter; run with onnxruntime) or .pt2 (torch.export.load) graphs\n"
        "in OUT: a Perceiver IO as model.onnx, a Perceiver AR as prefill.onnx and step.onnx (one cached decoding\n"
        "step, its fixed-size key/value cache an input and an output: see omniperceiver.export.runtime), with\n"
        "export.json naming inputs, outputs and dynamic axes. Each graph is checked against the eager model on\n"
        "random inputs at two sizes of each dynamic axis (batch 1 and 3; two lengths), masks padded.",
        "omniperceiver export runs/fortunes models/fortunes-onnx --dynamic batch,length",
    )
    export_parser.add_argument("model_dir", metavar="MODEL_DIR", help=MODEL_DIR_HELP)
    export_parser.add_argument("output", metavar="OUT", help="the folder to write the graphs into")
    export_parser.add_argument("--format", choices=["onnx", "pt2"], default="onnx", help="default onnx")
    export_parser.add_argument(
        "--dynamic",
        type=axes,
        metavar="AXES",
        help="axes left free: batch, length, batch,length or none (default: as the published models of its "
        "structure, batch,length for text and batch for the others; none for other models: batch 1, the "
        "configured length)",
    )
    export_parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="default fp32")
    export_parser.add_argument(
        "--refill-latents",
        type=at_least(1),
        metavar="N",
        help="Perceiver AR: latents of the prefill (default num_latents // 2, as generate)",
    )
    export_parser.add_argument(
        "--subset",
        action=argparse.BooleanOptionalAction,
        help="Perceiver IO: the graph takes output_indices (O') and decodes those outputs only (default: on for "
        "the multimodal autoencoder, whose 802,816 video outputs are decoded in subsets, off for the others)",
    )
    export_parser.add_argument(
        "--chunk-size", type=at_least(1), metavar="Q", help="Perceiver IO: decode Q queries at a time (less memory)"
    )
    export_parser.set_defaults(run=export)
    tokenizer_parser = command(
        "tokenizer",
        "learn a BPE tokenizer from text files",
        "Learn a byte-level BPE tokenizer (Hugging Face tokenizers) from UTF-8 text files and write it as\n"
        "DIR/tokenizer.json, for a language-model recipe's input.tokenizer. Ids 0-5 are the special tokens,\n"
        "6-261 the 256 bytes, the rest merges: every text round-trips. For honest held-out numbers, learn it from\n"
        "the training text only (a recipe's input.vocab_size does that by itself).",
        "omniperceiver tokenizer corpus/train/ --vocab-size 4096 --output tokenizers/bpe-4k",
    )
    tokenizer_parser.add_argument("texts", nargs="+", metavar="TEXT", help="text files, or folders of .txt files")
    tokenizer_parser.add_argument(
        "--vocab-size", type=at_least(263), required=True, help="ids in all (special ids + 256 bytes + merges)"
    )
    tokenizer_parser.add_argument("--output", required=True, metavar="DIR", help="the folder for tokenizer.json")
    tokenizer_parser.add_argument("--overwrite", action="store_true", help="replace an existing tokenizer.json")
    tokenizer_parser.set_defaults(run=tokenizer)
    predict_parser = command(
        "predict",
        "run a model on images, texts, frame pairs or clips",
        "Run a model; the task follows from the model: image files -> top classes; text files (or literal texts\n"
        "given with --text) with [MASK] / [MASK*N] spans -> the filled text; frame pairs -> optical flow (a\n"
        "colour-coded PNG and the raw field as .npy); .npz clips with 'video' and 'audio' arrays -> multimodal\n"
        "reconstruction. A run folder of `omniperceiver train` (or its model/) predicts with its task on the file\n"
        "kinds its dataset reads: images, .wav clips, point clouds (.npy, .ply, .off), text files, .npy series,\n"
        "frame pairs; segmentations are written as label PNGs, a language model continues each text.",
        "omniperceiver predict models/conv cat.jpg dog.png\n"
        "  omniperceiver predict runs/spoken-digits seven.wav\n"
        "  omniperceiver predict models/language --text 'The capital of France is [MASK*5].'\n"
        "  omniperceiver predict models/flow frame1.png frame2.png --output-dir flows",
    )
    predict_parser.add_argument("model_dir", metavar="MODEL_DIR", help=MODEL_DIR_HELP)
    predict_parser.add_argument("inputs", metavar="INPUT", nargs="*", help="image, text, frame or clip files")
    predict_parser.add_argument(
        "--text", action="append", metavar="TEXT", help="a literal text for a text model (repeatable)"
    )
    predict_parser.add_argument("--top", type=at_least(1), default=5, help="classes to show (default 5)")
    predict_parser.add_argument("--output-dir", default=".", help="where flow fields and reconstructions go")
    predict_parser.add_argument("--quiet", action="store_true", help="no progress display")
    predict_parser.set_defaults(run=predict)
    train_parser = command(
        "train",
        "train a recipe (needs the train extra)",
        "Train the model of a recipe (a YAML file, or the name of a shipped one, below) on its\n"
        "dataset's train split, validate every epoch, print the test metrics. The recipe's model is a trunk, a\n"
        "published architecture ({zoo: vision-perceiver-conv}) or init_from: weights to fine-tune (a model\n"
        "directory, a transformers directory or a run folder), with training.freeze and training.learning_rates.\n"
        "The run folder gets recipe.yaml, checkpoints/last.ckpt, logs/ (CSV and TensorBoard), model/ and the\n"
        "pictures. Overrides: section.key=value. Several processes: training.devices=N (DDP; training.strategy=fsdp\n"
        "for large models); several machines: run the same command on each under torchrun with\n"
        "training.num_nodes=K.\n"
        f"{SHIPPED_RECIPES}.",
        "omniperceiver train mnist training.epochs=10\n"
        "  omniperceiver train finetune.yaml init_from=runs/frozen 'training.freeze=[]'\n"
        "  omniperceiver train my_recipe.yaml --output-dir runs/mine --resume",
    )
    train_parser.add_argument("recipe", metavar="RECIPE", help="a recipe file or a shipped recipe's name")
    train_parser.add_argument("overrides", metavar="KEY=VALUE", nargs="*", help="e.g. training.epochs=10")
    train_parser.add_argument("--output-dir", help="run folder (default runs/RECIPE)")
    train_parser.add_argument("--resume", action="store_true", help="continue from the run folder's last checkpoint")
    train_parser.add_argument("--overwrite", action="store_true", help="replace the run in the run folder")
    train_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    train_parser.set_defaults(run=train)
    shards_parser = command(
        "shards",
        "write a recipe's folder as WebDataset shards",
        "Write the train, validation and test parts of a recipe's folder (data_path, split as the recipe splits\n"
        "it, its data: options applied when read) as tar shards in the WebDataset format, with shards.json.\n"
        "A recipe whose data_path is the shard folder trains on them: each process and each of its\n"
        "training.num_workers workers reads its own shards, so write at least processes x workers shards.",
        "omniperceiver shards my_images.yaml shards/my_images --per-shard 1000\n"
        "  omniperceiver train my_images.yaml data_path=shards/my_images training.num_workers=2",
    )
    shards_parser.add_argument("recipe", metavar="RECIPE", help="a recipe whose data_path is a folder")
    shards_parser.add_argument("output", metavar="OUT", help="the shard folder to write")
    shards_parser.add_argument("overrides", metavar="KEY=VALUE", nargs="*", help="e.g. data_path=images/")
    shards_parser.add_argument("--per-shard", type=at_least(1), default=1000, help="samples per shard (1000)")
    shards_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    shards_parser.set_defaults(run=shards)
    evaluate_parser = command(
        "evaluate",
        "test metrics of a trained run folder",
        "Evaluate a run folder written by `omniperceiver train` (its recipe.yaml and model/) on the test split.",
        "omniperceiver evaluate runs/mnist\n  omniperceiver evaluate runs/fortunes-lm --num-latents 16 64 256",
    )
    evaluate_parser.add_argument("run_dir", metavar="RUN_DIR")
    evaluate_parser.add_argument(
        "--num-latents",
        type=at_least(1),
        nargs="+",
        metavar="N",
        help="a Perceiver AR read with N latents (several: a table), whatever N it trained with",
    )
    evaluate_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate_parser.set_defaults(run=evaluate)
    generate_parser = command(
        "generate",
        "continue a text with a Perceiver AR",
        "Continue PROMPT with a Perceiver AR (a run folder of `omniperceiver train fortunes-lm`, or a model\n"
        "directory), of bytes or of the BPE tokenizer saved beside it, printing the text as it is produced;\n"
        "stops at the end-of-text token or after --max-new-tokens tokens. temperature 0 decodes greedily.",
        "omniperceiver generate runs/fortunes-lm --prompt 'The meaning of life' --temperature 0.8 --top-k 40",
    )
    generate_parser.add_argument("model", metavar="MODEL_DIR", help=MODEL_DIR_HELP)
    generate_parser.add_argument("--prompt", required=True, help="the text to continue")
    generate_parser.add_argument("--max-new-tokens", type=at_least(0), default=200, help="tokens to add at most (200)")
    generate_parser.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    generate_parser.add_argument("--top-k", type=at_least(1), help="sample among the k likeliest tokens")
    generate_parser.add_argument("--top-p", type=float, help="sample from the smallest set of probability >= p")
    generate_parser.add_argument("--seed", type=int, default=0, help="random seed of the sampling")
    generate_parser.add_argument("--num-latents", type=at_least(1), metavar="N", help="read with N latents")
    generate_parser.set_defaults(run=generate)
    demo_parser = command(
        "demo",
        "train and test every modality, beside simple baselines",
        "Train one Perceiver IO family on images (MNIST), audio (spoken digits), text (language identification),\n"
        "point clouds (shapes), image + audio fusion and optical flow; print each test result beside a baseline\n"
        "measured on the same split and the threshold it must reach. About 10 minutes on 2 CPU cores.",
        "omniperceiver demo --quick --jobs 2 --output-dir runs/demo",
    )
    demo_parser.add_argument("--quick", action="store_true", help="short training runs (under 2 minutes)")
    demo_parser.add_argument("--output-dir", default="runs/demo", help="where run folders go (default runs/demo)")
    demo_parser.add_argument("--quiet", action="store_true", help="no progress display")
    demo_parser.add_argument(
        "--jobs",
        type=at_least(1),
        default=1,
        metavar="J",
        help="train J tasks at a time, sharing the CPU threads (2 on 2 cores: about 30%% less time)",
    )
    demo_parser.set_defaults(run=demo)
    reproduce_parser = command(
        "reproduce",
        "one of the seed's tables, in miniature",
        "Train the models one of the seed talk's tables compares, on data that ships here, and print the table\n"
        "in the seed's shape with the seed's figures beside ours; table.md and table.png go to the output folder.",
        "omniperceiver reproduce fusion --jobs 2",
    )
    reproduce_parser.add_argument("name", nargs="?", metavar="NAME", help="the table (see --list)")
    reproduce_parser.add_argument("--list", action="store_true", help="list the tables")
    reproduce_parser.add_argument("--quick", action="store_true", help="short training runs (under 2 minutes)")
    reproduce_parser.add_argument("--jobs", type=at_least(1), default=1, metavar="J", help="train J models at a time")
    reproduce_parser.add_argument("--output-dir", help="where runs and the table go (runs/reproduce/NAME)")
    reproduce_parser.set_defaults(run=reproduce)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    """The library's own warnings ("omniperceiver: ...", e.g. an unreadable compute cache) as their one line;
    others as Python formats them."""
    text = str(message)
    if text.startswith("omniperceiver: "):
        return text + "\n"
    return _python_format_warning(message, category, filename, lineno, line)


_python_format_warning = warnings.formatwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; a user's mistake prints one line ``omniperceiver: error: ...`` and returns 1 (2 for a
    wrong command line), after its traceback under ``--debug`` or ``OMNIPERCEIVER_DEBUG=1``. The library's own
    warnings print as one line each."""
    warnings.formatwarning = _format_warning
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.error("a COMMAND is needed (omniperceiver --help lists them)")
    except SystemExit as stop:  # --help, --version and argparse's usage errors
        return int(stop.code or 0)
    try:
        return args.run(args) or 0
    except (UsageError, *USER_ERRORS) as error:
        if args.debug or os.environ.get("OMNIPERCEIVER_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        print(f"omniperceiver: error: {one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
