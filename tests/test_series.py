"""Series of any number of channels and any lengths, from .ts, .npz, .npy folders and CSV: padded, masked, and
learned."""

import numpy as np
import pytest
import torch

from omniperceiver import data
from omniperceiver.data.series import read_series
from omniperceiver.train import load_recipe, train

TS = """# two dimensions, unequal lengths
@problemName toy
@timeStamps false
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
1,2,3:4,5,6:up
7,8:9,10:down
1,2,3,4:5,6,7,8:up
"""


def test_every_source_gives_series_of_their_own_lengths(tmp_path):
    (tmp_path / "toy.ts").write_text(TS)
    arrays, labels = read_series(tmp_path / "toy.ts")
    assert [a.shape for a in arrays] == [(3, 2), (2, 2), (4, 2)] and labels == ["up", "down", "up"]
    assert np.array_equal(arrays[1], [[7, 9], [8, 10]])

    np.savez(tmp_path / "toy.npz", x=np.arange(24).reshape(3, 4, 2), y=np.array(["a", "b", "a"]), lengths=[4, 1, 2])
    arrays, labels = read_series(tmp_path / "toy.npz")
    assert [a.shape for a in arrays] == [(4, 2), (1, 2), (2, 2)] and labels == ["a", "b", "a"]

    for label, lengths in (("a", (5, 3)), ("b", (2,))):
        (tmp_path / "npy" / label).mkdir(parents=True)
        for i, length in enumerate(lengths):
            np.save(tmp_path / "npy" / label / f"{i}.npy", np.ones(length))
    arrays, labels = read_series(tmp_path / "npy")
    assert [a.shape for a in arrays] == [(5, 1), (3, 1), (2, 1)] and labels == ["a", "a", "b"]

    (tmp_path / "long.csv").write_text("id,x,y,label\ns1,1,2,a\ns1,3,4,a\ns2,5,6,b\ns1,7,8,a\n")
    arrays, labels = read_series(tmp_path / "long.csv")
    assert np.array_equal(arrays[0], [[1, 2], [3, 4], [7, 8]]) and arrays[1].shape == (1, 2) and labels == ["a", "b"]

    (tmp_path / "wide.csv").write_text("label,t0,t1,t2\na,1,2,3\nb,4,5,\n")
    arrays, _ = read_series(tmp_path / "wide.csv")
    assert [a.shape for a in arrays] == [(3, 1), (2, 1)]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("gap.csv", "label,t0,t1,t2\na,1,,3\n", "line 2: a shorter series leaves its last cells empty"),
        ("missing.ts", TS.replace("7,8:9,10", "7,?:9,10"), "line 10: could not convert"),
        (
            "uneven.ts",
            TS.replace("7,8:9,10", "7,8:9"),
            r"line 10: expected dimensions of one length, got lengths \[2, 1\]",
        ),
        ("flip.csv", "id,x,label\ns,1,a\ns,2,b\n", "line 3: series 's' changes its label"),
        ("nan.csv", "id,x,label\ns,nan,a\n", "line 2: NaN and infinities are refused"),
        ("toy.txt", "1,2", r"expected a \.ts, \.npz or \.csv file"),
    ],
)
def test_bad_series_name_the_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_series(tmp_path / name)


def test_series_are_padded_with_their_mask_and_keep_the_given_test_part(tmp_path):
    rows = ["id,x,y,label"]
    for i in range(40):
        rows += [f"s{i},{i},{-t},{'ab'[i % 2]}" for t in range(3 + i % 5)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("id,x,y,label\nt,1,2,b\nt,3,4,b\n")
    splits = data.series(tmp_path / "train.csv", test=tmp_path / "test.csv")
    values, mask, labels = splits.test.tensors
    assert splits.sizes() == (32, 8, 1) and values.shape == (1, 7, 2) and splits.classes == ("a", "b")
    assert torch.equal(values[0, :2], torch.tensor([[1.0, 2], [3, 4]])) and mask[0].tolist() == [True] * 2 + [False] * 5
    assert labels.tolist() == [1] and (values[~mask] == 0).all()
    (tmp_path / "three.csv").write_text("id,x,y,z,label\nt,1,2,3,a\n")
    with pytest.raises(ValueError, match=r"differ in their number of channels: \[2, 3\]"):
        data.series(tmp_path / "train.csv", test=tmp_path / "three.csv")


def test_a_multi_channel_ragged_series_dataset_learns(tmp_path):
    """JapaneseVowels (12 channels, 7-29 frames, 9 speakers; chance 0.11), tested on the archive's own 370 test
    series: 15 epochs reached 0.849, 0.857, 0.824, 0.887, 0.849 with seeds 0-4 (mean 0.853, std 0.022)."""
    pytest.importorskip("lightning")
    splits = data.japanese_vowels()
    assert splits.sizes() == (225, 45, 370) and splits.train.tensors[0].shape[1:] == (29, 12)
    metrics = train(load_recipe("japanese-vowels", ["training.epochs=15"]), tmp_path / "run", progress=False)
    assert metrics["test_accuracy"] >= 0.75, metrics  # (the mean less 4.5 std)
