"""Measure a device's costs for the compute policy: a few seconds, a small fixed set of shapes.

For fp32 and bf16: the GEMM rate of a (256, 1024) x (1024, 1024) product, and each attention kernel's time on
:data:`SHAPES` (on a GPU :data:`GPU_SHAPES`; forward, and forward+backward), the least of a few runs; per
kernel, dtype and pass, the four coefficients of the policy's cost model (per call, per product GFLOP, per
million scores, per million values read again) are fitted by least squares (kept >= 0); a kernel whose fit
misses a measurement by more than 1.5x is left out of the table's fits (the policy then never picks it) and gets
a floor instead: the fit scaled to the measurement it overestimated most, which the policy uses only to cost it
as the default kernel. The shapes span what a Perceiver runs: narrow and wide heads, square latent maps, one
head over many keys, many queries over few keys, so that the model interpolates between them.
"""

from __future__ import annotations

import time

import torch

from omniperceiver.core.kernels.policy import DTYPES, KERNELS, AttentionCall, CostTable, Terms, device_kind

# (B·H, O, M, d, dv): small latents; latent self-attention; narrow q/k and wide v; one head over many keys; a
# cross-attention map of 4M scores (the language model's), where the cost per score dominates: without it the
# fit cannot tell that cost, and the chunked kernel's fp32 map was picked where it ran 2.8x slower; one wide
# head of 512 latents over 4,096 keys (the vision model's cross-attention, smaller): without it SDPA's bf16
# training was fitted as cheap as the materialized kernel's there, and picked where it ran 1.9x slower (AMX).
# The last two hold more scores than a block of the chunked kernel's map: many narrow heads of a large latent
# array, where SDPA's flash kernel costs a third per score of what the smaller shapes suggest; one head of 16,384
# queries over 1,024 keys (a decoder), where SDPA's bf16 products run near the GEMM rate. Without them the chunked
# kernel was picked for every attention of the optical flow model, 2.3x slower than SDPA (AMX).
SHAPES = (
    (8, 64, 64, 32, 32),
    (8, 128, 128, 128, 128),
    (8, 128, 128, 32, 160),
    (1, 128, 1024, 256, 256),
    (8, 256, 2048, 32, 160),
    (1, 512, 4096, 256, 256),
    (16, 1024, 1024, 32, 32),
    (1, 16384, 1024, 256, 256),
)
# Measured only by the kernels that read k and v again on them (the chunked ones, in blocks of 64 query rows): one
# head over 65,536 keys, whose time tells the cost of reading k and v again (the term is otherwise told only by
# the decoder's shape, where k and v stay in the caches, and was fitted 30x too dear). SDPA's times on it fit no
# linear model with the other shapes' (one head of few queries over many keys runs at a third of its rate).
REREAD_SHAPES = ((1, 256, 65536, 64, 64),)
# A GPU finishes those in the time of a launch: its shapes have more heads and keys, and one head over many keys
# (the vision model's cross-attention) that leaves most of its multiprocessors idle in a fused kernel
GPU_SHAPES = (
    (8, 128, 128, 32, 32),
    (64, 512, 512, 128, 128),
    (64, 256, 2048, 32, 160),
    (1, 512, 65536, 264, 264),
    (16, 512, 16384, 64, 64),
)
RUNS = 3
FIT_TOLERANCE = 1.5  # a kernel whose cost model misses a measurement by more than this factor is left out


def _seconds(step, device: torch.device, runs: int = RUNS) -> float:
    """Least seconds of ``step`` in ``runs`` after one warm-up run (the run least disturbed by other processes
    on shared cores)."""

    def timed() -> float:
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    timed()
    return min(timed() for _ in range(runs))


def gemm_gflops(device: torch.device, dtype: torch.dtype) -> float:
    a = torch.randn(256, 1024, device=device, dtype=dtype)
    b = torch.randn(1024, 1024, device=device, dtype=dtype)
    return 2 * 256 * 1024 * 1024 / _seconds(lambda: a @ b, device, runs=5) / 1e9


def _attention_step(kernel: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, train: bool):
    batch_heads, queries, keys, d, dv = shape
    q, k, v = (
        torch.randn(1, batch_heads, n, width, device=device, dtype=dtype, requires_grad=train)
        for n, width in ((queries, d), (keys, d), (keys, dv))
    )
    run, scale = KERNELS[kernel].run, d**-0.5

    def step() -> None:
        out = run(q, k, v, mask=None, dropout=0.0, scale=scale)
        if train:
            out.backward(torch.ones_like(out))

    return step


def _fit(points: list[tuple[AttentionCall, float]]) -> Terms:
    """Least-squares (per call, per product GFLOP, per million scores, per million values read again) >= 0 of the
    measured seconds, in relative error; a feature that is 0 in every measurement gets 0."""
    features = torch.tensor(
        [[1.0, c.product_gflop, c.mscores, c.reread_mvalues] for c, _ in points], dtype=torch.float64
    )
    seconds = torch.tensor([[s] for _, s in points], dtype=torch.float64)
    relative = features / seconds  # each measurement's relative error counts alike, whatever its size
    active = [index for index in range(4) if features[:, index].any()]
    while active:  # drop a negative coefficient and refit without it (nonnegative least squares)
        solution = torch.linalg.lstsq(relative[:, active], torch.ones_like(seconds)).solution.flatten().tolist()
        if min(solution) >= 0:
            break
        active.pop(solution.index(min(solution)))
    coefficients = [0.0, 0.0, 0.0, 0.0]
    for index, value in zip(active, solution, strict=True):
        coefficients[index] = max(value, 0.0)
    return coefficients[0], coefficients[1], coefficients[2], coefficients[3]


