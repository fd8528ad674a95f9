"""``export``: a model's graphs traced with ``torch.export``, written as ONNX (the dynamo exporter, checked by
``onnx.checker``) or ``.pt2`` files, each checked against the eager model at two sizes of every dynamic axis,
and ``export.json`` describing them."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import io
import itertools
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor, nn

from omniperceiver import zoo
from omniperceiver.export.graph import AXES, Graph
from omniperceiver.export.perceiver_ar import generation_graphs
from omniperceiver.export.perceiver_io import single_pass_graph
from omniperceiver.files import atomic_write, output_folder
from omniperceiver.models.perceiver_ar import PerceiverAR
from omniperceiver.models.perceiver_io import PerceiverIO

FORMATS = ("onnx", "pt2")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
TOLERANCE = {"fp32": 1e-4, "bf16": 0.1}  # max |exported - eager| a check accepts
METADATA = "export.json"


@dataclasses.dataclass(frozen=True)
class Exported:
    """One written graph: its file, size, export time, its outputs' dtypes, and the max |difference| from eager
    per checked size."""

    graph: str
    file: Path
    bytes: int
    seconds: float
    output_dtypes: tuple[str, ...]
    differences: dict[str, float]

    @property
    def max_difference(self) -> float:
        return max(self.differences.values())


def graphs_of(
    model: nn.Module, *, refill_latents: int | None = None, subset: bool = False, chunk_size: int | None = None
) -> list[Graph]:
    """The graphs that ``model`` exports as: one for a Perceiver IO (decoding a subset of its outputs given as an
    input, ``chunk_size`` queries at a time), prefill (+ step) for a Perceiver AR (``refill_latents``)."""
    if isinstance(model, PerceiverAR):
        if subset or chunk_size is not None:
            raise ValueError("subset and chunked decoding are Perceiver IO settings; this model is a PerceiverAR")
        return generation_graphs(model, refill_latents)
    if subset and chunk_size is not None:
        raise ValueError(
            "chunked decoding needs a fixed number of outputs (its chunks unroll): export it without subset"
        )
    if refill_latents is not None:
        raise ValueError(f"refill_latents is a Perceiver AR setting; this model is a {type(model).__name__}")
    if isinstance(model, PerceiverIO):
        return [single_pass_graph(model, subset=subset, chunk_size=chunk_size)]
    raise ValueError(f"cannot export a {type(model).__name__}: expected a PerceiverIO or a PerceiverAR")


def export(
    model: nn.Module,
    folder: str | os.PathLike,
    *,
    format: str = "onnx",
    dynamic: Sequence[str] = (),
    dtype: str = "fp32",
    refill_latents: int | None = None,
    subset: bool = False,
    chunk_size: int | None = None,
    progress: Callable[[str], None] = lambda message: None,
) -> list[Exported]:
    """Export ``model`` (put in eval mode; a copy cast to ``dtype`` where it differs) into ``folder``: each graph
    as ``NAME.onnx`` or ``NAME.pt2``, and ``export.json``. ``dynamic`` names the axes left free (:data:`AXES`;
    the others are fixed at batch 1 and the configured length). Each graph is checked against the eager model on
    random inputs at two sizes of each free axis (a padding mask with some padding where the graph takes one);
    ValueError when a difference exceeds :data:`TOLERANCE` or the model cannot be exported (naming the module
    and why). ``subset`` adds the input ``output_indices`` (O',) (its length free), for multimodal queries one
    input ``MODALITY_indices`` per modality: the graph decodes those outputs only; ``chunk_size`` decodes that
    many queries at a time; ``refill_latents`` is a Perceiver AR prefill's latents (see
    :func:`generation_graphs`). ``progress`` hears what is being done."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if format == "onnx" and dtype == "bf16":
        raise ValueError(
            "bf16 ONNX graphs do not run on onnxruntime's CPU kernels (no bf16 Add or MatMul), so they could not "
            "be checked: export bf16 as --format pt2, or ONNX in fp32"
        )
    unknown = sorted(set(dynamic) - set(AXES))
    if unknown:
        raise ValueError(f"dynamic axes must be among {', '.join(AXES)}, got {', '.join(unknown)}")
    if next(model.parameters()).dtype != DTYPES[dtype]:
        model = copy.deepcopy(model).to(DTYPES[dtype])  # the caller's model stays as it is
    model.eval()
    graphs = graphs_of(model, refill_latents=refill_latents, subset=subset, chunk_size=chunk_size)
    # a subset's numbers of outputs: always free (but a modality of one output)
    subset_axes = [axis.name for graph in graphs for axis in graph.dims if axis.name not in AXES and axis.high > 1]
    dynamic = (*dynamic, *subset_axes)
    if "length" in dynamic and not any(graph.axis("length") for graph in graphs):
        raise ValueError(f"{type(model).__name__} reads inputs of a fixed size: no length axis to leave dynamic")
    folder = output_folder(folder)
    written = []
    for graph in graphs:
        progress(f"exporting {graph.name}")
        start = time.perf_counter()
        program = trace(graph, dynamic, DTYPES[dtype])
        path = folder / f"{graph.name}.{format}"
        (save_onnx if format == "onnx" else save_pt2)(program, graph, path)
        seconds = time.perf_counter() - start
        progress(f"checking {graph.name}")
        run = (onnx_runner if format == "onnx" else pt2_runner)(path)
        differences = check(graph, run, dynamic, DTYPES[dtype])
        worst = max(differences.values())
        if not worst <= TOLERANCE[dtype]:
            raise ValueError(
                f"{path}: the exported {graph.name} differs from the eager model by {worst:.3g} (at most "
                f"{TOLERANCE[dtype]} expected for {dtype}): {differences}"
            )
        dtypes = tuple(str(output.meta["val"].dtype).removeprefix("torch.") for output in outputs_of(program))
        written.append(Exported(graph.name, path, path.stat().st_size, seconds, dtypes, differences))
    describe(model, graphs, written, folder, format=format, dynamic=dynamic, dtype=dtype)
    return written


