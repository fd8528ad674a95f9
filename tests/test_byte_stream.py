"""Honest language-model numbers: contiguous held-out parts of every source, training windows that start anew
each epoch, held-out windows that score every byte exactly once (equal to a by-hand computation on a tiny
model), and the unigram and conditional-compression baselines."""

import math
import os

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("lightning")
from torch.utils.data import DataLoader

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.core.ar import ARConfig
from omniperceiver.data import text_corpus
from omniperceiver.data.byte_stream import ByteWindows, byte_stream_splits
from omniperceiver.models.perceiver_ar import PerceiverARConfig
from omniperceiver.train.catalog import get_task
from omniperceiver.train.loaders import EpochSampler
from omniperceiver.train.sections import TrainingSettings
from omniperceiver.train.tasks.language import compression_bits_per_byte, unigram_bits_per_byte

TEXT = b"It was the best of times, it was the worst of times,\nit was the age of wisdom...\n" * 5


def _targets(windows: ByteWindows) -> list[int]:
    """The scored ids of every window, in order."""
    return [i for ids, _, scored in (windows[k] for k in range(len(windows))) for i in ids[scored > 0].tolist()]


@pytest.mark.parametrize(("length", "stride"), [(16, 16), (16, 5), (7, 1), (40, 12)])
def test_held_out_windows_score_every_byte_once_with_the_longest_context(length, stride):
    windows = ByteWindows(TEXT, length, stride=stride)
    assert _targets(windows) == [b + ByteTokenizer.OFFSET for b in TEXT]
    for k in range(len(windows)):
        _, mask, scored = windows[k]
        end = min(1 + (k + 1) * stride, len(TEXT) + 1)  # the window ends at its last target
        assert int(mask.sum()) == min(length + 1, end)  # all the context there is, up to L inputs
        assert scored.nonzero()[-1].item() == int(mask.sum()) - 1
        assert not scored[~mask].any()


def test_training_windows_start_at_an_offset_drawn_per_epoch():
    windows = ByteWindows(TEXT, 16, seed=3)
    stream = windows.ids(0, len(TEXT) + 1)  # [CLS] and every byte
    offsets = []
    for epoch in range(6):
        windows.set_epoch(epoch)
        first = windows[0][0]
        offsets.append(windows.offset)
        assert torch.equal(first, stream[windows.offset : windows.offset + 17])
        assert torch.equal(windows[1][0], stream[windows.offset + 16 : windows.offset + 33])
        assert all(windows[k][1].all() for k in range(len(windows)))  # never past the stream's end
    assert len(set(offsets)) > 1 and all(0 <= o < 16 for o in offsets)
    windows.set_epoch(4)
    assert windows.offset == offsets[4]  # the same epoch, the same windows (resumable)


def test_every_source_keeps_a_contiguous_held_out_tail():
    first, second = bytes(range(65, 91)) * 40, bytes(range(97, 123)) * 20  # no newlines: cuts at 90% and 95%
    splits = byte_stream_splits([first, second], "two", "two sources", length=8)
    a, b = (round(len(first) * f) for f in (0.9, 0.95))
    c, d = (round(len(second) * f) for f in (0.9, 0.95))
    assert splits.train.data == first[:a] + second[:c]
    assert splits.validation.data == first[a:b] + second[c:d]
    assert splits.test.data == first[b:] + second[d:]
    lines = b"".join(b"line %d\n" % i for i in range(300))
    parts = byte_stream_splits([lines], "lines", "lines", length=8)
    assert parts.train.data + parts.validation.data + parts.test.data == lines
    assert all(p.data.endswith(b"\n") for p in (parts.train, parts.validation, parts.test))  # whole lines


def test_sliding_evaluation_equals_a_by_hand_computation():
    torch.manual_seed(0)
    config = PerceiverARConfig(ByteTokenizer.vocab_size, 12, ARConfig(channels=16, num_latents=4, num_heads=2))
    model = config.build().eval()
    task = get_task("fortunes-lm")
    splits = byte_stream_splits([TEXT.replace(b"\n", b" ") * 2], "tiny", "tiny", length=12)
    splits = task.evaluation_splits(splits, model)
    module = task.module(model, task, TrainingSettings())
    with torch.inference_mode():
        outputs = [module.predict(b) for b in DataLoader(splits.test, 5)]
        bits = torch.cat([F.cross_entropy(logits, target[:, 0], reduction="none") for logits, target in outputs])
        by_hand = []
        stream = splits.test.ids(0, len(splits.test.data) + 1)
        for t in range(1, len(stream)):  # every held-out byte, once
            k = (t - 1) // 4
            end = min(1 + (k + 1) * 4, len(stream))
            inputs = stream[max(0, end - 13) : end - 1]  # no padding at all: the window as it is
            logits = model(inputs[None])[0]  # (N, V): the bytes after the last N inputs
            by_hand.append(-F.log_softmax(logits[4 - (end - t)], -1)[stream[t]].item())
    assert len(bits) == len(splits.test.data)
    assert bits.tolist() == pytest.approx(by_hand, abs=1e-4)


def test_baselines_unigram_and_conditional_compression():
    assert unigram_bits_per_byte(b"ab" * 50, b"ab" * 10) == pytest.approx(-math.log2(51 / 356), abs=1e-9)
    train = os.urandom(20_000)
    repeated = compression_bits_per_byte(train, train[5000:9000])  # the test bytes were in training
    fresh = compression_bits_per_byte(train, os.urandom(4000))
    assert set(repeated) == {"xz -9e", "zstd -19 --long"}
    assert all(bits < 1 for bits in repeated.values())  # a match costs a few bytes (xz: random data's chunks)
    assert all(7.9 < bits < 8.3 for bits in fresh.values())  # random bytes do not compress


def test_the_training_loader_moves_the_windows_each_epoch_and_again_on_resume():
    windows = ByteWindows(TEXT, 16, seed=1)
    sampler = EpochSampler(len(windows), shuffle=True, seed=0, on_epoch=windows.set_epoch)
    starts = []
    for epoch in (0, 1, 0):
        sampler.set_epoch(epoch)
        starts.append(sorted(windows[i][0][:4].tolist() for i in sampler))  # each window's first ids
    assert starts[0] != starts[1] and starts[0] == starts[2]


def test_too_little_text_is_one_clear_error(tmp_path):
    (tmp_path / "a.txt").write_text("short text\n")
    with pytest.raises(ValueError, match=r"11 bytes are too few for windows of 256 bytes and held-out parts"):
        text_corpus(tmp_path)
