"""omniperceiver against the transformers reference, with the same weights, in the same run.

Measures, at the published sizes (random weights from a fixed seed; the speed does not depend on their values):

* vision-perceiver-fourier (PerceiverForImageClassificationFourier), images (B, 3, 224, 224), and
  language-perceiver (PerceiverForMaskedLM), 2048 random byte ids with an all-ones attention mask:
  forward at batch 1 and 8 (eval mode, ``torch.inference_mode``) and forward+backward at batch 8 (train mode,
  loss = ``output.float().sum()``), in fp32 and under ``torch.autocast(dtype=torch.bfloat16)``;
  forward+backward also for ours with activation checkpointing (``EncoderConfig.activation_checkpointing``);
* optical-flow-perceiver (PerceiverForOpticalFlow), a pair of 368x496 frames: forward at batch 1, fp32 and
  bf16 autocast (the reference takes the frames' 3x3 patches, ours the frames; ours returns the flow in
  pixels, 20x the reference's logits, which the comparisons account for);
* the machine's matmul peak: a 2048³ (CUDA: 8192³) fp32 and bf16 matmul, in GFLOP/s.

The parent process builds each reference model once (seed 0, ``attention_probs_dropout_prob=0.0`` so that
train-mode numbers compare like for like) and saves it with ``save_pretrained``; every measurement runs in its
own worker process (on CUDA, whose allocator's peak is reset per row, every row of an implementation), which
loads one implementation from that directory (transformers' ``from_pretrained`` or
``omniperceiver.from_pretrained``, which converts it) and reads every weight once so that lazily mapped weights
are resident. Per measurement (see ``measure.py``), after a warm-up at a tiny size (32x32 images, 32 bytes; the
optical flow model takes nothing but its train size, so it has none): the peak memory is that of the first
full-size run above what was in use before it, MB = MiB, forward+backward including the parameters' gradients: on
the CPU both the allocated peak (the most tensor memory live at once, from the profiler's allocation events; the
memory goal uses it) and the RSS high-water mark (which also counts freed memory that the C allocator keeps
mapped, so it depends on the allocation pattern), on CUDA the allocator's peak; the time is the median of at
least 2 further runs (``--repeats`` of them if they fit in 30 s) that did not share the CPUs (times marked † only
had runs that did).

FLOPs are counted once per model on the reference at batch 1 (``torch.utils.flop_counter``; the reference
materializes its attention, so every matmul is counted) and scaled by the batch; both columns of GFLOP/s divide
that same model FLOP count by each implementation's time (so recomputation under checkpointing is not counted
as work), and give the percentage of the matmul peak of the row's dtype.

Accuracy: every forward row saves its output; the report gives, per forward row, the largest absolute
difference of ours from the reference in fp32 (the conversion's parity) and of each implementation's bf16
output from the fp32 reference. The bf16 goal's accuracy tolerance: ours' bf16 error at most twice
(``BF16_ERROR_FACTOR``) the reference's own bf16 error on the same input.

Run it with ``python benchmarks/vs_transformers.py`` (the whole run takes long on a CPU: the reference's
forward+backward of the vision model at batch 8 alone is minutes); ``--only vision|language|flow`` runs one
model, ``--device cuda`` measures on a GPU, ``--json PATH`` saves the raw results, ``--quick`` runs small
configurations of the same models on 1 thread to test the script itself in well under a minute (all rows of
one implementation then share one process, so its peaks are not clean). It prints a markdown table, the
accuracy table and PASS/FAIL lines for the goals, and always exits 0: it is a report, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from measure import measure, synchronized

from omniperceiver import zoo
from omniperceiver.adapters.flow import frame_patches

IMPLEMENTATIONS = ("reference", "ours", "ours-checkpointed")
DTYPES = ("fp32", "bf16")
TIME_BUDGET_S = 30.0  # stop repeating a measurement after this much timed work (but after 2 runs at least)
MATMUL_BUDGET_S = 5.0
QUICK_BUDGET_S = 0.2  # --quick: this budget and 1 thread, so that it stays quick on a busy machine
WORKER_TIMEOUT_S = 3600
BF16_ERROR_FACTOR = 2.0
SPEEDUP_BF16, SPEEDUP_FLOW, MEMORY_TRAIN = 1.3, 1.5, 0.6
TINY = 32  # image side and text length of the warm-up run


@dataclasses.dataclass(frozen=True)
class Model:
    label: str
    architecture: str
    published: dict
    quick: dict
    rows: tuple[tuple[str, int], ...]  # (mode, batch), each in every dtype
    reference_scale: float = 1.0  # the reference's output times this is ours'


def _checkpoint(name: str, **arguments: object) -> tuple[str, dict]:
    """transformers' class and PerceiverConfig arguments of a published checkpoint (+ ``arguments``)."""
    model = zoo.PUBLISHED[name].transformers
    return model.architecture, {**model.arguments, **arguments}


