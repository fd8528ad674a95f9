"""The compute policy: which kernel runs each attention call, and which units serve Linear layers under autocast.

Decided once per call class, visibly, from a cost table:

* an **attention call class** (:class:`AttentionCall`) is what the choice depends on: device, dtype, grad or
  not, batch x heads, queries, keys, q/k and v head widths, mask kind, dropout. Each kernel that can serve it
  (:data:`KERNELS`; e.g. the fp32-units flash kernel takes no mask) gets a cost from the table, and the
  cheapest runs. Materialized attention serves, with autograd, maps no larger than q, k and v together (it keeps
  the probabilities for backward), and without autograd maps of at most one block of the chunked kernel (which
  serves larger maps as fast in blocks): memory stays of the order of the fused kernels'.
  With autograd the chunked kernel serves maps of at most one block per head: beyond it, its backward sums the
  gradients of k and v over blocks of query rows (one head over 50,176 keys at batch 8: 5.0 s against 1.6 s
  materialized, 3.3 s SDPA).
* the **cost table** (:class:`CostTable`) holds, per device kind and torch version, the measured GEMM rate of
  each dtype and, per kernel, dtype and pass (forward, forward+backward), four coefficients of a linear model:
  ``seconds = per_call + per_gflop · product GFLOP + per_mscore · million scores + per_reread · million values
  read again``, where product GFLOP = 2·BH·O·M·(d + dv)/1e9 (the two products), scores = BH·O·M (softmax and the
  map's memory traffic), and values read again those of k and v that the chunked kernel reads once more per block
  of query rows. The calibration (:mod:`~omniperceiver.core.kernels.calibration`) fits them on a small fixed set
  of shapes; an unseen call class is costed by the same model at its own shape, so it needs no measurement of its
  own. A kernel is costed at the call it runs in fact (:attr:`Kernel.runs_as`): SDPA pads head channels, on a GPU
  its fused kernels take as long for a few heads as for enough of them to fill the multiprocessors
  (:meth:`AttentionCall.filling`; the table holds the GPU's count), and the chunked kernel reads k and v again.
  A kernel replaces the default one only where it is predicted ``MARGIN`` times faster (the model's error is
  about 10%). A kernel whose measurements the model does not fit (SDPA's bf16 training on a CPU without bf16
  units: 2.5x dearer per GFLOP for one head than for eight) is never picked; as the default it keeps a
  **floor** (the fit scaled down to the measurement it overestimates most: never above a measured time), and
  another kernel replaces it where predicted ``MARGIN`` times cheaper than that floor.
* **Linear layers** under bf16 autocast on the CPU run on the fp32 units where the table's bf16 GEMM rate is
  below the fp32 rate divided by ``SLOWER_BY``; else autocast's bf16 GEMM (without autograd, on a bf16 copy of the
  weights kept until they change: :mod:`~omniperceiver.core.linear`). There a bf16 attention call that the table
  does not cost runs the default kernel's fp32-units variant (``chunked-fp32``, ``sdpa-fp32``), not its bf16 one.
* **without a table** (calibration off, or none could be made) the documented default: materialized attention
  only where the probabilities are asked for, the chunked kernel on the CPU for q/k and v heads of different
  widths where it serves (no dropout; with autograd, at most a block per head), SDPA for everything else;
  Linear layers as autocast makes them.
* **overrides** force a kernel where it can serve: a model config's ``attention_kernel`` (every attention of
  that model), else ``OMNIPERCEIVER_ATTENTION`` (a kernel name; or the ``attention_kernel`` of :class:`Policy`);
  ``OMNIPERCEIVER_LINEAR_UNITS`` (``bf16`` or ``fp32``) forces the units of Linear layers.
  ``OMNIPERCEIVER_CALIBRATION=off`` keeps the default (no timing, no cache).
* under ``torch.compile`` the choice is a plain function of the shapes (:func:`traceable_kernel`): SDPA, or
  the chunked kernel where it serves by default; no fp32-units paths. Under ``torch.export`` (ONNX, .pt2):
  materialized attention, whose standard ops every runtime runs.

The process's policy (:func:`active_policy`) is made on first use (on the CPU, with freed memory kept for reuse:
:mod:`~omniperceiver.core.allocator`): the cached table of this device kind is read
(``$XDG_CACHE_HOME/omniperceiver`` or ``~/.cache/omniperceiver``; JSON, validated, a bad file is ignored with a
one-line warning), or the calibration runs within ``LAZY_BUDGET_S`` and its table is written. Under
``torch.distributed``, rank 0 decides and broadcasts its table, so every rank picks the same kernels. The same
table always gives the same choices.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from omniperceiver.core.allocator import keep_freed_memory
from omniperceiver.core.kernels.chunked import chunked_attention, needs_autograd, rows_per_block, values_per_block
from omniperceiver.core.kernels.materialized import materialized
from omniperceiver.core.kernels.sdpa import REDUCED, padded_widths, sdpa, sdpa_on_fp32_units

SLOWER_BY = 1.25  # bf16 GEMMs at least this much slower than fp32 ones take the fp32 units
LAZY_BUDGET_S = 15.0  # the calibration on first use stops measuring after this long (10.7-11.5 s on 2 AMX cores)
MAX_REMEMBERED = 4096  # call classes whose choice a policy remembers
QUERY_ROWS_PER_BLOCK = 64  # query rows of one head that a fused GPU attention kernel gives one thread block
MARGIN = 1.1  # another kernel replaces the default one where it is predicted at least this much faster
TABLE_VERSION = 4  # (2: floors; 3: a wide head over 4,096 keys among the shapes; 4: values reread, more shapes)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16, "fp64": torch.float64}
PASSES = ("fwd", "train")


def _plain(q: Tensor, k: Tensor, v: Tensor) -> bool:
    """4-D, one dtype, no broadcast batch or head dimensions (what the chunked kernel takes)."""
    return q.dim() == 4 and q.dtype == k.dtype == v.dtype and q.shape[:2] == k.shape[:2] == v.shape[:2]


@dataclasses.dataclass(frozen=True)
class AttentionCall:
    """What the kernel choice depends on, for q (B, H, O, d), k (B, H, M, d), v (B, H, M, dv)."""

    device: str  # "cpu", "cuda", ...
    dtype: str  # a key of DTYPES, or "mixed"
    grad: bool  # autograd will need backward through it
    batch_heads: int  # B·H
    queries: int  # O
    keys: int  # M
    qk_width: int  # d
    v_width: int  # dv
    mask: str  # "none" or "mask"
    dropout: bool
    plain: bool = True  # 4-D, one dtype, no broadcast batch or head dimensions
    # (as a kernel runs it: million values of k and v it reads again, beyond once; see Kernel.runs_as)
    reread_mvalues: float = 0.0

    @classmethod
    def of(cls, q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, dropout: float) -> AttentionCall:
        names = {dtype: name for name, dtype in DTYPES.items()}
        return cls(
            device=q.device.type,
            dtype=names.get(q.dtype, str(q.dtype)) if q.dtype == k.dtype == v.dtype else "mixed",
            grad=needs_autograd(q, k, v),
            batch_heads=math.prod(q.shape[:-2]),
            queries=q.shape[-2],
            keys=k.shape[-2],
            qk_width=q.shape[-1],
            v_width=v.shape[-1],
            mask="none" if mask is None else "mask",
            dropout=dropout > 0,
            plain=_plain(q, k, v),
        )

    @property
    def product_gflop(self) -> float:
        return 2 * self.batch_heads * self.queries * self.keys * (self.qk_width + self.v_width) / 1e9

    def padded(self) -> AttentionCall:
        """The call that SDPA runs after :func:`~omniperceiver.core.kernels.sdpa.pad_head_channels`."""
        d, dv = padded_widths(self.device, self.qk_width, self.v_width, reduced=DTYPES.get(self.dtype) in REDUCED)
        return dataclasses.replace(self, qk_width=d, v_width=dv)

    def filling(self, multiprocessors: int) -> AttentionCall:
        """The call that a GPU's fused kernel takes as long for: it gives one thread block to each
        ``QUERY_ROWS_PER_BLOCK`` query rows of a head, so a call with fewer blocks than the GPU has
        ``multiprocessors`` leaves the others idle and takes as long as a call of more heads that fills them
        (one head of 512 latents: 8 blocks of an H200's 132)."""
        blocks = self.batch_heads * math.ceil(self.queries / QUERY_ROWS_PER_BLOCK)
        if blocks >= multiprocessors:
            return self
        return dataclasses.replace(self, batch_heads=math.ceil(self.batch_heads * multiprocessors / blocks))

    @property
    def mscores(self) -> float:
        return self.batch_heads * self.queries * self.keys / 1e6

    def seconds(self, terms: Terms) -> float:
        """The cost model's seconds for this call: per call + per product GFLOP + per million scores + per
        million values read again."""
        features = (1.0, self.product_gflop, self.mscores, self.reread_mvalues)
        return sum(term * feature for term, feature in zip(terms, features, strict=True))

    def shapes(self) -> str:
        """B·H, O, M, the head widths, mask and dropout, e.g. "BH=8 O=512 M=512 d=128 dv=128 mask=none"."""
        text = f"BH={self.batch_heads} O={self.queries} M={self.keys} d={self.qk_width} dv={self.v_width}"
        return f"{text} mask={self.mask}" + (" dropout" if self.dropout else "")

    def describe(self) -> str:
        return f"{self.device} {self.dtype} {'train' if self.grad else 'fwd'} {self.shapes()}"


Terms = tuple[float, float, float, float]  # seconds per call, product GFLOP, million scores, million values reread
Run = Callable[..., Tensor]  # (q, k, v, *, mask, dropout, scale) -> (B, H, O, dv)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """An attention kernel the policy can pick, the call classes it cannot serve (``refuses``: why not), and
    the call whose cost it has in fact on a device of so many multiprocessors (``runs_as``: SDPA pads head
    channels, and its fused GPU kernels take as long for a few heads as for enough to fill the GPU; the chunked
    kernel reads k and v again for each block of query rows)."""

    name: str
    run: Run
    refuses: Callable[[AttentionCall], str | None]
    runs_as: Callable[[AttentionCall, int], AttentionCall] = lambda call, multiprocessors: call


def _sdpa_runs_as(call: AttentionCall, multiprocessors: int) -> AttentionCall:
    return call.padded().filling(multiprocessors)


def _chunked_runs_as(call: AttentionCall, multiprocessors: int) -> AttentionCall:
    """The chunked kernel reads a head's k and v once more for each block of its query rows beyond the first
    (where one head's map exceeds a block: one head of 2,048 latents over 182,528 pixels, blocks of 22 rows,
    took 1.8 s where its map and products alone predict 0.36 s, an AMX Xeon in bf16)."""
    rows = rows_per_block(call.queries, call.keys, values_per_block(call.device))
    again = call.batch_heads * (math.ceil(call.queries / rows) - 1) * call.keys * (call.qk_width + call.v_width)
    return dataclasses.replace(call, reread_mvalues=again / 1e6)


def _refuses_chunked(call: AttentionCall) -> str | None:
    if call.dropout:
        return "no dropout"
    if call.grad and call.queries * call.keys > values_per_block(call.device):
        per_head = f"{values_per_block(call.device):,} scores per head"
        return f"with autograd, maps of at most {per_head} (beyond, backward sums k and v gradients over row blocks)"
    return None if call.plain else "needs one dtype and no broadcast dimensions"


def _refuses_fp32_units(call: AttentionCall) -> str | None:
    if call.device != "cpu" or call.dtype != "bf16":
        return "bf16 on the CPU only"
    return None


def _refuses_flash_fp32(call: AttentionCall) -> str | None:
    if reason := _refuses_fp32_units(call):
        return reason
    if call.mask != "none" or call.dropout or call.qk_width != call.v_width or not call.plain:
        return "unmasked, no dropout, one head width only"
    return None


def _refuses_materialized(call: AttentionCall) -> str | None:
    kept = call.batch_heads * (call.queries * call.qk_width + call.keys * (call.qk_width + call.v_width))
    scores = call.batch_heads * call.queries * call.keys
    if call.grad:
        return "with autograd only where its probabilities are no larger than q, k and v" if scores > kept else None
    if scores > values_per_block(call.device):  # (a block of the chunked kernel: its memory is never more)
        return f"without autograd, maps of at most {values_per_block(call.device):,} scores only"
    return None


def _chunked(fp32_units: bool) -> Run:
    def run(q: Tensor, k: Tensor, v: Tensor, *, mask: Tensor | None, dropout: float, scale: float) -> Tensor:
        return chunked_attention(q, k, v, mask=mask, scale=scale, fp32_units=fp32_units)

    return run


KERNELS = {
    kernel.name: kernel
    for kernel in (
        Kernel("sdpa", sdpa, lambda call: None, _sdpa_runs_as),
        Kernel("materialized", materialized, _refuses_materialized),
        Kernel("chunked", _chunked(False), _refuses_chunked, _chunked_runs_as),
        Kernel("sdpa-fp32", sdpa_on_fp32_units, _refuses_flash_fp32),
        Kernel(
            "chunked-fp32", _chunked(True), lambda c: _refuses_fp32_units(c) or _refuses_chunked(c), _chunked_runs_as
        ),
    )
}


def default_kernel(call: AttentionCall) -> str:
    """The documented default without a cost table: chunked for CPU heads of unequal widths, else SDPA."""
    unequal_on_cpu = call.device == "cpu" and call.qk_width != call.v_width
    return "chunked" if unequal_on_cpu and not _refuses_chunked(call) else "sdpa"


def traceable_kernel(q: Tensor, k: Tensor, v: Tensor, *, dropout: float) -> Kernel:
    """The choice under ``torch.compile``: the default, from the shapes alone (no table, no fp32 units); under
    export, materialized attention (matmul, softmax, matmul: the standard ops every exporter and runtime knows)."""
    if torch.compiler.is_exporting():
        return KERNELS["materialized"]
    unequal_on_cpu = q.device.type == "cpu" and q.shape[-1] != v.shape[-1]
    return KERNELS["chunked" if unequal_on_cpu and _plain(q, k, v) and not dropout else "sdpa"]


@dataclasses.dataclass(frozen=True)
class CostTable:
    """Measured costs of one device kind and torch version (see the module docstring for the model)."""

    device_kind: str
    torch_version: str
    gemm_gflops: dict[str, float]  # dtype name -> GFLOP/s of a (256, 1024) x (1024, 1024) product
    # "kernel/dtype/pass" -> seconds per call, per product GFLOP, per million scores, per million values reread
    attention: dict[str, Terms]
    multiprocessors: int = 0  # a GPU's (0: a CPU)
    # the same keys, for kernels whose fit missed a measurement: coefficients that never predict above one
    floors: dict[str, Terms] = dataclasses.field(default_factory=dict)

    def cost(self, kernel: str, call: AttentionCall, *, floor: bool = False) -> float | None:
        """Predicted seconds of ``kernel`` on ``call`` (with ``floor``, at least: its floor where it has no
        fit); None where the table has no entry for it."""
        key = f"{kernel}/{call.dtype}/{'train' if call.grad else 'fwd'}"
        terms = self.attention.get(key, self.floors.get(key) if floor else None)
        if terms is None:
            return None
        return KERNELS[kernel].runs_as(call, self.multiprocessors).seconds(terms)

    def to_json(self) -> dict:
        return {"version": TABLE_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: object) -> CostTable:
        """A table from parsed JSON; ValueError naming the first bad field."""

        def number(value: object, where: str) -> float:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{where} must be a finite number >= 0, got {value!r}")
            return float(value)

        def terms(field: str) -> dict[str, Terms]:
            entries = data.get(field, {})
            if not isinstance(entries, dict):
                raise ValueError(f"{field} must be an object, got {entries!r}")
            parsed = {}
            for key, values in entries.items():
                kernel, _, rest = key.partition("/")
                dtype, _, mode = rest.partition("/")
                if kernel not in KERNELS or dtype not in DTYPES or mode not in PASSES:
                    raise ValueError(f"{field}: bad key {key!r}; expected KERNEL/DTYPE/PASS, e.g. 'sdpa/bf16/fwd'")
                if not isinstance(values, list) or len(values) != 4:
                    raise ValueError(f"{field}.{key} must be a list of 4 numbers, got {values!r}")
                parsed[key] = tuple(number(v, f"{field}.{key}") for v in values)
            return parsed

        if not isinstance(data, dict) or data.get("version") != TABLE_VERSION:
            raise ValueError(f"expected an object with version {TABLE_VERSION}")
        for key in ("device_kind", "torch_version"):
            if not isinstance(data.get(key), str):
                raise ValueError(f"{key} must be a string, got {data.get(key)!r}")
        gemm = data.get("gemm_gflops")
        if not isinstance(gemm, dict):
            raise ValueError(f"gemm_gflops must be an object, got {gemm!r}")
        rates = {}
        for dtype, rate in gemm.items():
            if dtype not in DTYPES:
                raise ValueError(f"gemm_gflops: unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}")
            rates[dtype] = number(rate, f"gemm_gflops.{dtype}")
        multiprocessors = data.get("multiprocessors", 0)
        if isinstance(multiprocessors, bool) or not isinstance(multiprocessors, int) or multiprocessors < 0:
            raise ValueError(f"multiprocessors must be an integer >= 0, got {multiprocessors!r}")
        kind, version = data["device_kind"], data["torch_version"]
        return cls(kind, version, rates, terms("attention"), multiprocessors, terms("floors"))


@dataclasses.dataclass(frozen=True)
class Choice:
    """A decision and why it was made."""

    name: str
    reason: str


class Policy:
    """Picks attention kernels and Linear units from ``table`` (None: the documented default), with overrides:
    ``attention_kernel`` forces that kernel wherever it can serve, ``linear_units`` ("bf16" or "fp32") forces
    the units of Linear layers under CPU bf16 autocast. Choices are remembered per call class."""

    def __init__(
        self, table: CostTable | None = None, *, attention_kernel: str | None = None, linear_units: str | None = None
    ) -> None:
        if attention_kernel is not None and attention_kernel not in KERNELS:
            raise ValueError(f"unknown attention kernel {attention_kernel!r}; expected one of {sorted(KERNELS)}")
        if linear_units not in (None, "bf16", "fp32"):
            raise ValueError(f"linear units must be 'bf16' or 'fp32', got {linear_units!r}")
        self.table, self.attention_kernel, self.linear_units = table, attention_kernel, linear_units
        self._choices: dict[tuple[AttentionCall, str | None], tuple[Kernel, Choice]] = {}
        self._linear: dict[str, Choice] = {}
        self._recording: list[AttentionCall] | None = None

    @contextlib.contextmanager
    def record(self) -> Iterator[list[AttentionCall]]:
        """Collect the call class of every attention call that asks this policy for a kernel in the block."""
        self._recording = calls = []
        try:
            yield calls
        finally:
            self._recording = None

    def attention(self, call: AttentionCall, *, forced: str | None = None) -> Choice:
        """The kernel for ``call`` and why; ``forced`` (a module's ``attention_kernel``) overrides the policy's
        own override where it can serve."""
        return self._decide(call, forced)[1]

    def kernel(self, call: AttentionCall, *, forced: str | None = None) -> Kernel:
        """The kernel to run for ``call`` (remembered: the hot path is one lookup)."""
        if self._recording is not None:
            self._recording.append(call)
        return self._decide(call, forced)[0]

    def _decide(self, call: AttentionCall, forced: str | None) -> tuple[Kernel, Choice]:
        key = call, forced
        if key not in self._choices:
            if len(self._choices) >= MAX_REMEMBERED:  # (cached decoding makes a new call class per token)
                self._choices.clear()
            choice = self._choose(call, forced or self.attention_kernel)
            self._choices[key] = KERNELS[choice.name], choice
        return self._choices[key]

    def _choose(self, call: AttentionCall, forced: str | None) -> Choice:
        if forced is not None:
            refused = KERNELS[forced].refuses(call)
            if refused is None:
                return Choice(forced, "forced by the override")
        costs, default, floor = {}, default_kernel(call), False
        if self.table is not None:
            for kernel in KERNELS.values():
                if not kernel.refuses(call) and (cost := self.table.cost(kernel.name, call)) is not None:
                    costs[kernel.name] = cost
            if default not in costs and (cost := self.table.cost(default, call, floor=True)) is not None:
                costs[default], floor = cost, True
        if default in costs:  # (a kernel replaces the default only where both are costed)
            best = min(costs, key=lambda name: (costs[name], name))
            if costs[best] * MARGIN > costs[default]:
                best = default

            def ms(name: str) -> str:
                return ("at least " if name == default and floor else "") + f"{1e3 * costs[name]:.3g}"

            others = ", ".join(f"{name} {ms(name)}" for name in sorted(costs) if name != best)
            reason = f"cheapest by the cost table: {ms(best)} ms" + (f" (vs {others})" if others else "")
        elif self.table is not None and (on_fp32_units := self._on_fp32_units(call, default)) is not None:
            best, reason = on_fp32_units, f"{default} (the default, not in the table) on the fp32 units"
        else:
            best, reason = default, "the default (" + ("no cost table)" if self.table is None else "not in the table)")
        if forced is not None:
            reason += f"; the override {forced!r} cannot serve it: {KERNELS[forced].refuses(call)}"
        return Choice(best, reason)

    def _on_fp32_units(self, call: AttentionCall, default: str) -> str | None:
        """The fp32-units kernel that serves an uncosted bf16 CPU ``call`` instead of ``default``, where the table's
        GEMM rates put Linear layers on the fp32 units (the bf16 kernels' products would run at the bf16 GEMM's
        rate: 1 GFLOP/s on a CPU without bf16 units, whose calibration may not reach them within its budget)."""
        if call.device != "cpu" or call.dtype != "bf16" or self.linear(torch.device("cpu")).name != "fp32":
            return None
        for name in (f"{default}-fp32", "chunked-fp32", "sdpa-fp32"):
            if name in KERNELS and KERNELS[name].refuses(call) is None:
                return name
        return None

    def linear(self, device: torch.device) -> Choice:
        """Which units serve the products of Linear layers under bf16 autocast on ``device``: "bf16" (autocast's
        own GEMM) or "fp32" (:class:`~omniperceiver.core.kernels.fp32_units.LinearOnFp32Units`), and why."""
        if device.type not in self._linear:
            self._linear[device.type] = self._choose_linear(device)
        return self._linear[device.type]

    def _choose_linear(self, device: torch.device) -> Choice:
        if device.type != "cpu":
            return Choice("bf16", "fp32 units only on the CPU")
        if self.linear_units is not None:
            return Choice(self.linear_units, "forced by the override")
        rates = self.table.gemm_gflops if self.table is not None else {}
        if "fp32" not in rates or "bf16" not in rates:
            return Choice("bf16", "the default (no GEMM rates measured)")
        fp32, bf16 = rates["fp32"], rates["bf16"]
        units = "fp32" if bf16 * SLOWER_BY <= fp32 else "bf16"
        return Choice(
            units, f"GEMM rates: fp32 {fp32:.0f}, bf16 {bf16:.0f} GFLOP/s (fp32 units if {SLOWER_BY}x faster)"
        )

    def describe(self) -> str:
        if self.table is None:
            return "the default policy (no cost table)"
        rates = ", ".join(f"{dtype} {rate:.0f}" for dtype, rate in self.table.gemm_gflops.items())
        units = f", {self.table.multiprocessors} multiprocessors" if self.table.multiprocessors else ""
        return (
            f"cost table of {self.table.device_kind}, torch {self.table.torch_version} (GEMM GFLOP/s: {rates}{units})"
        )


# The process's policy ------------------------------------------------------------------------------------------


def device_kind(device: torch.device) -> str:
    """A name for the kind of ``device`` whose costs a table holds: the GPU's name, or the CPU's model name,
    instruction set and threads."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type != "cpu":
        return device.type
    model = "cpu"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return f"cpu:{model}:{torch.backends.cpu.get_cpu_capability()}:{torch.get_num_threads()} threads"


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "omniperceiver"


def cache_path(kind: str) -> Path:
    key = hashlib.sha256(f"{kind}|torch {torch.__version__}".encode()).hexdigest()[:16]
    return cache_folder() / f"compute-{key}.json"


def load_table(kind: str) -> CostTable | None:
    """The cached table of device ``kind`` and this torch; None (with a one-line warning for a bad file)."""
    path = cache_path(kind)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        warnings.warn(f"omniperceiver: ignoring the compute cache {path}: {error.strerror}", stacklevel=2)
        return None
    try:
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("version"), int) and data["version"] < TABLE_VERSION:
            return None  # (an older release's table: measured again, and replaced)
        table = CostTable.from_json(data)
        if (table.device_kind, table.torch_version) != (kind, torch.__version__):
            raise ValueError(f"it is for {table.device_kind}, torch {table.torch_version}")
    except ValueError as error:  # (json.JSONDecodeError is a ValueError)
        warnings.warn(f"omniperceiver: ignoring the compute cache {path}: {error}", stacklevel=2)
        return None
    return table


def save_table(table: CostTable) -> Path:
    """Write ``table`` atomically to its cache file; the path."""
    path = cache_path(table.device_kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".compute-", suffix=".tmp", delete=False) as file:
        json.dump(table.to_json(), file, indent=1)
        file.flush()
        os.fsync(file.fileno())
    os.replace(file.name, path)
    return path


def _broadcast_from_rank_0(table: CostTable | None) -> CostTable | None:
    """Rank 0's table on every rank of an initialized process group (else ``table``)."""
    distributed = torch.distributed
    if not (distributed.is_available() and distributed.is_initialized()):
        return table
    message = [json.dumps(table.to_json()) if table is not None else None]
    distributed.broadcast_object_list(message, src=0)
    return None if message[0] is None else CostTable.from_json(json.loads(message[0]))


def policy_from_environment(device: torch.device) -> Policy:
    """The policy that the environment asks for: overrides, and the cached or freshly calibrated table of
    ``device``'s kind (rank 0's under torch.distributed) unless ``OMNIPERCEIVER_CALIBRATION=off``."""
    calibration = os.environ.get("OMNIPERCEIVER_CALIBRATION", "auto")
    if calibration not in ("auto", "off"):
        raise ValueError(f"OMNIPERCEIVER_CALIBRATION must be 'auto' or 'off', got {calibration!r}")
    table = None
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if calibration == "auto" and (not distributed or torch.distributed.get_rank() == 0):
        kind = device_kind(device)
        table = load_table(kind)
        if table is None:
            from omniperceiver.core.kernels.calibration import calibrate

            table = calibrate(device, budget_s=LAZY_BUDGET_S)
            with contextlib.suppress(OSError):
                save_table(table)
    if calibration == "auto":
        table = _broadcast_from_rank_0(table)
    return Policy(
        table,
        attention_kernel=os.environ.get("OMNIPERCEIVER_ATTENTION") or None,
        linear_units=os.environ.get("OMNIPERCEIVER_LINEAR_UNITS") or None,
    )


_policies: dict[str, Policy] = {}  # per device type, made on first use
_forced: list[Policy] = []  # use_policy's stack


def active_policy(device: torch.device) -> Policy:
    """The policy that serves ``device`` now: the innermost :func:`use_policy`, else the process's own."""
    if _forced:
        return _forced[-1]
    if device.type not in _policies:
        if device.type == "cpu":
            keep_freed_memory()
        _policies[device.type] = policy_from_environment(device)
    return _policies[device.type]


@contextlib.contextmanager
def use_policy(policy: Policy) -> Iterator[Policy]:
    """Run the block with ``policy`` deciding on every device (tests, ``info --compute``, benchmarks)."""
    _forced.append(policy)
    try:
        yield policy
    finally:
        _forced.pop()
