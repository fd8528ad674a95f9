"""The demo's results over several training seeds: how far each task's threshold sits below its mean.

Trains every demo task (or those named by ``--only``, with the reference tasks they must beat) in full, once
per seed (``training.seed``; the data splits stay fixed), one run after another (``--jobs J``: J at a time), and
prints per task the results, their mean and sample standard deviation, mean - 3 std (mean + 3 std for errors) and the
threshold. The markdown table and the raw results (JSON) are rewritten after every seed, so an interrupted
measurement keeps what it finished. The attention kernels are the compute policy's documented default
(``OMNIPERCEIVER_CALIBRATION=off``, as in ``make test``), so that a run does not depend on a calibration's
timings.

    python benchmarks/demo_seeds.py --output-dir runs/demo-seeds                 # seeds 0-4, every task
    python benchmarks/demo_seeds.py --only fortunes shapes --set fortunes:training.epochs=12
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
from collections import defaultdict
from pathlib import Path

from omniperceiver.files import atomic_write
from omniperceiver.train.demo import DEMO, DemoResult, run_demo
from omniperceiver.train.recipe import load_recipe


def selected_tasks(only: list[str] | None) -> list:
    """The demo tasks named (all if none), with the tasks they must beat, in the demo's order."""
    names = {d.recipe for d in DEMO}
    wanted = set(only or names)
    if unknown := wanted - names:
        raise SystemExit(f"--only: unknown task(s) {sorted(unknown)}; expected some of {sorted(names)}")
    wanted |= {name for d in DEMO if d.recipe in wanted for name in d.beats}
    return [d for d in DEMO if d.recipe in wanted]


def summary_table(runs: dict[int, list[DemoResult]]) -> str:
    """Per task: the seeds it ran with, their results, mean, sample std, mean - 3 std (+ for errors), the
    threshold (with how many seeds missed it) and the baseline."""
    by_task: dict[str, dict[int, DemoResult]] = defaultdict(dict)
    for seed, results in sorted(runs.items()):
        for r in results:
            by_task[r.task][seed] = r
    lines = [
        "| task | metric | seeds | results | mean | std | mean ∓ 3 std | threshold | baseline | train time |",
        "|---|---|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for task, per_seed in by_task.items():
        values = [r.result for r in per_seed.values()]
        first = next(iter(per_seed.values()))
        mean = statistics.fmean(values)
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        bound = mean + 3 * std if first.lower_is_better else mean - 3 * std
        threshold = f"{'<=' if first.lower_is_better else '>='} {first.threshold:g}"
        failed = sum(not r.passed for r in per_seed.values())
        threshold += f" ({failed} of {len(values)} fail)" if failed else ""
        threshold += " (reference)" if first.reference else ""
        seconds = statistics.fmean(r.train_seconds for r in per_seed.values())
        lines.append(
            f"| {task} | {first.metric} | {', '.join(map(str, per_seed))} | {', '.join(f'{v:.4f}' for v in values)} "
            f"| {mean:.4f} | {std:.4f} | {bound:.4f} | {threshold} | {first.baseline:.3f} | {seconds:.0f} s |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="TASK", help="measure only these demo tasks")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="training seeds (0-4)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TASK:KEY=VALUE",
        help="a recipe override for one task (training.epochs=12), repeatable",
    )
    parser.add_argument("--output-dir", default="runs/demo-seeds", help="run folders, table.md and results.json")
    parser.add_argument("--jobs", type=int, default=1, help="tasks trained at a time, sharing the threads (1)")
    args = parser.parse_args()
    os.environ.setdefault("OMNIPERCEIVER_CALIBRATION", "off")  # read when the policy is first asked

    tasks = selected_tasks(args.only)
    extra: dict[str, list[str]] = defaultdict(list)
    for item in args.set:
        task, sep, override = item.partition(":")
        if not sep or task not in {d.recipe for d in tasks}:
            raise SystemExit(f"--set {item!r}: expected TASK:KEY=VALUE with TASK one of the measured tasks")
        extra[task].append(override)
    tasks = [dataclasses.replace(d, quick=tuple(extra[d.recipe])) for d in tasks]  # applied as quick overrides
    for d in tasks:  # a bad override: one line now, not a traceback after hours of training
        try:
            load_recipe(d.recipe, list(d.quick))
        except ValueError as error:
            raise SystemExit(f"--set {d.recipe}: {error}") from None

    output_dir = Path(args.output_dir)
    runs: dict[int, list[DemoResult]] = {}
    for seed in args.seeds:
        runs[seed] = run_demo(
            output_dir / f"seed-{seed}",
            quick=True,
            progress=False,
            overrides=[f"training.seed={seed}"],
            tasks=tasks,
            jobs=args.jobs,
        )
        for r in runs[seed]:
            print(f"seed {seed} {r.task}: {r.metric} {r.result:.4f} ({r.train_seconds:.0f} s)", flush=True)
        table = summary_table(runs)
        raw = json.dumps({s: [dataclasses.asdict(r) for r in results] for s, results in runs.items()}, indent=1)
        atomic_write(output_dir / "table.md", lambda file, text=table: file.write(text.encode()))
        atomic_write(output_dir / "results.json", lambda file, text=raw: file.write(text.encode()))
    print(table)


if __name__ == "__main__":
    main()