LATENT_ROWS = (("fwd", 1), ("fwd", 8), ("train", 8))
QUICK_ENCODER = dict(
    num_latents=32, d_latents=64, num_blocks=2, num_self_attends_per_block=2, num_self_attention_heads=4
)
MODELS = {
    "vision": Model(
        "vision-perceiver-fourier",
        *_checkpoint("vision-perceiver-fourier", image_size=224),  # (unused by the model: the input size)
        dict(QUICK_ENCODER, num_cross_attention_heads=1, num_labels=10, image_size=32),
        LATENT_ROWS,
    ),
    "language": Model(
        "language-perceiver",
        *_checkpoint("language-perceiver"),
        dict(
            QUICK_ENCODER,
            num_cross_attention_heads=4,
            d_model=32,
            max_position_embeddings=128,
            qk_channels=32,
            v_channels=64,
        ),
        LATENT_ROWS,
    ),
    "flow": Model(
        "optical-flow-perceiver",
        *_checkpoint("optical-flow-perceiver"),
        dict(QUICK_ENCODER, num_blocks=1, num_cross_attention_heads=1, train_size=(24, 32)),
        (("fwd", 1),),
        reference_scale=20.0,  # transformers leaves the published flow scale factor to the caller
    ),
}


@dataclasses.dataclass(frozen=True)
class Row:
    mode: str  # "fwd" or "train"
    batch: int
    dtype: str  # "fp32" or "bf16"

    def __str__(self) -> str:
        return f"{self.mode}:{self.batch}:{self.dtype}"

    @classmethod
    def parse(cls, text: str) -> Row:
        mode, batch, dtype = text.split(":")
        return cls(mode, int(batch), dtype)


def rows_of(name: str, dtypes: tuple[str, ...] = DTYPES) -> list[Row]:
    return [Row(mode, batch, dtype) for mode, batch in MODELS[name].rows for dtype in dtypes]


def example(name: str, hf: dict, batch: int, device: torch.device, *, tiny: bool = False) -> tuple[tuple, dict]:
    """The same inputs for both implementations (seed 0): ours' arguments and the reference's keywords;
    ``tiny``: images or texts of side or length ``TINY`` (optical flow takes nothing but its train size)."""
    torch.manual_seed(0)
    if name == "vision":
        side = TINY if tiny else hf["image_size"]
        images = torch.randn(batch, 3, side, side, device=device)
        return (images,), {"inputs": images}
    if name == "language":
        ids = torch.randint(6, 262, (batch, TINY if tiny else hf["max_position_embeddings"]), device=device)
        mask = torch.ones_like(ids, dtype=torch.bool)
        return (ids, mask), {"inputs": ids, "attention_mask": mask.long()}
    h, w = hf["train_size"]
    frames = torch.randn(batch, 2, 3, h, w, device=device)
    patches = frame_patches(frames, 3).reshape(batch, h, w, 2, 27).permute(0, 3, 4, 1, 2)
    return (frames,), {"inputs": patches}


