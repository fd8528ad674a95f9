"""Spoken digit words synthesized by espeak-ng: waveforms from many voices, the test voices held out."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from omniperceiver.data.images import DIGITS
from omniperceiver.data.splits import Splits, pad_sequences
from omniperceiver.media.audio import resample

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
VOICES = tuple(f"{accent}+{variant}" for accent in ("en-us", "en-gb") for variant in VARIANTS)
# voices by part: the validation and test voices never speak in training
PARTS = {"train": VOICES[:16], "validation": VOICES[16:20], "test": VOICES[20:]}
SPEEDS, PITCHES = (140, 175, 210), (35, 65)
SOURCE_RATE = 22050
INSTALL = "apt-get install espeak-ng"


def _say(espeak: str, voice: str, word: str, speed: int, pitch: int, path: Path) -> np.ndarray:
    command = [espeak, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(path), word]
    subprocess.run(command, check=True, capture_output=True)
    with wave.open(str(path)) as clip:
        return np.frombuffer(clip.readframes(clip.getnframes()), dtype=np.int16)


JOBS = tuple(  # (voice, digit, speed, pitch) of every clip
    (voice, digit, speed, pitch) for voice in VOICES for digit in range(10) for speed in SPEEDS for pitch in PITCHES
)


@functools.cache
def _clips() -> tuple[np.ndarray, ...]:
    """Every clip of JOBS as int16 samples at SOURCE_RATE, synthesized once per process (about 8 s)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise FileNotFoundError(f"synthesized speech needs the espeak-ng program: {INSTALL}")
    with tempfile.TemporaryDirectory() as folder, ThreadPoolExecutor(max_workers=2) as pool:
        paths = [Path(folder) / f"{i}.wav" for i in range(len(JOBS))]
        return tuple(pool.map(lambda job, path: _say(espeak, job[0], WORDS[job[1]], *job[2:], path), JOBS, paths))


def synthesized_digits(*, sample_rate: int = 8000, snr_db: float | None = None, seed: int = 0) -> Splits:
    """Each digit word spoken by 24 espeak-ng voices at 3 speeds and 2 pitches (1,440 clips), resampled to
    ``sample_rate`` and scaled to [-1, 1]: TensorDatasets of (waveform (S,) zero-padded, mask (S,), digit).
    16 voices train, 4 validate, 4 test. ``snr_db``: white noise added to every clip's real samples at that
    signal-to-noise ratio (the clip's power over the noise's, in dB), drawn once per clip with ``seed``."""
    waves = [resample(torch.from_numpy(c.astype(np.float32) / 32768), SOURCE_RATE, sample_rate) for c in _clips()]
    if snr_db is not None:
        generator = torch.Generator().manual_seed(seed)
        waves = [w + torch.randn(len(w), generator=generator) * w.square().mean().sqrt() * 10 ** (-snr_db / 20)
                 for w in waves]  # fmt: skip
    parts = []
    for voices in PARTS.values():
        rows = [i for i, job in enumerate(JOBS) if job[0] in voices]
        audio, mask = pad_sequences([waves[i] for i in rows])
        parts.append(TensorDataset(audio, mask, torch.tensor([JOBS[i][1] for i in rows])))
    noise = "" if snr_db is None else f", white noise at {snr_db:g} dB SNR"
    description = f"digit words by {len(VOICES)} espeak-ng voices, {len(JOBS)} clips at {sample_rate} Hz{noise}"
    return Splits("synthesized-digits", *parts, classes=DIGITS, description=description)
