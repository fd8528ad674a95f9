"""A Perceiver IO as one graph: its inputs (a tensor and its padding mask, or one tensor per modality, and the
indices of the outputs to decode where it decodes a subset) in, its outputs (one tensor, or one per modality)
out."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omniperceiver.export.graph import Axis, Graph, batch_axis, length_axis
from omniperceiver.models.perceiver_io import PerceiverIO


class SinglePass(nn.Module):
    """``model`` over flat tensors: (x, mask) or one tensor per modality, then the output indices where
    ``subset`` -> a tuple of outputs; ``chunk_size`` queries decoded at a time."""

    def __init__(self, model: PerceiverIO, modalities: tuple[str, ...], subset: bool, chunk_size: int | None) -> None:
        super().__init__()
        self.model, self.modalities, self.subset, self.chunk_size = model, modalities, subset, chunk_size

    def run(self, *tensors: Tensor) -> Tensor | dict[str, Tensor]:
        """The model's output, as it returns it."""
        indices = tensors[-1] if self.subset else None
        tensors = tensors[:-1] if self.subset else tensors
        x = dict(zip(self.modalities, tensors, strict=True)) if self.modalities else tensors[0]
        mask = tensors[1] if not self.modalities and len(tensors) > 1 else None
        return self.model(x, mask, output_indices=indices, chunk_size=self.chunk_size)

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        outputs = self.run(*tensors)
        return tuple(outputs.values()) if isinstance(outputs, dict) else (outputs,)


def single_pass_graph(model: PerceiverIO, *, subset: bool = False, chunk_size: int | None = None) -> Graph:
    """The graph of ``model``: inputs ``inputs`` (+ ``mask`` for padded inputs) or the modality names, then
    ``output_indices`` (O') where ``subset``; outputs ``outputs`` or ``MODALITY_output`` per output modality."""
    config = model.config.input
    dtype = next(model.parameters()).dtype

    def example_input(batch: int, length: int | None, generator: torch.Generator) -> tuple[object, Tensor | None]:
        x, mask = config.example(batch, length, generator)
        if isinstance(x, dict):
            return {name: tensor.to(dtype) for name, tensor in x.items()}, mask
        return (x.to(dtype) if x.is_floating_point() else x), mask

    def outputs_of(x: Tensor | dict[str, Tensor], mask: Tensor | None) -> int:
        """The number of outputs the model decodes from this input (O: input queries follow its length)."""
        with torch.no_grad():
            return model.decoder.queries.num_queries(model.input_adapter(x, mask)[0])

    def example(sizes: dict[str, int], generator: torch.Generator) -> tuple[Tensor, ...]:
        x, mask = example_input(sizes["batch"], sizes.get("length"), generator)
        tensors = tuple(x.values()) if isinstance(x, dict) else (x, *((mask,) if mask is not None else ()))
        if subset:
            tensors += (torch.randperm(outputs_of(x, mask), generator=generator)[: sizes["outputs"]],)
        return tensors

    x, mask = example_input(1, None, torch.Generator())
    dims = [batch_axis()]
    if config.variable_length:
        dims.append(length_axis(x.shape[1], getattr(config, "max_length", None)))
    if subset:
        count = outputs_of(x, mask)
        dims.append(Axis("outputs", count, max(1, count // 2), (count, 1), high=count))
    modalities = tuple(x) if isinstance(x, dict) else ()
    inputs = modalities or ("inputs", *(("mask",) if mask is not None else ()))
    length = {1: "length"} if config.variable_length else {}
    axes = {name: {0: "batch", **length} for name in inputs}
    if subset:
        inputs += ("output_indices",)
        axes["output_indices"] = {0: "outputs"}
    module = SinglePass(model, modalities, subset, chunk_size)
    with torch.no_grad():
        outputs = module.run(*example({axis.name: axis.fixed for axis in dims}, torch.Generator().manual_seed(0)))
    names = tuple(f"{name}_output" for name in outputs) if isinstance(outputs, dict) else ("outputs",)
    return Graph("model", module, inputs, names, axes, tuple(dims), example)