def _measured_over_predicted(points: list[tuple[AttentionCall, float]], terms: Terms) -> list[float]:
    return [seconds / call.seconds(terms) for call, seconds in points]


def _misses(call: AttentionCall, seconds: float, terms: Terms) -> bool:
    """Whether ``terms`` miss the measured ``seconds`` of ``call`` by more than ``FIT_TOLERANCE`` (another code
    path on some shapes, or noise such as other processes on the cores)."""
    return not 1 / FIT_TOLERANCE <= seconds / call.seconds(terms) <= FIT_TOLERANCE


def _fits(points: list[tuple[AttentionCall, float]], terms: Terms) -> bool:
    """Whether ``terms`` predict every measurement within ``FIT_TOLERANCE``."""
    return not any(_misses(call, seconds, terms) for call, seconds in points)


def _floor(points: list[tuple[AttentionCall, float]], terms: Terms) -> Terms:
    """``terms`` scaled so that they predict no more than any measurement, and exactly the one most overestimated."""
    scale = min(_measured_over_predicted(points, terms))
    return terms[0] * scale, terms[1] * scale, terms[2] * scale, terms[3] * scale


def _expected_seconds(points: list[tuple[AttentionCall, float]], call: AttentionCall) -> float:
    """How long one run of ``call`` may take, from the kernel's last measurement scaled up by product GFLOP (0
    before its first)."""
    if not points:
        return 0.0
    last, seconds = points[-1]
    return seconds * max(call.product_gflop / last.product_gflop, 1.0)


def _measure(kernel: str, shape: tuple[int, ...], dtype: str, train: bool, device: torch.device) -> float:
    """Seconds of one run of ``kernel`` on ``shape`` (B·H, O, M, d, dv) in ``dtype``, forward (and backward if
    ``train``), on fresh tensors."""
    with torch.set_grad_enabled(train):
        return _seconds(_attention_step(kernel, shape, DTYPES[dtype], device, train), device)


def calibrate(device: torch.device, *, budget_s: float = 30.0, dtypes: tuple[str, ...] = ("fp32", "bf16")) -> CostTable:
    """Measure ``device``'s costs within about ``budget_s``: a shape whose runs would end past it, as the kernel's
    last measurement scaled by product GFLOP predicts, is not measured (a kernel measured on fewer than all shapes
    is left out of the table, and the policy then does not consider it). Where a kernel's fit misses, the shapes it
    misses are measured once more on fresh tensors and the lesser time kept: a process's first measurement of a
    shape is at times slow throughout (the materialized kernel's bf16 training on 8 heads of 128 x 128: 1.8 ms,
    then 1.0-1.3 ms ten times on fresh tensors), and the fit it spoiled left out a kernel the policy picks."""
    deadline = time.perf_counter() + budget_s
    attention: dict[str, Terms] = {}
    floors: dict[str, Terms] = {}
    # (on first use it runs inside a model's forward pass: outside its inference mode, autocast and saved-tensor
    # hooks, such as activation checkpointing's)
    keep = torch.autograd.graph.saved_tensors_hooks(lambda tensor: tensor, lambda tensor: tensor)
    shapes = SHAPES + REREAD_SHAPES if device.type == "cpu" else GPU_SHAPES
    multiprocessors = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 0
    with torch.inference_mode(False), torch.autocast(device.type, enabled=False), keep:
        rates = {name: gemm_gflops(device, DTYPES[name]) for name in dtypes}
        for mode in ("fwd", "train"):
            for name in dtypes:
                for kernel in KERNELS.values():
                    calls = [
                        AttentionCall(device.type, name, mode == "train", *shape, mask="none", dropout=False)
                        for shape in shapes
                    ]
                    served = [
                        (call, shape)
                        for call, shape in zip(calls, shapes, strict=True)
                        if not kernel.refuses(call)
                        and (shape not in REREAD_SHAPES or kernel.runs_as(call, multiprocessors).reread_mvalues)
                    ]
                    points = []
                    for call, shape in served:
                        runs_as = kernel.runs_as(call, multiprocessors)
                        if time.perf_counter() + (RUNS + 1) * _expected_seconds(points, runs_as) > deadline:
                            break
                        points.append((runs_as, _measure(kernel.name, shape, name, mode == "train", device)))
                    if len(points) == len(served) >= 3:
                        terms, key = _fit(points), f"{kernel.name}/{name}/{mode}"
                        for index, ((call, seconds), (_, shape)) in enumerate(zip(points, served, strict=True)):
                            if _misses(call, seconds, terms) and time.perf_counter() + (RUNS + 1) * seconds <= deadline:
                                again = _measure(kernel.name, shape, name, mode == "train", device)
                                points[index] = call, min(seconds, again)
                        terms = _fit(points)
                        if _fits(points, terms):
                            attention[key] = terms
                        else:
                            floors[key] = _floor(points, terms)
    return CostTable(device_kind(device), torch.__version__, rates, attention, multiprocessors, floors)
