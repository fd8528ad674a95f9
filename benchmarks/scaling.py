"""How a Perceiver IO classifier scales with the number of inputs M, on CPU, batch 1.

Measures, for M = side² inputs (default sides 32, 64, 128, 181, 256, 512, i.e. 1,024 to 262,144 inputs):

* the model: raw RGB pixels + 2-D Fourier features (64 bands, 261 input channels), 512 latents of 1024
  channels, 1 cross-attention head, 2 latent self-attention layers, 1000 classes: forward time under
  ``torch.inference_mode`` (eval mode) and forward+backward time (train mode, loss = logits.sum());
* the encoder's cross-attention shapes alone, q (1, 1, 512, 261) over k, v (1, 1, M, 261): the library's
  ``omniperceiver.core.attend`` (the kernel the compute policy picks; ``OMNIPERCEIVER_ATTENTION`` forces one)
  against a materialized ``softmax(q kᵀ / √d) v`` as the reference writes it, forward and
  forward+backward (q, k, v requiring grad);

and the peak memory of each. Every measurement runs in its own process: after building the model and the
inputs and a warm-up at a tiny size (to load the kernels' code), the RSS high-water mark is reset (through
/proc/self/clear_refs) and the first full-size run gives the peak, the high-water mark (VmHWM) after it minus
before it: the extra memory the computation needs (MB = MiB). The time is the median of the following runs that
did not share the CPUs (other processes used < 10% of a core, read from /proc/stat): at least ``--repeats``
of them and 1 s in all, up to 20 s of runs. On 2 cores another busy process slows the OpenMP kernels
many-fold (the CPU flash-attention backward most); times that only had such runs are marked †.

Run it with ``make bench`` (= ``python benchmarks/scaling.py``); it prints a markdown table, the log-log
slopes of the model's times between 16,384 and 262,144 inputs, and PASS/FAIL lines for the goals. It
always exits 0: it is a report, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from measure import measure, synchronized

from omniperceiver.core.attention import attend
from omniperceiver.core.kernels.policy import AttentionCall, active_policy
from omniperceiver.core.kernels.sdpa import pad_head_channels

KINDS = ("model_fwd", "model_train", "attend_fwd", "attend_train", "materialized_fwd", "materialized_train")
NUM_LATENTS, CHANNELS = 512, 261  # the cross-attention's queries and head dim (3 RGB + 2·(1 + 2·64))
MAX_MATERIALIZED_GB = 12.0
TIME_BUDGET_S = 20.0  # stop repeating a measurement after this much timed work
WORKER_TIMEOUT_S = 600


def build_model(side: int) -> torch.nn.Module:
    import omniperceiver as op

    cfg = op.PerceiverIOConfig.classifier(
        op.ArrayInputConfig(index_shape=(side, side), in_channels=3, position=op.FourierPositionConfig(num_bands=64)),
        num_classes=1000,
        num_latents=NUM_LATENTS,
        latent_channels=1024,
        num_cross_attention_heads=1,
        num_self_attends_per_block=2,
        num_blocks=1,
        num_self_attention_heads=8,
    )
    assert cfg.encoder.input_channels == CHANNELS
    return cfg.build()


def library_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The library's primitive: the kernel that the compute policy picks."""
    return attend(q, k, v)[0]


def materialized_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v


def make_step(kind: str, side: int, device: torch.device):
    """A zero-argument function that runs one measured computation of ``kind`` at ``side``² inputs."""
    train = kind.endswith("_train")
    if kind.startswith("model"):
        model = build_model(side).train(train).to(device)
        x = torch.randn(1, side, side, 3, device=device)

        def step() -> None:
            if not train:
                with torch.inference_mode():
                    model(x)
                return
            model.zero_grad(set_to_none=True)
            model(x).sum().backward()

        return step

    attention = library_attention if kind.startswith("attend") else materialized_attention
    q = torch.randn(1, 1, NUM_LATENTS, CHANNELS, device=device, requires_grad=train)
    k, v = (torch.randn(1, 1, side * side, CHANNELS, device=device, requires_grad=train) for _ in range(2))

    def step() -> None:
        if not train:
            with torch.inference_mode():
                attention(q, k, v)
            return
        for t in (q, k, v):
            t.grad = None
        attention(q, k, v).sum().backward()

    return step


