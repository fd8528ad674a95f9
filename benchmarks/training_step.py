"""A training step of vision-perceiver-fourier and its model-FLOP utilization (MFU), eager and compiled.

One step: AdamW on cross-entropy of random 224x224 images (B, 3, 224, 224) and labels, the published model at
random weights, under bf16 autocast (``--dtype fp32``: without). Model FLOPs per step = 3 x the forward's
FLOPs at batch 1 (counted by ``torch.utils.flop_counter`` on the chunked kernel, whose forward runs every
product of the attention as materialized attention would) x the batch: recomputation is not counted as work.
MFU = model FLOPs per second over the peak: the dense matmul rate of the dtype measured in the same run
(an 8192³ product on CUDA, 2048³ on the CPU) and, with ``--peak-tflops``, a datasheet figure.

``--compile`` also times the step with the model under ``torch.compile`` (the first step, which compiles, is
reported apart). The time is the median of ``--steps`` steps after 2 warm-up steps; the memory is the
allocator's peak on CUDA. It prints a markdown table and always exits 0: it is a report, not a test.

    python benchmarks/training_step.py --device cuda --batch 64 --compile --peak-tflops 989
    python benchmarks/training_step.py --batch 2 --side 64 --steps 3      # the script itself, on a CPU
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import omniperceiver as op
from omniperceiver.core.kernels import Policy, use_policy


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_tflops(device: torch.device, dtype: torch.dtype) -> float:
    size = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    synchronize(device)
    runs = 10 if device.type == "cuda" else 3
    start = time.perf_counter()
    for _ in range(runs):
        a @ b
    synchronize(device)
    return 2 * size**3 * runs / (time.perf_counter() - start) / 1e12


def forward_flops(model: torch.nn.Module, side: int, device: torch.device) -> int:
    images = torch.randn(1, 3, side, side, device=device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    for p in parameters:  # (no grad mode: the counter's module tracker fails in it where parameters need grad)
        p.requires_grad_(False)
    with use_policy(Policy(attention_kernel="chunked")), FlopCounterMode(display=False) as counter:
        model(images)
    for p in parameters:
        p.requires_grad_(True)
    return counter.get_total_flops()


def time_steps(model, images, labels, *, steps: int, bf16: bool) -> tuple[float, float, list[float]]:
    """The first step's seconds, the median of the next ``steps`` after a second warm-up step, and all times."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=images.device.type == "cuda")
    device = images.device

    def step() -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(images).float(), labels)
        loss.backward()
        optimizer.step()
        synchronize(device)
        return time.perf_counter() - start

    times = [step() for _ in range(steps + 2)]
    return times[0], statistics.median(times[2:]), times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (default 8)")
    parser.add_argument("--side", type=int, default=224, help="image side (default 224)")
    parser.add_argument("--dtype", choices=("bf16", "fp32"), default="bf16", help="bf16 autocast or fp32")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (median; default 10)")
    parser.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    parser.add_argument("--peak-tflops", type=float, help="a datasheet peak of the dtype, for a second MFU column")
    parser.add_argument("--profile", action="store_true", help="also print the eager step's costliest operators")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = op.zoo.create("vision-perceiver-fourier").to(device).train()
    images = torch.randn(args.batch, 3, args.side, args.side, device=device)
    labels = torch.randint(0, 1000, (args.batch,), device=device)
    bf16 = args.dtype == "bf16"
    flops = 3 * forward_flops(model, args.side, device) * args.batch
    peak = matmul_tflops(device, torch.bfloat16 if bf16 else torch.float32)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}, torch {torch.__version__}; measured {args.dtype} matmul peak {peak:.0f} TFLOP/s")
    print(
        f"vision-perceiver-fourier, {args.side}x{args.side}, batch {args.batch}, {args.dtype}: "
        f"{flops / 1e12:.2f} model TFLOP per step"
    )
    print("\n| step | first step s | step s (median) | TFLOP/s | MFU of measured peak | MFU of datasheet | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    variants = [("eager", model)] + ([("torch.compile", torch.compile(model))] if args.compile else [])
    for label, runner in variants:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            first, median, _ = time_steps(runner, images, labels, steps=args.steps, bf16=bf16)
        except Exception as error:  # (a report: a failing variant is a row, not the end of the run)
            print(f"| {label} | failed: {type(error).__name__}: {str(error).splitlines()[0][:200]} |")
            continue
        rate = flops / median / 1e12
        datasheet = f"{100 * rate / args.peak_tflops:.1f}%" if args.peak_tflops else "-"
        memory = f"{torch.cuda.max_memory_allocated(device) / 2**30:.1f}" if device.type == "cuda" else "-"
        print(
            f"| {label} | {first:.3f} | {median:.4f} | {rate:.0f} | {100 * rate / peak:.1f}% | {datasheet} | {memory} |"
        )
    if args.profile:
        cuda = device.type == "cuda"
        activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
        with torch.profiler.profile(activities=activities) as profiler:
            time_steps(model, images, labels, steps=1, bf16=bf16)
        sort = "cuda_time_total" if cuda else "cpu_time_total"
        print(f"\neager, 3 steps, by {sort}:")
        print(profiler.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=60))


if __name__ == "__main__":
    main()
