"""A language-model corpus larger than memory: the memory each text corpus loader holds for it.

Writes (once) one .txt file of about ``--megabytes`` MB of random words, 12 per line, then, each in its own
process, builds the language-model splits of the folder with ``text_corpus`` (every byte read into memory) and
with ``hf_text_corpus`` (a memory-mapped ``datasets`` table; one int64 per line held) and reads 1,000 training
windows spread over it. It prints each loader's anonymous memory (RssAnon: what the process itself holds;
mapped file pages are the kernel's page cache, given back under pressure) and its peak, above what the
imports take, and the file pages mapped. A report, not a test: it always exits 0.

    python benchmarks/corpus_memory.py --megabytes 300 --folder /tmp/corpus
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path


def write(folder: Path, megabytes: int) -> None:
    """The corpus file, unless the folder already holds one of this size."""
    path = folder / "corpus.txt"
    if path.is_file() and abs(path.stat().st_size / 1e6 - megabytes) < 1:
        return
    folder.mkdir(parents=True, exist_ok=True)
    generator = random.Random(0)
    words = ["".join(generator.choices("abcdefghijklmnopqrstuvwxyz", k=generator.randint(2, 9))) for _ in range(5000)]
    block = "".join(" ".join(generator.choices(words, k=12)) + "\n" for _ in range(20000)).encode()
    with path.open("wb") as file:
        for _ in range(max(1, megabytes * 10**6 // len(block))):
            file.write(block)


def memory() -> dict[str, int]:
    """RssAnon, RssFile and VmHWM (peak RSS) of this process, in MB."""
    status = Path("/proc/self/status").read_text()
    return {key: int(re.search(rf"{key}:\s+(\d+)", status).group(1)) // 1024 for key in ("RssAnon", "RssFile", "VmHWM")}


def measure(loader: str, folder: Path) -> None:
    """(In its own process.) Build the splits with ``loader``, read 1,000 windows; print the memory as JSON."""
    from omniperceiver import data
    from omniperceiver.data.hf import _datasets

    _datasets()  # (the imports, before the baseline)
    before, start = memory(), time.perf_counter()
    splits = getattr(data, loader)(folder, length=256)
    for i in range(0, len(splits.train), max(1, len(splits.train) // 1000)):
        splits.train[i]
    after = memory()
    seconds = time.perf_counter() - start
    print(json.dumps({"before": before, "after": after, "seconds": seconds, "bytes": len(splits.train.data)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=300, help="the corpus size (default 300)")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/corpus"), help="where the corpus is written")
    parser.add_argument("--measure", choices=["text_corpus", "hf_text_corpus"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure, args.folder)
        return
    write(args.folder, args.megabytes)
    size = (args.folder / "corpus.txt").stat().st_size
    print(f"corpus: {size / 1e6:,.0f} MB, {size // 131:,} lines or so\n")
    print("| loader | seconds | RssAnon MB held | RssAnon peak MB (VmHWM rise) | file pages mapped MB |")
    print("|---|---:|---:|---:|---:|")
    for loader in ("text_corpus", "hf_text_corpus"):
        command = [sys.executable, __file__, "--folder", str(args.folder), "--measure", loader]
        run = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        before, after = run["before"], run["after"]
        held, peak = after["RssAnon"] - before["RssAnon"], after["VmHWM"] - before["VmHWM"]
        mapped = after["RssFile"] - before["RssFile"]
        print(f"| {loader} | {run['seconds']:.1f} | {held} | {peak} | {mapped} |")


if __name__ == "__main__":
    main()