def sdpa_backend(side: int, train: bool, device: torch.device) -> str:
    """The SDPA backend PyTorch picks for the cross-attention shapes (private API, so best effort)."""
    try:
        from torch.nn.attention import SDPBackend

        q = torch.zeros(1, 1, NUM_LATENTS, CHANNELS, device=device, requires_grad=train)
        k = torch.zeros(1, 1, side * side, CHANNELS, device=device, requires_grad=train)
        choice = torch._fused_sdp_choice(*pad_head_channels(q, k, k))
        kinds = ("MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")
        names = {int(getattr(SDPBackend, name).value): name for name in kinds if hasattr(SDPBackend, name)}
        return names.get(int(choice), str(choice))
    except Exception as error:
        return f"unknown ({type(error).__name__})"


def materialized_estimate_gb(kind: str, side: int) -> float:
    """Rough peak of the materialized attention: ~3 (forward) or ~6 (with backward) (512, M) float32 maps."""
    return (6 if kind.endswith("_train") else 3) * NUM_LATENTS * side * side * 4 / 2**30


def worker(kind: str, side: int, repeats: int, device: torch.device) -> dict:
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    torch.manual_seed(0)
    result = {"kind": kind, "side": side, "inputs": side * side}
    if kind.startswith("materialized") and materialized_estimate_gb(kind, side) > MAX_MATERIALIZED_GB:
        return {**result, "skipped": f"needs ~{materialized_estimate_gb(kind, side):.0f} GB"}
    synchronized(make_step(kind, 8, device), device)()  # warm-up at 64 inputs: code, thread pools, kernels
    step = synchronized(make_step(kind, side, device), device)
    result.update(measure(step, device, repeats=repeats, budget_s=TIME_BUDGET_S))
    if kind.startswith("attend"):
        train = kind.endswith("_train")
        call = AttentionCall(device.type, "fp32", train, 1, NUM_LATENTS, side * side, CHANNELS, CHANNELS, "none", False)
        result["kernel"] = kernel = active_policy(device).attention(call).name
        if kernel == "sdpa":
            result["kernel"] += f" ({sdpa_backend(side, train, device)})"
    return result


