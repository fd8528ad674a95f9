"""ONNX export of the published vision and language models: export time, file size, and the exported graph
run by onnxruntime against the eager PyTorch forward (time and peak memory), each measured in its own process
on the same machine.

    python benchmarks/export.py                      # vision-perceiver-fourier and language-perceiver, batch 1
    python benchmarks/export.py --reduced            # the reduced configurations (seconds; a smoke test)

Times are medians of runs during which other processes were idle (see measure.py); memory is the peak resident
memory of the whole process (loading the weights, or creating the onnxruntime session, and running), because
onnxruntime keeps in its arena the memory its session creation used, which a run then reuses. Both run on every
core of the machine (torch's and onnxruntime's default thread counts)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from measure import measure, peak_rss_mb

MODELS = ("vision-perceiver-fourier", "language-perceiver")


def inputs(model: torch.nn.Module, batch: int) -> tuple[torch.Tensor, ...]:
    x, mask = model.config.input.example(batch, generator=torch.Generator().manual_seed(0))
    return (x, *([mask] if mask is not None else []))


def worker(kind: str, folder: Path, batch: int) -> dict:
    import omniperceiver as op

    model = op.from_pretrained(folder / "model")
    args = inputs(model, batch)
    if kind == "export":
        from omniperceiver.export import export

        (written,) = export(model, folder / "onnx", dynamic=["batch"] if batch > 1 else [])
        return {"export_s": written.seconds, "file_mb": written.bytes / 2**20, "max_difference": written.max_difference}
    if kind == "eager":
        step = torch.inference_mode()(lambda: model(*args))
    else:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / "onnx" / "model.onnx"))
        feeds = {node.name: arg.numpy() for node, arg in zip(session.get_inputs(), args, strict=True)}
        step = lambda: session.run(None, feeds)  # noqa: E731
    loading = peak_rss_mb()  # before measure() resets the high-water mark
    result = measure(step, torch.device("cpu"), repeats=3, budget_s=60)
    return {**result, "process_peak_mb": max(loading, peak_rss_mb())}


def run_worker(kind: str, folder: Path, batch: int) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--folder", str(folder), "--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def machine() -> str:
    from omniperceiver.core.kernels.calibration import gemm_gflops
    from omniperceiver.core.kernels.policy import device_kind

    cpu = torch.device("cpu")
    rates = ", ".join(f"{n} {gemm_gflops(cpu, t):.0f}" for n, t in (("fp32", torch.float32), ("bf16", torch.bfloat16)))
    return f"{device_kind(cpu)}; (256, 1024) x (1024, 1024) GEMM GFLOP/s: {rates}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--reduced", action="store_true", help="the reduced configurations")
    parser.add_argument("--worker", choices=["export", "eager", "onnxruntime"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.folder, args.batch)))
        return
    import onnxruntime

    from omniperceiver import zoo

    print(f"machine: {machine()}; torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print("| model | parameters | export | file | eager forward | onnxruntime forward | onnxruntime speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in args.models:
        with tempfile.TemporaryDirectory() as directory:
            folder = Path(directory)
            torch.manual_seed(0)
            model = zoo.create(name, reduced=args.reduced)
            model.save_pretrained(folder / "model")
            parameters = sum(p.numel() for p in model.parameters())
            del model
            exported = run_worker("export", folder, args.batch)
            eager = run_worker("eager", folder, args.batch)
            runtime = run_worker("onnxruntime", folder, args.batch)
        print(
            f"| {name}{' (reduced)' if args.reduced else ''}, batch {args.batch} | {parameters / 1e6:.1f} M | "
            f"{exported['export_s']:.1f} s | {exported['file_mb']:.0f} MiB | "
            f"{eager['time_s']:.3g} s, {eager['process_peak_mb']:,.0f} MiB | "
            f"{runtime['time_s']:.3g} s, {runtime['process_peak_mb']:,.0f} MiB | "
            f"{eager['time_s'] / runtime['time_s']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
