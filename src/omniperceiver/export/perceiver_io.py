"""A Perceiver IO as one graph: its inputs (a tensor and its padding mask, or one tensor per modality, and the
indices of the outputs to decode where it decodes a subset: flat, or per output modality) in, its outputs (one
tensor, or one per modality) out."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omniperceiver.export.graph import Graph, batch_axis, length_axis, outputs_axis
from omniperceiver.models.perceiver_io import PerceiverIO
from omniperceiver.outputs.multimodal import MultimodalQueries


class SinglePass(nn.Module):
    """``model`` over flat tensors: (x, mask) or one tensor per modality, then where a ``subset`` is decoded its
    indices (flat, or one tensor per query modality of ``subset``) -> a tuple of outputs; ``chunk_size`` queries
    decoded at a time."""

    def __init__(
        self, model: PerceiverIO, modalities: tuple[str, ...], subset: tuple[str, ...], chunk_size: int | None
    ) -> None:
        super().__init__()
        self.model, self.modalities, self.subset, self.chunk_size = model, modalities, subset, chunk_size

    def run(self, *tensors: Tensor) -> Tensor | dict[str, Tensor]:
        """The model's output, as it returns it."""
        split = len(tensors) - len(self.subset)
        tensors, given = tensors[:split], tensors[split:]
        indices = None
        if self.subset:
            per_modality = isinstance(self.model.decoder.queries, MultimodalQueries)
            indices = dict(zip(self.subset, given, strict=True)) if per_modality else given[0]
        x = dict(zip(self.modalities, tensors, strict=True)) if self.modalities else tensors[0]
        mask = tensors[1] if not self.modalities and len(tensors) > 1 else None
        return self.model(x, mask, output_indices=indices, chunk_size=self.chunk_size)

    def forward(self, *tensors: Tensor) -> tuple[Tensor, ...]:
        outputs = self.run(*tensors)
        return tuple(outputs.values()) if isinstance(outputs, dict) else (outputs,)


def single_pass_graph(model: PerceiverIO, *, subset: bool = False, chunk_size: int | None = None) -> Graph:
    """The graph of ``model``: inputs ``inputs`` (+ ``mask`` for padded inputs) or the modality names, then where
    ``subset`` ``output_indices`` (O'), or for multimodal queries ``MODALITY_indices`` (O'_i) per modality in the
    queries' order (axes ``MODALITY_outputs``); outputs ``outputs`` or ``MODALITY_output`` per output modality."""
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
        for axis in decoded:  # (a flat subset's count follows the input where its queries are the inputs)
            count = outputs_of(x, mask) if axis.name == "outputs" else axis.fixed
            tensors += (torch.randperm(count, generator=generator)[: sizes[axis.name]],)
        return tensors

    x, mask = example_input(1, None, torch.Generator())
    dims = [batch_axis()]
    if config.variable_length:
        dims.append(length_axis(x.shape[1], getattr(config, "max_length", None)))
    queries, subset_keys, decoded = model.decoder.queries, (), []  # decoded: the axes of the indices of a subset
    if subset and isinstance(queries, MultimodalQueries):
        subset_keys = tuple(queries.config.sizes)
        decoded = [outputs_axis(count, f"{name}_outputs") for name, count in queries.config.sizes.items()]
    elif subset:
        subset_keys, decoded = ("output_indices",), [outputs_axis(outputs_of(x, mask))]
    dims += decoded
    modalities = tuple(x) if isinstance(x, dict) else ()
    inputs = modalities or ("inputs", *(("mask",) if mask is not None else ()))
    length = {1: "length"} if config.variable_length else {}
    axes = {name: {0: "batch", **length} for name in inputs}
    index_inputs = tuple(key if key == "output_indices" else f"{key}_indices" for key in subset_keys)
    inputs += index_inputs
    axes.update({name: {0: axis.name} for name, axis in zip(index_inputs, decoded, strict=True)})
    module = SinglePass(model, modalities, subset_keys, chunk_size)
    with torch.no_grad():  # the output names, from the smallest sizes checked
        outputs = module.run(*example({axis.name: min(axis.checked) for axis in dims}, torch.Generator()))
    names = tuple(f"{name}_output" for name in outputs) if isinstance(outputs, dict) else ("outputs",)
    return Graph("model", module, inputs, names, axes, tuple(dims), example)
