"""Speech read three ways (`input.representation`): raw samples in patches, log-mel frames, MFCCs; and the
noisy spoken digits."""

import wave

import pytest
import scipy.fft
import torch
from helpers import needs_espeak_ng

from omniperceiver import data
from omniperceiver.train.inputs import SPEECH_HOP, SPEECH_RATE, SPEECH_REPRESENTATIONS, SpeechInput


@pytest.fixture
def clips():
    """Two clips (B=2, S=1000) of noise at different loudness, the second 700 samples long."""
    waves = torch.randn(2, 1000, generator=torch.Generator().manual_seed(0)) * torch.tensor([[0.5], [0.01]])
    mask = torch.arange(1000) < torch.tensor([[1000], [700]])
    return waves * mask, mask


def test_samples_are_patches_in_order_at_unit_loudness_with_a_mask_per_patch(clips):
    waves, mask = clips
    x, patches = SpeechInput(representation="samples", samples_per_patch=8).unpack((waves, mask))
    assert x.shape == (2, 125, 8) and patches.shape == (2, 125)
    assert patches.sum(1).tolist() == [125, 88]  # 700 samples: 87 whole patches and one begun
    for clip in range(2):
        real = waves[clip][mask[clip]]
        flat = x[clip].flatten()[: len(real)]
        assert torch.allclose(flat * real.square().mean().sqrt(), real, atol=1e-6)  # the waveform, scaled
        assert torch.allclose(flat.square().mean(), torch.tensor(1.0))  # unit RMS over the real samples
    x, patches = SpeechInput(representation="samples", samples_per_patch=3).unpack((waves, mask))
    assert x.shape == (2, 334, 3) and patches.sum(1).tolist() == [334, 234]  # zero-padded to whole patches


def test_mfccs_are_the_first_cepstral_coefficients_of_the_log_mel_frames(clips):
    frames, frame_mask = SpeechInput(representation="log-mel").unpack(clips)
    cepstra, same_mask = SpeechInput(representation="mfcc").unpack(clips)
    assert frames.shape == (2, 1000 // SPEECH_HOP + 1, 40) and cepstra.shape == (2, 1000 // SPEECH_HOP + 1, 13)
    assert torch.equal(frame_mask, same_mask)
    expected = torch.from_numpy(scipy.fft.dct(frames.numpy(), type=2, norm="ortho", axis=-1)[..., :13])
    assert torch.allclose(cepstra, expected, atol=1e-4)


def test_a_model_reads_each_representation_with_an_adapter_of_its_size(clips):
    for representation, channels in (("samples", 4), ("log-mel", 40), ("mfcc", 13)):
        speech = SpeechInput(representation=representation, samples_per_patch=4 if representation == "samples" else 1)
        adapter = speech.adapter(clips)
        x, mask = speech.unpack(clips)
        assert adapter.in_channels == channels and adapter.index_shape == (x.shape[1],)
        inputs, flat_mask = adapter.build()(x, mask)
        assert inputs.shape[:2] == mask.shape and torch.equal(flat_mask, mask)


def test_an_unknown_representation_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="representation='spectrum' is invalid: expected one of log-mel, mfcc, sa"):
        SpeechInput(representation="spectrum")
    with pytest.raises(ValueError, match="samples_per_patch=0"):
        SpeechInput(representation="samples", samples_per_patch=0)
    with pytest.raises(ValueError, match=r"samples_per_patch=8 is invalid: expected 1 \(patches are of raw samples"):
        SpeechInput(representation="mfcc", samples_per_patch=8)


@needs_espeak_ng
def test_noisy_digits_add_white_noise_as_loud_as_each_clip_and_only_where_it_is_real():
    clean, noisy = data.synthesized_digits(), data.synthesized_digits(snr_db=0)
    (speech, mask, labels), (mixed, same_mask, same_labels) = clean.test.tensors, noisy.test.tensors
    assert torch.equal(mask, same_mask) and torch.equal(labels, same_labels)
    noise = mixed - speech
    assert (noise[~mask] == 0).all()
    lengths = mask.sum(1)
    ratio = noise.square().sum(1) / speech.square().sum(1)  # noise power over speech power, per clip
    assert ((ratio > 0.85) & (ratio < 1.15)).all() and lengths.min() > 2000
    assert torch.equal(mixed, data.synthesized_digits(snr_db=0).test.tensors[0])  # the same noise every time
    assert not torch.equal(mixed, data.synthesized_digits(snr_db=0, seed=1).test.tensors[0])


def test_predict_reads_a_wav_file_as_the_dataset_clip_in_each_representation(clips, tmp_path):
    waves, mask = clips
    samples = (waves[1][mask[1]] * 32767).round().short()
    with wave.open(str(tmp_path / "clip.wav"), "wb") as clip:
        clip.setnchannels(1), clip.setsampwidth(2), clip.setframerate(SPEECH_RATE)
        clip.writeframes(samples.numpy().tobytes())
    stored = (samples.float() / 32768)[None], torch.ones(1, len(samples), dtype=torch.bool)
    for representation in SPEECH_REPRESENTATIONS:
        speech = SpeechInput(representation=representation, samples_per_patch=8 if representation == "samples" else 1)
        adapter = speech.adapter(clips)
        x, real = speech.read(tmp_path / "clip.wav", adapter, {})
        expected, expected_real = speech.unpack(stored)
        assert x.shape[1] == adapter.index_shape[0] and real.sum() == expected_real.sum()  # padded to the model's
        assert torch.allclose(x[real], expected[expected_real], atol=1e-5)