def reference_library():
    """transformers, imported where needed (ours' workers do without it), with its progress bars off."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    return transformers


def prepare(names: list[str], quick: bool, directory: Path) -> dict:
    """Build each reference model (seed 0) and save it to ``directory``/name; count its FLOPs per sample and
    mode. (A worker of its own, so that the parent does not keep the models' memory while the others measure.)"""
    from torch.utils.flop_counter import FlopCounterMode

    transformers = reference_library()
    flops: dict[str, dict[str, int]] = {}
    for name in names:
        model = MODELS[name]
        torch.manual_seed(0)
        config = transformers.PerceiverConfig(
            attention_probs_dropout_prob=0.0, **(model.quick if quick else model.published)
        )
        reference = getattr(transformers, model.architecture)(config)
        reference.save_pretrained(directory / name)
        _, inputs = example(name, json.loads((directory / name / "config.json").read_text()), 1, torch.device("cpu"))
        flops[name] = {}
        for mode in sorted({mode for mode, _ in model.rows}):
            reference.train(mode == "train")
            with FlopCounterMode(display=False) as counter:  # (its module tracker fails under no_grad)
                output = reference(**inputs).logits
                if mode == "train":
                    output.float().sum().backward()
            flops[name][mode] = counter.get_total_flops()
    return {"implementation": "prepare", "transformers": transformers.__version__, "flops": flops}


def load(implementation: str, directory: Path) -> torch.nn.Module:
    if implementation == "reference":
        architecture = json.loads((directory / "config.json").read_text())["architectures"][0]
        return getattr(reference_library(), architecture).from_pretrained(directory)
    import omniperceiver as op

    model = op.from_pretrained(directory)
    if implementation == "ours-checkpointed":
        config = model.config
        encoder = dataclasses.replace(config.encoder, activation_checkpointing=True)
        checkpointed = dataclasses.replace(config, encoder=encoder).build()
        checkpointed.load_state_dict(model.state_dict())
        model = checkpointed
    return model


def make_step(
    model: torch.nn.Module, implementation: str, row: Row, inputs: tuple[tuple, dict], device: torch.device
) -> tuple[Callable[[], None], list[torch.Tensor]]:
    """One computation of ``row`` on ``inputs`` (see :func:`example`), and the list that keeps its last output."""
    args, kwargs = inputs

    def forward() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=row.dtype == "bf16"):
            return model(**kwargs).logits if implementation == "reference" else model(*args)

    outputs: list[torch.Tensor] = []

    def step() -> None:
        if row.mode == "train":
            model.zero_grad(set_to_none=True)
            forward().float().sum().backward()
        else:
            with torch.inference_mode():
                outputs[:] = [forward()]

    return synchronized(step, device), outputs


def measure_row(
    model: torch.nn.Module,
    implementation: str,
    name: str,
    hf: dict,
    row: Row,
    *,
    device: torch.device,
    repeats: int,
    budget_s: float,
    save: Path,
) -> dict:
    model.train(row.mode == "train")
    if name != "flow":  # a warm-up at a tiny size loads the code, so that the peak is the computation's own
        make_step(model, implementation, row, example(name, hf, 1, device, tiny=True), device)[0]()
        model.zero_grad(set_to_none=True)
    step, outputs = make_step(model, implementation, row, example(name, hf, row.batch, device), device)
    result = measure(step, device, repeats=repeats, budget_s=budget_s, min_runs=2, allocated=True)
    if outputs:
        torch.save(outputs[0].float().cpu(), save / f"{implementation}-{row.batch}-{row.dtype}.pt")
    return {"implementation": implementation, "model": name, **dataclasses.asdict(row), **result}


def worker(args: argparse.Namespace, device: torch.device) -> list[dict]:
    model = load(args.worker, args.dir).to(device)
    with torch.no_grad():  # weights that are lazily mapped from the file become resident before the baseline
        for tensor in model.state_dict().values():
            tensor.sum()
    hf = json.loads((args.dir / "config.json").read_text())
    budget_s = QUICK_BUDGET_S if args.quick else TIME_BUDGET_S
    options = dict(device=device, repeats=args.repeats, budget_s=budget_s, save=args.save)
    rows = [Row.parse(row) for row in args.rows.split(",")]
    return [measure_row(model, args.worker, args.model, hf, row, **options) for row in rows]


