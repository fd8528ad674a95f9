"""Perceiver AR generation speed: tokens per second with and without the cache, at long contexts.

A random Perceiver AR (default 512 channels, 512 latents, 8 heads, 4 latent self-attention layers, a 262-id
byte vocabulary) greedily generates ``--new-tokens`` tokens (default 128) after a random prompt that fills the
context minus those tokens, batch 1, at contexts of 4,096 and 16,384 tokens. Cached generation runs one full
forward pass over the prompt, then one cached step per token (the latent window of N latents, refilled to
N // 2, holds up to 256 new tokens, so there is no second full pass); uncached generation recomputes the full
forward pass over the context for every token. Both must produce the same tokens (checked). tok/s counts
the whole ``generate`` call, the first full pass included; times are the median of ``--repeats`` runs after
a warm-up, marked † when another process used > 10% of a core during every run (on 2 cores that slows the
kernels many-fold).

Run ``python benchmarks/generation.py`` (add ``--device cuda`` on a GPU); ``--quick`` runs a tiny model at
small contexts in seconds to test the script. It prints a markdown table and always exits 0.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from measure import synchronized, timed
from torch import Tensor

from omniperceiver.core import ARConfig
from omniperceiver.inference import generate
from omniperceiver.models import PerceiverAR, PerceiverARConfig

FULL = dict(contexts=(4096, 16384), channels=512, latents=512, layers=4, new_tokens=128)
QUICK = dict(contexts=(256, 1024), channels=64, latents=32, layers=2, new_tokens=8)


def build_model(max_seq_len: int, channels: int, latents: int, layers: int, device: torch.device) -> PerceiverAR:
    ar = ARConfig(channels=channels, num_latents=latents, num_heads=8, num_self_attention_layers=layers)
    config = PerceiverARConfig(vocab_size=262, max_seq_len=max_seq_len, ar=ar)
    return config.build().to(device).eval()


def time_generation(
    model: PerceiverAR, prompt: Tensor, new_tokens: int, use_cache: bool, device: torch.device, repeats: int
) -> tuple[float, bool, Tensor]:
    """Median seconds of greedy generation after a warm-up, whether every run was contended, the tokens."""
    tokens: list[Tensor] = []

    def step() -> None:
        tokens[:] = generate(model, prompt, new_tokens, temperature=0, use_cache=use_cache)

    run = synchronized(step, device)
    run()
    runs = [timed(run) for _ in range(repeats)]
    clean = [wall for wall, foreign in runs if foreign <= 0.05 + 0.1 * wall]
    return statistics.median(clean or [wall for wall, _ in runs]), not clean, tokens[0]


def report(rows: list[dict]) -> None:
    print("| context | new tokens | uncached tok/s | cached tok/s | speed-up | same tokens |")
    print("|---:|---:|---:|---:|---:|:---:|")
    for row in rows:
        rate = {name: row["new_tokens"] / row[f"{name}_s"] for name in ("uncached", "cached")}
        cell = {name: f"{rate[name]:,.1f}{' †' if row[f'{name}_contended'] else ''}" for name in rate}
        print(
            f"| {row['context']:,} | {row['new_tokens']} | {cell['uncached']} | {cell['cached']} | "
            f"{rate['cached'] / rate['uncached']:.1f}× | {'yes' if row['same_tokens'] else 'NO'} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model at small contexts: tests the script")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default: cpu)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median)")
    parser.add_argument("--new-tokens", type=int, help="tokens to generate (default 128; --quick 8)")
    args = parser.parse_args()
    size = QUICK if args.quick else FULL
    device = torch.device(args.device)
    torch.manual_seed(0)
    rows = []
    for context in size["contexts"]:
        model = build_model(context, size["channels"], size["latents"], size["layers"], device)
        new_tokens = args.new_tokens or size["new_tokens"]
        prompt = torch.randint(6, 262, (1, context - new_tokens), device=device)
        row: dict = {"context": context, "new_tokens": new_tokens}
        tokens = {}
        for name, use_cache in (("uncached", False), ("cached", True)):
            timing = time_generation(model, prompt, new_tokens, use_cache, device, args.repeats)
            row[f"{name}_s"], row[f"{name}_contended"], tokens[name] = timing
        rows.append({**row, "same_tokens": torch.equal(tokens["cached"], tokens["uncached"])})
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}: {size['channels']} "
        f"channels, {size['latents']} latents, {size['layers']} layers, batch 1, greedy\n"
    )
    report(rows)


if __name__ == "__main__":
    main()