def run_worker(kind: str, side: int, repeats: int, device: str) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--side", str(side), "--repeats", str(repeats)]
    command += ["--device", device]
    failed = {"kind": kind, "side": side, "inputs": side * side}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {**failed, "skipped": f"timed out ({WORKER_TIMEOUT_S} s)"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        error = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {**failed, "skipped": f"failed: {error}"}
    return json.loads(lines[-1])


def cell(result: dict, field: str) -> str:
    """A table entry: seconds (marked † when every timed run shared the CPUs) or MB."""
    if "skipped" in result:
        return result["skipped"]
    if field == "peak_mb":
        return f"{result[field]:.0f}"
    return f"{result[field]:.3f}" + ("†" if result["contended"] else "")


def pair(result: dict) -> str:
    return result["skipped"] if "skipped" in result else f"{cell(result, 'time_s')} / {cell(result, 'peak_mb')}"


def slope(results: dict, kind: str, m1: int, m2: int) -> float | None:
    a, b = results.get((kind, m1), {}), results.get((kind, m2), {})
    if "time_s" not in a or "time_s" not in b:
        return None
    return math.log(b["time_s"] / a["time_s"]) / math.log(m2 / m1)


def report(results: dict, sizes: list[int]) -> None:
    columns = ["inputs M", "model fwd s", "model fwd MB", "model fwd+bwd s", "model fwd+bwd MB"]
    columns += [f"{a} attn {m} s / MB" for m in ("fwd", "fwd+bwd") for a in ("attend", "materialized")]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---:|" * len(columns))
    for m in sizes:
        r = {kind: results[kind, m] for kind in KINDS}
        print(
            f"| {m:,} | {cell(r['model_fwd'], 'time_s')} | {cell(r['model_fwd'], 'peak_mb')} "
            f"| {cell(r['model_train'], 'time_s')} | {cell(r['model_train'], 'peak_mb')} "
            f"| {pair(r['attend_fwd'])} | {pair(r['materialized_fwd'])} "
            f"| {pair(r['attend_train'])} | {pair(r['materialized_train'])} |"
        )
    if any(r.get("contended") for r in results.values()):
        print("\n† every timed run overlapped other processes' CPU use (> 10% of a core): unreliable")
    picked = [f"M = {r['inputs']:,} {r['kind'][7:]}: {r['kernel']}" for r in results.values() if "kernel" in r]
    print(f"\nattend's kernels (the compute policy's choice): {'; '.join(picked) or 'n/a'}")

    m1, m2 = 128**2, 512**2
    print()
    for kind, label in (("model_fwd", "forward"), ("model_train", "forward+backward")):
        s = slope(results, kind, m1, m2)
        shown = "n/a (needs sides 128 and 512)" if s is None else f"{s:.2f}"
        print(f"log-log slope of model {label} time, {m1:,} -> {m2:,} inputs: {shown}")

    def goal(ok: bool | None, text: str) -> None:
        print(f"{'N/A ' if ok is None else 'PASS' if ok else 'FAIL'}  {text}")

    print()
    for kind, label in (("model_fwd", "forward"), ("model_train", "forward+backward")):
        s = slope(results, kind, m1, m2)
        goal(None if s is None else s <= 1.1, f"model {label} time slope <= 1.1")
    big = results.get(("model_fwd", m2))
    peak = "n/a" if big is None else cell(big, "peak_mb")
    ok = None if big is None else big.get("peak_mb", math.inf) <= 2048
    goal(ok, f"model forward peak at {m2:,} inputs <= 2048 MB (measured: {peak} MB)")
    for mode in ("fwd", "train"):
        losers = []
        for m in sizes:
            ours, materialized = results[f"attend_{mode}", m], results[f"materialized_{mode}", m]
            if ours.get("skipped") == "-":  # (not asked for)
                continue
            if "skipped" in ours or (
                "skipped" not in materialized
                and not (ours["time_s"] < materialized["time_s"] and ours["peak_mb"] < materialized["peak_mb"])
            ):
                losers.append(f"{m:,}")
        label = "forward" if mode == "fwd" else "forward+backward"
        detail = f" (not at M = {', '.join(losers)})" if losers else ""
        goal(not losers, f"attend faster and smaller than materialized, {label}, every size measured{detail}")
    if not all(r.get("hwm_reset", True) for r in results.values()):
        print("note: /proc/self/clear_refs was not writable; peaks exclude what the warm-up already touched")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python benchmarks/scaling.py --sides 32,64,128 --repeats 3 "
        "--json benchmarks/results/scaling.json",
    )
    parser.add_argument("--sides", default="32,64,128,181,256,512", help="image sides; M = side² inputs")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--json", type=Path, help="also save the raw results to this file")
    parser.add_argument("--device", default="cpu", help="torch device to measure on, e.g. cuda (default: cpu)")
    parser.add_argument(
        "--kinds", default=",".join(KINDS), help=f"measurements to run (default all: {','.join(KINDS)})"
    )
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.side, args.repeats, torch.device(args.device))))
        return

    sides = [int(s) for s in args.sides.split(",")]
    kinds = args.kinds.split(",")
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"--kinds: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(KINDS)}")
    threads, isa = len(os.sched_getaffinity(0)), torch.backends.cpu.get_cpu_capability()
    print(f"torch {torch.__version__}, {threads} threads, {isa}", file=sys.stderr)
    results = {}
    for side in sides:
        for kind in KINDS:
            if kind not in kinds:
                results[kind, side * side] = {"kind": kind, "side": side, "inputs": side * side, "skipped": "-"}
                continue
            start = time.perf_counter()
            results[kind, side * side] = r = run_worker(kind, side, args.repeats, args.device)
            status = r.get("skipped") or f"{cell(r, 'time_s')} s, {cell(r, 'peak_mb')} MB"
            print(
                f"M={side * side:>7,} {kind:<18} {status}  [{time.perf_counter() - start:.0f} s]",
                file=sys.stderr,
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(list(results.values()), indent=1))
    report(results, [side * side for side in sides])


if __name__ == "__main__":
    main()