def cpu_flags() -> str:
    """The CPU's vector, bf16 and AMX flags (what decides its bf16 GEMM rate), from /proc/cpuinfo."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "?"
    named = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    wanted = [f for f in flags.split(":")[1].split() if f in named]
    return " ".join(wanted) + ("" if "amx_bf16" in wanted else " (no AMX)")


def matmul_peak(device: torch.device, repeats: int, budget_s: float, dtypes: tuple[str, ...]) -> dict:
    """The matmul peaks (a size³ product) in ``dtypes``, the (256, 1024) x (1024, 1024) GEMM rates that name the
    machine kind, and the compute policy that serves this device (its first use here calibrates it if nothing is
    cached)."""
    from omniperceiver.core.kernels.calibration import gemm_gflops
    from omniperceiver.core.kernels.policy import active_policy

    size = 8192 if device.type == "cuda" else 2048
    result = {"implementation": "matmul", "size": size, "policy": active_policy(device).describe()}
    torch_dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    result["gemm_256"] = {name: gemm_gflops(device, dtype) for name, dtype in torch_dtypes.items()}
    result["cpu_flags"] = cpu_flags() if device.type == "cpu" else torch.cuda.get_device_name(device)
    for dtype in dtypes:
        a, b = (torch.randn(size, size, device=device, dtype=torch_dtypes[dtype]) for _ in range(2))
        timing = measure(synchronized(lambda a=a, b=b: a @ b, device), device, repeats=repeats, budget_s=budget_s)
        result[dtype] = 2 * size**3 / timing["time_s"] / 1e9
        result["contended"] = result.get("contended", False) or timing["contended"]
    return result


def run_worker(command: list[str], failed: list[dict]) -> list[dict]:
    """The worker's results, or ``failed`` with the reason (the traceback's end kept in ``error``)."""
    try:
        done = subprocess.run(
            [sys.executable, __file__, *command], capture_output=True, text=True, timeout=WORKER_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return [{**f, "skipped": f"timed out ({WORKER_TIMEOUT_S} s)"} for f in failed]
    lines = [line for line in done.stdout.splitlines() if line.startswith("[")]
    if done.returncode or not lines:
        error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return [{**f, "skipped": f"failed: {error}", "error": done.stderr[-4000:]} for f in failed]
    return json.loads(lines[-1])


def accuracy(name: str, batch: int, outputs: Path) -> dict | None:
    """Largest absolute differences between the forward rows' outputs at ``batch`` (None: some are missing)."""
    files = {(i, d): outputs / f"{i}-{batch}-{d}.pt" for i in ("reference", "ours") for d in DTYPES}
    if not all(path.exists() for path in files.values()):
        return None
    out = {key: torch.load(path) for key, path in files.items()}
    for dtype in DTYPES:
        out["reference", dtype] = out["reference", dtype] * MODELS[name].reference_scale
    reference = out["reference", "fp32"]

    def error(key: tuple[str, str]) -> float:
        return (out[key] - reference).abs().max().item()

    return {
        "model": name,
        "batch": batch,
        "max_abs_reference_fp32": reference.abs().max().item(),
        "ours_fp32": error(("ours", "fp32")),
        "reference_bf16": error(("reference", "bf16")),
        "ours_bf16": error(("ours", "bf16")),
        "ours_bf16_vs_ours_fp32": (out["ours", "bf16"] - out["ours", "fp32"]).abs().max().item(),
    }


def peak_text(peak: dict) -> str:
    if "skipped" in peak:
        return peak["skipped"]
    mark = "†" if peak["contended"] else ""
    gemm = peak["gemm_256"]
    peaks = ", ".join(f"{dtype} {peak[dtype]:.0f}" for dtype in DTYPES if dtype in peak)
    return (
        f"{peaks} GFLOP/s ({peak['size']}³ matmuls){mark}; "
        f"(256, 1024) x (1024, 1024): fp32 {gemm['fp32']:.0f}, bf16 {gemm['bf16']:.0f} GFLOP/s; {peak['cpu_flags']}"
        f"\ncompute policy: {peak['policy']}"
    )


def seconds(r: dict) -> str:
    return r["skipped"] if "skipped" in r else f"{r['time_s']:.3f}" + ("†" if r["contended"] else "")


def cpu_seconds(reference: dict, ours: dict) -> str:
    """The CPU time (user + system) of both and its ratio: steadier than wall time where page faults vary."""
    if "skipped" in reference or "skipped" in ours or not ours["cpu_s"]:
        return ""
    return f"{reference['cpu_s']:.1f} / {ours['cpu_s']:.1f} ({reference['cpu_s'] / ours['cpu_s']:.2f}x)"


