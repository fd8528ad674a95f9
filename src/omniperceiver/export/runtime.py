"""Greedy generation over a Perceiver AR's exported ONNX graphs with onnxruntime and numpy alone: the loop a
plain runtime runs. It follows :func:`omniperceiver.inference.generate`'s schedule (a full pass with
``refill_latents`` latents, then one cached step per token until N latents, then a full pass again over the
last tokens that fit), so its greedy tokens are the eager model's.

A prompt shorter than ``refill_latents`` + 1 tokens is left-padded to that length with masked positions,
which the model reads as absent (the exported prefill takes at least that many)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from omniperceiver.export.exporter import METADATA


def generate_greedy(
    folder: str | os.PathLike, prompts: Sequence[Sequence[int]], max_new_tokens: int, *, eos_id: int | None = None
) -> list[list[int]]:
    """Continue each prompt (a list of ids) by up to ``max_new_tokens`` greedy tokens with the ONNX graphs in
    ``folder`` (written by ``omniperceiver export MODEL OUT --format onnx --dynamic batch,length``); a row
    ends after ``eos_id``."""
    import onnxruntime

    folder = Path(folder)
    metadata = json.loads((folder / METADATA).read_text())
    graphs, settings = metadata["graphs"], metadata["generation"]
    if metadata["format"] != "onnx" or sorted(metadata["dynamic"]) != ["batch", "length"]:
        raise ValueError(f"{folder}: generation needs ONNX graphs with a dynamic batch and length")
    sessions = {name: onnxruntime.InferenceSession(str(folder / graph["file"])) for name, graph in graphs.items()}
    state_names = [name for name in graphs.get("step", {}).get("inputs", {}) if name.startswith("past_")]
    slots, latents, refill = settings["max_seq_len"], settings["num_latents"], settings["refill_latents"]
    pad = settings["pad_id"]
    period = latents - refill + 1  # tokens per full pass
    rows = [list(prompt) for prompt in prompts]
    finished = np.zeros(len(rows), dtype=bool)
    active = ~finished
    steps: list[np.ndarray] = []
    for step in range(max_new_tokens):
        phase = step % period
        if phase == 0:
            keep = slots - (min(period, max_new_tokens - step) - 1)
            ids, mask = left_pad([row[-keep:] for row in rows], refill + 1, pad)
            logits, *state = sessions["prefill"].run(None, {"ids": ids, "mask": mask})
        else:
            feeds = {"ids": steps[-1][:, None], "mask": active[:, None], **dict(zip(state_names, state, strict=True))}
            logits, *state = sessions["step"].run(None, feeds)
        active = ~finished
        token = np.where(active, logits.argmax(-1), pad)
        steps.append(token)
        for i in np.flatnonzero(active):
            rows[i].append(int(token[i]))
        if eos_id is not None:
            finished |= token == eos_id
            if finished.all():
                break
    tokens = np.stack(steps, axis=1).tolist() if steps else [[] for _ in rows]
    return [row[: row.index(eos_id) + 1] if eos_id in row else row for row in tokens]


def left_pad(rows: list[list[int]], min_length: int, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """ids (B, L) left-padded with ``pad`` to the longest row (at least ``min_length``) and the mask (B, L)."""
    length = max(min_length, *(len(row) for row in rows))
    ids = np.full((len(rows), length), pad, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=bool)
    for i, row in enumerate(rows):
        ids[i, length - len(row) :] = row
        mask[i, length - len(row) :] = True
    return ids, mask
