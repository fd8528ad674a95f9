"""Training from an image folder larger than memory: peak memory and images per second, streamed from disk.

Writes (once) a folder of ``--images`` JPEG images of ``--side``² pixels in 10 classes (smooth random patterns,
seeded), whose decoded float32 tensors take ``images x side² x 3 x 4`` bytes, and a folder of a tenth of them
(hard links). Then, each in its own process, one epoch of training (AdamW, batch 32) of the mnist recipe's model
(32 latents of 64 channels, 4x4 patches) on each image decoded and resized to 28x28 (the transform runs in the
workers):

* on the tenth and on the whole folder with 2 workers: the peak RSS of the training process and of the largest
  worker (VmHWM; the sum bounds the run's memory), to show that memory does not grow with the folder;
* on the whole folder with 0 and with 2 workers: images per second, and the share of the time spent in the
  training step (the rest waits for data).

It prints a markdown table and PASS/FAIL lines for the goals (peak under 4 GB with a folder of 40 GB or more
decoded; 10x the images within 10% of the memory; data loading not the bottleneck with 2 workers); it always
exits 0: it is a report, not a test.

    python benchmarks/streaming.py --images 67000 --side 224 --folder /tmp/streamed   # 40 GB decoded
    python benchmarks/streaming.py --images 2000 --side 64 --folder /tmp/small         # the script itself
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

CLASSES = 10
BATCH = 32
MNIST_SIDE = 28  # each image is decoded and resized to 28x28 (bilinear), which the mnist recipe reads


def generate(folder: Path, images: int, side: int) -> None:
    """``images`` JPEGs of smooth random patterns (a class's mean level, seeded noise), and a tenth of them
    hard-linked into ``folder``/tenth; nothing is written where the folder already holds these."""
    whole, tenth, done = folder / "whole", folder / "tenth", folder / "done"
    wanted = json.dumps({"images": images, "side": side})
    if done.is_file() and done.read_text() == wanted:
        return
    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(0)
    for i in tqdm(range(images), desc="writing images", unit="image"):
        label = i % CLASSES
        coarse = rng.normal(25 * label, 40, (side // 16 + 1, side // 16 + 1, 3))
        pixels = np.kron(coarse, np.ones((16, 16, 1)))[:side, :side].clip(0, 255).astype(np.uint8)
        for root, kept in ((whole, True), (tenth, i < images // 10)):
            if not kept:
                continue
            path = root / f"class{label}" / f"{i}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            if root is whole:
                Image.fromarray(pixels).save(path, quality=90)
            else:
                os.link(whole / f"class{label}" / f"{i}.jpg", path)
    done.write_text(wanted)


def high_water_mb() -> float:
    """This process's peak RSS (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def epoch(folder: Path, workers: int) -> dict:
    """One training epoch over ``folder`` with ``workers`` worker processes: images per second, the training
    step's share of the time, and the peak RSS of this process and of its largest worker."""
    from omniperceiver import data
    from omniperceiver.train import load_recipe
    from omniperceiver.train.initialize import build_model
    from omniperceiver.train.loaders import SplitsData

    overrides = ["dataset=image-folder", f"data_path={folder}", f"training.batch_size={BATCH}"]
    recipe = load_recipe("mnist", overrides)
    task, splits = recipe.task, data.image_folder(folder, size=(MNIST_SIDE, MNIST_SIDE))
    model, _ = build_model(recipe, task, splits)
    module = task.module(model, task, recipe.training)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = SplitsData(splits, BATCH, 0, workers).train_dataloader()
    waiting = stepping = 0.0
    images = 0
    start = time.perf_counter()
    batches = iter(loader)
    while True:
        before = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        ready = time.perf_counter()
        outputs, target = module.predict(batch)
        optimizer.zero_grad(set_to_none=True)
        module.loss(outputs, target).backward()
        optimizer.step()
        waiting, stepping = waiting + ready - before, stepping + time.perf_counter() - ready
        images += len(target)
    seconds = time.perf_counter() - start
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workers else 0.0
    return {
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "step_share": stepping / (stepping + waiting),
        "main_mb": high_water_mb(),
        "worker_mb": worker_mb,
    }


def run(folder: Path, workers: int) -> dict:
    command = [sys.executable, __file__, "--worker", str(folder), "--workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        raise SystemExit(f"the measurement failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="examples:\n" + __doc__.split("\n\n")[-1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--images", type=int, default=67_000, help="images in the folder (default 67,000: 40 GB decoded)"
    )
    parser.add_argument("--side", type=int, default=224, help="image side in pixels (default 224)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/omniperceiver-streaming"), help="where to write")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        torch.set_num_threads(1 if args.workers else len(os.sched_getaffinity(0)))
        print(json.dumps(epoch(args.worker, args.workers)))
        return
    generate(args.folder, args.images, args.side)
    decoded_gb = args.images * args.side**2 * 3 * 4 / 1e9
    print(
        f"{args.images:,} images of {args.side}x{args.side} ({decoded_gb:.1f} GB as float32 tensors), "
        f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores"
    )
    from omniperceiver.core.kernels.calibration import gemm_gflops
    from omniperceiver.core.kernels.policy import device_kind

    cpu = torch.device("cpu")
    rates = ", ".join(
        f"{name} {gemm_gflops(cpu, dtype):.0f}" for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    )
    print(f"machine: {device_kind(cpu)}; (256, 1024) x (1024, 1024) GEMM GFLOP/s: {rates}")
    rows = {
        ("tenth", 2): run(args.folder / "tenth", 2),
        ("whole", 2): run(args.folder / "whole", 2),
        ("whole", 0): run(args.folder / "whole", 0),
    }
    columns = ["folder", "workers", "images", "seconds", "images/s", "training step's share"]
    columns += ["RSS MB: training process", "largest worker"]
    print("\n| " + " | ".join(columns) + " |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (part, workers), r in rows.items():
        print(
            f"| {part} | {workers} | {r['images']:,} | {r['seconds']:.0f} | {r['images_per_s']:.0f} | "
            f"{100 * r['step_share']:.0f}% | {r['main_mb']:.0f} | {r['worker_mb']:.0f} |"
        )
    whole, tenth = rows["whole", 2], rows["tenth", 2]
    peak = whole["main_mb"] + 2 * whole["worker_mb"]
    growth = (whole["main_mb"] + whole["worker_mb"]) / (tenth["main_mb"] + tenth["worker_mb"])

    def goal(ok: bool, text: str) -> None:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")

    print()
    goal(
        decoded_gb >= 40 and peak < 4096,
        f"a folder of >= 40 GB decoded ({decoded_gb:.1f} GB) trains in < 4 GB "
        f"(training process + 2 workers at their peaks: {peak:.0f} MB)",
    )
    goal(growth <= 1.1, f"10x the images within 10% of the memory ({growth:.2f}x)")
    goal(
        whole["step_share"] >= 0.9,
        f"with 2 workers the training step takes >= 90% of the time "
        f"({100 * whole['step_share']:.0f}%; {whole['images_per_s'] / rows['whole', 0]['images_per_s']:.2f}x "
        "the images per second of 0 workers)",
    )


if __name__ == "__main__":
    main()