def sizes(graph: Graph, dynamic: Sequence[str], checked: dict[str, int] | None = None) -> dict[str, int]:
    """Each axis's size: ``checked`` where given, else traced where free, fixed where not."""
    return {
        axis.name: (checked or {}).get(axis.name, axis.traced if axis.name in dynamic else axis.fixed)
        for axis in graph.dims
    }


def trace(graph: Graph, dynamic: Sequence[str], dtype: torch.dtype) -> torch.export.ExportedProgram:
    """``torch.export`` of the graph (free axes at their traced size); ValueError naming the module that cannot
    be traced and why."""
    args = cast(graph.example(sizes(graph, dynamic), torch.Generator().manual_seed(0)), dtype)
    dims = {a.name: torch.export.Dim(a.name, min=a.low, max=a.high) for a in graph.dims if a.name in dynamic}
    shapes = tuple(
        {axis: dims[name] for axis, name in graph.axes[n].items() if name in dims} or None for n in graph.inputs
    )
    if any(p.kind is p.VAR_POSITIONAL for p in inspect.signature(graph.module.forward).parameters.values()):
        shapes = (shapes,)  # forward(*tensors): one argument holding them all
    try:
        with torch.no_grad(), quiet():
            return torch.export.export(graph.module, args, dynamic_shapes=shapes)
    except Exception as error:
        raise ValueError(f"cannot export {graph.name}: {where(error)}{first_line(error)}") from error


def save_pt2(program: torch.export.ExportedProgram, graph: Graph, path: Path) -> None:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    atomic_write(path, lambda file: file.write(buffer.getvalue()))


