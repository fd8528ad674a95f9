"""Audio features computed with torch (``torch.stft``): power spectrograms, mel filterbanks, log-mel
spectrograms and MFCCs, with librosa's defaults (Slaney mel scale and area normalization, Hann window,
centred frames with zero padding, DCT-II orthonormal), batched and differentiable.

Waveforms are (..., S) float samples; features are (..., F, T) with T = 1 + S // ``hop_length`` frames.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def resample(wave: Tensor, rate: int, new_rate: int) -> Tensor:
    """A waveform (..., S) sampled at ``rate`` -> (..., S·new_rate/rate) by linear interpolation (enough for
    the downsampling of speech to 8 kHz; no anti-aliasing filter)."""
    if new_rate == rate:
        return wave
    shape = wave.shape[:-1]
    flat = wave.reshape(-1, 1, wave.shape[-1])
    return F.interpolate(flat, scale_factor=new_rate / rate, mode="linear")[:, 0].reshape(*shape, -1)


def power_spectrogram(wave: Tensor, *, n_fft: int = 2048, hop_length: int = 512) -> Tensor:
    """|STFT|² (..., n_fft // 2 + 1, T) of centred frames (zero padding), periodic Hann window."""
    shape = wave.shape[:-1]
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spectrum = torch.stft(
        wave.reshape(-1, wave.shape[-1]),
        n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spectrum.abs().pow(2).reshape(*shape, *spectrum.shape[-2:])


def _hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    linear = hz / (200 / 3)
    return torch.where(hz >= 1000, 15 + torch.log(hz.clamp(min=1e-10) / 1000) / (math.log(6.4) / 27), linear)


def _mel_to_hz(mel: Tensor) -> Tensor:
    return torch.where(mel >= 15, 1000 * torch.exp((math.log(6.4) / 27) * (mel - 15)), mel * (200 / 3))


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, *, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Triangular filters (n_mels, n_fft // 2 + 1) evenly spaced on the Slaney mel scale, each scaled to unit
    area (librosa's ``norm="slaney"``)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    frequencies = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = _mel_to_hz(
        torch.linspace(
            _hz_to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
            _hz_to_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    widths = edges.diff()
    ramps = edges[:, None] - frequencies[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = torch.clamp(torch.minimum(rising, falling), min=0)
    return (filters * (2 / (edges[2:] - edges[:-2]))[:, None]).float()


def log_mel_spectrogram(
    wave: Tensor,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    top_db: float | None = 80.0,
) -> Tensor:
    """Mel power in decibels (..., n_mels, T), floored at 1e-10 and, per example, at ``top_db`` below its
    maximum."""
    filters = mel_filterbank(sample_rate, n_fft, n_mels).to(wave.device, wave.dtype)
    mel = filters @ power_spectrogram(wave, n_fft=n_fft, hop_length=hop_length)
    decibels = 10 * torch.log10(mel.clamp(min=1e-10))
    if top_db is not None:
        peak = decibels.flatten(-2).amax(-1)[..., None, None]
        decibels = torch.maximum(decibels, peak - top_db)
    return decibels


def dct_matrix(n: int, k: int) -> Tensor:
    """The first ``k`` rows of the orthonormal DCT-II matrix (k, n)."""
    positions = torch.arange(n, dtype=torch.float64) + 0.5
    basis = torch.cos(math.pi / n * torch.arange(k, dtype=torch.float64)[:, None] * positions[None, :])
    basis *= math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return basis.float()


def mfcc(
    wave: Tensor,
    sample_rate: int,
    *,
    n_mfcc: int = 20,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
) -> Tensor:
    """Mel-frequency cepstral coefficients (..., n_mfcc, T): the DCT-II of the log-mel spectrogram."""
    log_mel = log_mel_spectrogram(wave, sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    return dct_matrix(n_mels, n_mfcc).to(log_mel.device, log_mel.dtype) @ log_mel