def megabytes(r: dict) -> str:
    """The allocated peak, and the RSS peak where it differs (on the CPU)."""
    if "skipped" in r:
        return ""
    rss = f" / {r['peak_mb']:,.0f}" if r["peak_mb"] != r["allocated_peak_mb"] else ""
    return f"{r['allocated_peak_mb']:,.0f}{rss}"


def throughput(r: dict, flops: float, peak: dict) -> str:
    if "skipped" in r:
        return ""
    rate = flops / r["time_s"] / 1e9
    return f"{rate:.0f} ({100 * rate / peak[r['dtype']]:.0f}%)" if r["dtype"] in peak else f"{rate:.0f}"


def ratio(a: dict, b: dict, field: str) -> float | None:
    """a / b, None where either was not measured (or b is 0: a peak below the RSS resolution)."""
    return None if "skipped" in a or "skipped" in b or b[field] <= 0 else a[field] / b[field]


def memory_ratio(ours: dict, reference: dict) -> str:
    """ours / reference allocated peak, and of the RSS peaks where they differ."""
    allocated, rss = ratio(ours, reference, "allocated_peak_mb"), ratio(ours, reference, "peak_mb")
    if allocated is None:
        return ""
    differs = rss is not None and ours["peak_mb"] != ours["allocated_peak_mb"]
    return f"{allocated:.2f}" + (f" / {rss:.2f}" if differs else "")