def onnx_modules() -> tuple[ModuleType, ModuleType]:
    """onnx and onnxruntime; ImportError saying what to install where they are missing."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter needs it)
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({error}): pip install 'omniperceiver[export]'"
        ) from None
    return onnx, onnxruntime


def save_onnx(program: torch.export.ExportedProgram, graph: Graph, path: Path) -> None:
    onnx, _ = onnx_modules()

    try:
        with quiet():
            onnx_program = torch.onnx.export(
                program, input_names=list(graph.inputs), output_names=list(graph.outputs), dynamo=True
            )
    except Exception as error:
        raise ValueError(f"cannot convert {graph.name} to ONNX: {onnx_failure(error, program)}") from error
    proto = onnx_program.model_proto
    onnx.checker.check_model(proto, full_check=True)
    atomic_write(path, lambda file: file.write(proto.SerializeToString()))


def onnx_failure(error: BaseException, program: torch.export.ExportedProgram) -> str:
    """Why the ONNX conversion failed, in one line: an operator ONNX lacks, with the module that calls it."""
    text = str(error)
    missing = re.search(r"No ONNX function found for <OpOverload\(op='([\w.]+)'", text)
    if missing is None:
        return first_line(text.partition("## Exception summary")[2] or text)
    operator, where = missing.group(1), ""
    name = operator.rpartition(".")[2].lstrip("_")  # aten._linalg_eigh: what the traced aten.linalg_eigh becomes
    for node in program.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if getattr(node.target, "__name__", "").partition(".")[0].lstrip("_") == name and stack:
            path, kind = list(stack.values())[-1]
            where = f" in {path} ({getattr(kind, '__name__', str(kind).rpartition('.')[2])})"
            break
    return f"{operator}{where} has no ONNX operator: export it as --format pt2"


def onnx_runner(path: Path) -> Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]:
    _, onnxruntime = onnx_modules()

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]

    def run(args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        feeds = {name: arg.cpu().numpy() for name, arg in zip(names, args, strict=True)}
        return tuple(torch.from_numpy(output).to(args[0].device) for output in session.run(None, feeds))

    return run


def pt2_runner(path: Path) -> Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]]:
    module = torch.export.load(path).module()
    return lambda args: module(*args)


def check(
    graph: Graph, run: Callable[[tuple[Tensor, ...]], tuple[Tensor, ...]], dynamic: Sequence[str], dtype: torch.dtype
) -> dict[str, float]:
    """max |exported - eager| over every output, per combination of the two checked sizes of each free axis
    (the fixed size of the others); a ``mask`` input with a length gets its first quarter padded in row 0."""
    free = [axis for axis in graph.dims if axis.name in dynamic]
    differences = {}
    for combination in itertools.product(*(axis.checked for axis in free)):
        checked = dict(zip((axis.name for axis in free), combination, strict=True))
        at = sizes(graph, dynamic, checked)
        args = list(cast(graph.example(at, torch.Generator().manual_seed(1)), dtype))
        if "mask" in graph.inputs and graph.axes["mask"].get(1) == "length":
            mask = args[graph.inputs.index("mask")]
            mask[0, : mask.shape[1] // 4] = False
        with torch.no_grad():
            expected = graph.module(*args)
        got = run(tuple(args))
        differences[", ".join(f"{name} {size}" for name, size in at.items())] = max(
            (a.double() - b.double()).abs().max().item() if a.numel() else 0.0
            for a, b in zip(got, expected, strict=True)
        )
    return differences


def describe(
    model: nn.Module,
    graphs: list[Graph],
    written: list[Exported],
    folder: Path,
    dynamic: Sequence[str],
    **settings: str,
) -> None:
    """Write ``export.json``: the model's class and task (where it has a published model's structure), the
    settings, each graph's file, inputs (dtype, shape with the dynamic axes named) and outputs (dtype), and for a
    Perceiver AR what a generation loop needs."""
    entries = {}
    for graph, exported in zip(graphs, written, strict=True):
        args = cast(graph.example(sizes(graph, ()), torch.Generator().manual_seed(0)), DTYPES[settings["dtype"]])
        entries[graph.name] = {
            "file": exported.file.name,
            "inputs": {n: spec(a, graph.axes[n], dynamic) for n, a in zip(graph.inputs, args, strict=True)},
            "outputs": dict(zip(graph.outputs, exported.output_dtypes, strict=True)),
            "max_difference": exported.max_difference,
        }
    kind = zoo.kind_of(getattr(model, "config", None))
    document = {
        "model": type(model).__name__,
        **({"task": kind.task} if kind else {}),
        **settings,
        "dynamic": list(dynamic),
        "graphs": entries,
    }
    if isinstance(model, PerceiverAR):
        prefill = graphs[0].module
        c = model.config
        document["generation"] = {
            "max_seq_len": c.max_seq_len,
            "num_latents": c.ar.num_latents,
            "refill_latents": prefill.refill_latents,
            "vocab_size": c.vocab_size,
            "pad_id": c.pad_id or 0,
        }
    text = json.dumps(document, indent=2, default=list) + "\n"
    atomic_write(folder / METADATA, lambda file: file.write(text.encode()))


def outputs_of(program: torch.export.ExportedProgram) -> list[torch.fx.Node]:
    """The nodes that ``program`` returns, in order."""
    (output,) = program.graph.find_nodes(op="output")
    return list(output.args[0])


def spec(tensor: Tensor, axes: dict[int, str], dynamic: Sequence[str]) -> dict[str, object]:
    """An input's dtype and shape, its free axes by name."""
    shape = [axes[i] if axes.get(i) in dynamic else n for i, n in enumerate(tensor.shape)]
    return {"dtype": str(tensor.dtype).removeprefix("torch."), "shape": shape}


def cast(args: tuple[Tensor, ...], dtype: torch.dtype) -> tuple[Tensor, ...]:
    return tuple(arg.to(dtype) if arg.is_floating_point() else arg for arg in args)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Keep the exporters' progress prints, log lines and warnings from the user's terminal."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def where(error: BaseException) -> str:
    """``in Module.method (file:line): `` for the innermost frame of a library module (outside this package)
    in the traceback of ``error``."""
    library, here = Path(__file__).resolve().parents[1], Path(__file__).resolve().parent
    found = ""
    traceback = error.__traceback__
    while traceback is not None:
        frame, file = traceback.tb_frame, Path(traceback.tb_frame.f_code.co_filename)
        owner = frame.f_locals.get("self")
        if file.is_relative_to(library) and not file.is_relative_to(here) and isinstance(owner, nn.Module):
            found = f"in {type(owner).__name__}.{frame.f_code.co_name} ({file.name}:{traceback.tb_lineno}): "
        traceback = traceback.tb_next
    return found