def report(results: list[dict], flops: dict, peak: dict, accuracies: list[dict]) -> None:
    measured = {(r["implementation"], r["model"], Row(r["mode"], r["batch"], r["dtype"])): r for r in results}

    columns = ["model", "batch", "mode", "dtype", "GFLOP", "reference s", "ours s", "speed-up (ref/ours)"]
    columns += ["CPU s ref / ours"]
    columns += ["reference MB", "ours MB", "memory (ours/ref)", "reference GFLOP/s (% peak)", "ours GFLOP/s (% peak)"]
    memory_note = "MB and memory: allocated peak / RSS peak (CPU; CUDA: the allocator's peak)"
    print("| " + " | ".join(columns) + " |")
    print("|---|---:|---|---|" + "---:|" * (len(columns) - 4))
    compared: list[tuple[str, Row, str, dict, dict]] = []
    for name in flops:
        for row in rows_of(name):
            reference = measured.get(("reference", name, row))
            for implementation in IMPLEMENTATIONS[1:]:
                ours = measured.get((implementation, name, row))
                if reference is None or ours is None:
                    continue
                compared.append((name, row, implementation, reference, ours))
                work = flops[name][row.mode] * row.batch
                mode = {"fwd": "fwd", "train": "fwd+bwd"}[row.mode]
                if implementation == "ours-checkpointed":
                    mode += ", ours checkpointed"
                speed = ratio(reference, ours, "time_s")
                cells = [MODELS[name].label, str(row.batch), mode, row.dtype, f"{work / 1e9:.3g}"]
                cells += [seconds(reference), seconds(ours), "" if speed is None else f"{speed:.2f}x"]
                cells += [cpu_seconds(reference, ours)]
                cells += [megabytes(reference), megabytes(ours), memory_ratio(ours, reference)]
                cells += [throughput(reference, work, peak), throughput(ours, work, peak)]
                print("| " + " | ".join(cells) + " |")
    if any(r.get("contended") for r in [*results, peak]):
        print("\n† every timed run overlapped other processes' CPU use (> 10% of a core): unreliable")
    print(f"\n{memory_note}\nmatmul peak: {peak_text(peak)}")

    if accuracies:
        columns = ["model", "batch", "max abs reference fp32", "ours fp32 vs reference fp32"]
        columns += ["reference bf16 vs reference fp32", "ours bf16 vs reference fp32", "ours bf16 vs ours fp32"]
        print("\nLargest absolute differences of the forward outputs:\n")
        print("| " + " | ".join(columns) + " |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for a in accuracies:
            values = [a[k] for k in ("max_abs_reference_fp32", "ours_fp32", "reference_bf16", "ours_bf16")]
            values.append(a["ours_bf16_vs_ours_fp32"])
            print(f"| {MODELS[a['model']].label} | {a['batch']} | " + " | ".join(f"{v:.3g}" for v in values) + " |")

    def goal(ok: bool | None, text: str, losers: list[str]) -> None:
        detail = f" (not: {'; '.join(losers)})" if losers else ""
        print(f"{'N/A ' if ok is None else 'PASS' if ok else 'FAIL'}  {text}{detail}")

    def check(
        selected: list[tuple[str, Row, str, dict, dict]], field: str, passes: Callable[[float], bool]
    ) -> tuple[bool | None, list[str]]:
        """FAIL if a measured row fails, else N/A if a row has no ratio, else PASS; and the rows in question."""
        losers, failed, unmeasured = [], False, not selected
        for name, row, _, reference, ours in selected:
            value = ratio(reference, ours, field) if field == "time_s" else ratio(ours, reference, field)
            if value is None or not passes(value):
                failed, unmeasured = failed or value is not None, unmeasured or value is None
                shown = "no ratio" if value is None else f"{value:.2f}"
                losers.append(f"{MODELS[name].label} {row.mode} batch {row.batch} {row.dtype}: {shown}")
        return (False if failed else None if unmeasured else True), losers

    plain = [c for c in compared if c[2] == "ours"]
    print()
    ok, losers = check(plain, "time_s", lambda s: s >= 1.0)
    goal(ok, "never slower than the reference, every row (checkpointed rows aside)", losers)
    bf16 = [c for c in plain if c[1].dtype == "bf16"]
    ok, losers = check(bf16, "time_s", lambda s: s >= SPEEDUP_BF16)
    goal(ok, f"under bf16 autocast >= {SPEEDUP_BF16}x faster than the reference under the same autocast", losers)
    inaccurate = [
        f"{MODELS[a['model']].label} batch {a['batch']}"
        for a in accuracies
        if not a["ours_bf16"] <= BF16_ERROR_FACTOR * a["reference_bf16"]
    ]
    goal(
        None if not accuracies else not inaccurate,
        f"bf16 accuracy: ours' max |bf16 - fp32 reference| <= {BF16_ERROR_FACTOR}x the reference's, every forward row",
        inaccurate,
    )
    train = [c for c in plain if c[1].mode == "train"]
    ok, losers = check(train, "allocated_peak_mb", lambda m: m <= MEMORY_TRAIN)
    text = f"forward+backward allocated peak <= {MEMORY_TRAIN}x the reference's, no activation checkpointing"
    goal(ok, text, losers)
    checkpointed = [
        f"{MODELS[name].label} {row.dtype} {memory}"
        for name, row, implementation, reference, ours in compared
        if implementation == "ours-checkpointed" and (memory := memory_ratio(ours, reference))
    ]
    if checkpointed:
        print(f"      with activation checkpointing, ours/reference peak (allocated / RSS): {'; '.join(checkpointed)}")
    ok, losers = check([c for c in plain if c[0] == "flow"], "time_s", lambda s: s >= SPEEDUP_FLOW)
    goal(ok, f"optical flow forward >= {SPEEDUP_FLOW}x faster than the reference", losers)
    if not all(r.get("hwm_reset", True) for r in results):
        print("note: /proc/self/clear_refs was not writable; peaks exclude what was resident before the first run")


def measure_model(
    name: str, directory: Path, common: list[str], grouped: bool, mode: str | None, dtypes: tuple[str, ...]
) -> tuple[list[dict], list[dict]]:
    """Every row of model ``name`` (saved in ``directory``/name) in ``mode`` (None: all) and ``dtypes``, each
    implementation and row in its own worker (``grouped``: one worker per implementation), and the accuracy of the
    forward rows (where both dtypes are measured)."""
    outputs = directory / f"{name}-outputs"
    outputs.mkdir()
    rows, results = [row for row in rows_of(name, dtypes) if mode in (None, row.mode)], []
    for group in [rows] if grouped else [[row] for row in rows]:
        for implementation in IMPLEMENTATIONS:
            todo = [row for row in group if implementation != "ours-checkpointed" or row.mode == "train"]
            if not todo:
                continue
            start = time.perf_counter()
            command = ["--worker", implementation, "--model", name, "--rows", ",".join(map(str, todo))]
            command += ["--dir", str(directory / name), "--save", str(outputs), *common]
            failed = [{"implementation": implementation, "model": name, **dataclasses.asdict(row)} for row in todo]
            for r in run_worker(command, failed):
                results.append(r)
                status = r.get("skipped") or f"{seconds(r)} s, {megabytes(r)} MB"
                row = Row(r["mode"], r["batch"], r["dtype"])
                print(f"{name:<8} {implementation:<17} {row!s:<12} {status}", file=sys.stderr)
            print(f"  [{time.perf_counter() - start:.0f} s]", file=sys.stderr)
    batches = sorted({row.batch for row in rows if row.mode == "fwd"})
    accuracies = [a for batch in batches if (a := accuracy(name, batch, outputs)) is not None]
    return results, accuracies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python benchmarks/vs_transformers.py --only vision --json results/vision.json",
    )
    parser.add_argument("--only", choices=sorted(MODELS), help="measure only this model")
    parser.add_argument("--mode", choices=("fwd", "train"), help="measure only forward or only training rows")
    parser.add_argument(
        "--dtype",
        choices=DTYPES,
        help="only this dtype's rows (fp32 where bf16 GEMMs are emulated: the reference's bf16 rows take hours)",
    )
    parser.add_argument("--quick", action="store_true", help="small models, 1 thread: tests the script in seconds")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median; 2 at least)")
    parser.add_argument("--json", type=Path, help="also save the raw results to this file")
    parser.add_argument("--device", default="cpu", help="torch device to measure on, e.g. cuda (default: cpu)")
    parser.add_argument("--worker", choices=(*IMPLEMENTATIONS, "matmul", "prepare"), help=argparse.SUPPRESS)
    for hidden in ("--model", "--rows"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    for hidden in ("--dir", "--save"):
        parser.add_argument(hidden, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtypes = (args.dtype,) if args.dtype else DTYPES
    threads = 1 if args.quick else len(os.sched_getaffinity(0))
    if args.worker:
        torch.set_num_threads(threads)
        if args.worker == "prepare":
            done = [prepare(args.model.split(","), args.quick, args.dir)]
        elif args.worker == "matmul":
            budget_s = QUICK_BUDGET_S if args.quick else MATMUL_BUDGET_S
            done = [matmul_peak(device, args.repeats, budget_s, dtypes)]
        else:
            done = worker(args, device)
        print(json.dumps(done))
        return

    names = [args.only] if args.only else list(MODELS)
    common = ["--repeats", str(args.repeats), "--device", args.device] + (["--quick"] if args.quick else [])
    common += ["--dtype", args.dtype] if args.dtype else []
    results, accuracies = [], []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        command = ["--worker", "prepare", "--model", ",".join(names), "--dir", tmp, *common]
        prepared = run_worker(command, [{"implementation": "prepare"}])[0]
        status = prepared.get("skipped", "saved, FLOPs counted")
        print(f"reference models: {status} [{time.perf_counter() - start:.0f} s]", file=sys.stderr)
        peak = run_worker(["--worker", "matmul", *common], [{"implementation": "matmul"}])[0]
        print(f"matmul peak: {peak_text(peak)}", file=sys.stderr)
        for name in names if "skipped" not in prepared else []:
            # (on CUDA a worker per implementation: the allocator's peak is reset before each row's first run)
            grouped = args.quick or device.type == "cuda"
            done, accurate = measure_model(name, Path(tmp), common, grouped, args.mode, dtypes)
            results += done
            accuracies += accurate
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        raw = {"prepare": prepared, "matmul_peak": peak, "rows": results, "accuracy": accuracies}
        args.json.write_text(json.dumps(raw, indent=1))

    isa = torch.backends.cpu.get_cpu_capability()
    library = prepared.get("transformers", "?")
    print(f"torch {torch.__version__}, transformers {library}, threads: {threads}, {isa}, device: {device}")
    print("reference configs: attention_probs_dropout_prob=0.0 (train-mode rows compare like for like)\n")
    if "skipped" in prepared:
        print(f"could not prepare the reference models: {prepared['skipped']}\n{prepared.get('error', '')}")
        return
    report(results, prepared["flops"], peak, accuracies)


if __name__ == "__main__":
    main()
