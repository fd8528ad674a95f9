"""Local files through Hugging Face datasets (memory-mapped, offline), read per example like a folder."""

import numpy as np
import pytest
import torch
from PIL import Image

from omniperceiver import data
from omniperceiver.data.file_dataset import rows_of
from omniperceiver.train.loaders import SplitsData

pytest.importorskip("datasets")


def test_an_imagefolder_keeps_its_own_test_folder_and_reads_per_example(tmp_path):
    for split, count in (("train", 20), ("test", 3)):
        for label, level in (("cat", 30), ("dog", 200)):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(count):
                pixels = np.full((6, 5, 3), level + i, dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / label / f"{i}.png")
    splits = data.hf_image_folder(tmp_path)
    assert splits.sizes() == (32, 8, 6) and splits.classes == ("cat", "dog")  # 40 cut 70:15, the test folder's 6
    images, labels = rows_of(splits.test)
    assert images.shape == (6, 6, 5, 3) and torch.equal(images.mean((1, 2, 3)) > 0.5, labels == 1)
    assert sorted(round(v * 255) for v in images[:, 0, 0, 0].tolist()) == [30, 31, 32, 200, 201, 202]
    batches = [list(SplitsData(splits, 8, 0, workers).train_dataloader()) for workers in (0, 2)]
    assert all(torch.equal(a, b) for x, y in zip(*batches, strict=True) for a, b in zip(x, y, strict=True))
    Image.fromarray(np.zeros((4, 4, 3), dtype=np.uint8)).save(tmp_path / "train" / "cat" / "small.png")
    with pytest.raises(ValueError, match="differ in size"):
        data.hf_image_folder(tmp_path)
    assert rows_of(data.hf_image_folder(tmp_path, size=(4, 4)).train, 1)[0].shape == (1, 4, 4, 3)


def test_an_audiofolder_is_indexed_by_datasets_and_read_as_a_wav_folder(tmp_path):
    import wave

    generator = np.random.default_rng(0)
    for split, count in (("train", 10), ("test", 2)):
        for label in ("no", "yes"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(count):
                with wave.open(str(tmp_path / split / label / f"{i}.wav"), "wb") as clip:
                    clip.setnchannels(1), clip.setsampwidth(2), clip.setframerate(8000)
                    clip.writeframes(generator.integers(-999, 999, 50 + 10 * i, dtype=np.int16).tobytes())
    splits = data.hf_audio_folder(tmp_path, sample_rate=4000)
    assert splits.sizes() == (16, 4, 4) and splits.classes == ("no", "yes")
    by_folder = data.wav_folder(tmp_path / "train", sample_rate=4000, test=tmp_path / "test")
    assert sorted(map(str, splits.test.files)) == sorted(map(str, by_folder.test.files))
    for row in range(4):
        clip, mask, label = splits.test[row]
        twin = by_folder.test.files.index(splits.test.files[row])
        assert all(torch.equal(a, b) for a, b in zip((clip, mask, label), by_folder.test[twin], strict=True))
    (tmp_path / "train" / "no" / "broken.wav").write_text("no clip")
    with pytest.raises(ValueError, match=r"cannot read .*broken\.wav"):
        data.hf_audio_folder(tmp_path)


def test_a_table_gives_one_series_per_row_and_keeps_a_given_test_table(tmp_path):
    pandas = pytest.importorskip("pandas")
    rows = [{"t0": float(i), "t1": float(-i), "label": "ab"[i % 2]} for i in range(40)]
    pandas.DataFrame(rows).to_parquet(tmp_path / "train.parquet")
    (tmp_path / "test.csv").write_text("t0,t1,label\n1.5,2.5,b\n")
    splits = data.hf_table(tmp_path / "train.parquet", test=tmp_path / "test.csv")
    values, labels = rows_of(splits.test)
    assert splits.sizes() == (32, 8, 1) and values.tolist() == [[[1.5], [2.5]]] and labels.tolist() == [1]
    (tmp_path / "words.csv").write_text("t0,word,label\n1,x,a\n2,y,b\n")
    with pytest.raises(ValueError, match=r"columns \['word'\] are not numeric"):
        data.hf_table(tmp_path / "words.csv")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not a table")
    with pytest.raises(ValueError, match=r"cannot read .*broken.parquet: "):
        data.hf_table(tmp_path / "broken.parquet")
    with pytest.raises(FileNotFoundError, match=r"gone.csv does not exist"):
        data.hf_table(tmp_path / "train.parquet", test=tmp_path / "gone.csv")


def test_a_table_of_texts_gives_byte_ids_per_row_and_a_recipe_learns_from_it(tmp_path):
    import json

    from omniperceiver.adapters.text import ByteTokenizer
    from omniperceiver.train import load_recipe, train

    generator = np.random.default_rng(0)
    rows = [  # two "languages": words of the first or of the second half of the alphabet
        {"text": " ".join("".join(generator.choice(list("abcdefghijklm" if i % 2 else "nopqrstuvwxyz"), 4))
                          for _ in range(1 + i % 5)), "label": "ab"[i % 2]}
        for i in range(60)
    ]  # fmt: skip
    (tmp_path / "texts.jsonl").write_text("\n".join(map(json.dumps, rows)))
    (tmp_path / "test.csv").write_text("text,label\nzzz é,a\n")
    splits = data.hf_text_table(tmp_path / "texts.jsonl", test=tmp_path / "test.csv")
    ids, mask, labels = rows_of(splits.test)
    expected = ByteTokenizer().encode("zzz é")
    assert splits.sizes() == (50, 10, 1) and labels.tolist() == [0] and ids.shape == (1, 26)  # the longest: 26
    assert ids[0, : len(expected)].tolist() == expected and mask[0].sum() == len(expected) == 8
    with pytest.raises(ValueError, match=r"row \d+ of the train table has \d+ tokens, more than max_length=10"):
        data.hf_text_table(tmp_path / "texts.jsonl", max_length=10)
    with pytest.raises(ValueError, match=r"no text column 'body'; its columns: \['text'\]"):
        data.hf_text_table(tmp_path / "texts.jsonl", text_column="body")
    recipe = tmp_path / "texts.yaml"
    recipe.write_text(f"dataset: hf-text-table\ndata_path: {tmp_path / 'texts.jsonl'}\ntraining: {{epochs: 8}}\n")
    assert train(load_recipe(recipe), tmp_path / "run", progress=False)["test_accuracy"] == 1.0  # (9 texts)


def test_a_text_corpus_through_datasets_reads_the_windows_of_the_corpus_read_whole(tmp_path):
    generator = np.random.default_rng(0)
    words = ["alpha", "beta", "gamma", "délta", "epsilon"]
    lines = [" ".join(generator.choice(words, 1 + i % 7)) + "\n" for i in range(300)]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("".join(lines))
    ours, whole = data.hf_text_corpus(tmp_path / "corpus", length=32), data.text_corpus(tmp_path / "corpus", length=32)
    for part in ("train", "validation", "test"):  # one file: cut at the same line ends, read as the same windows
        mine, theirs = getattr(ours, part), getattr(whole, part)
        assert len(mine.data) == len(theirs.data) and len(mine) == len(theirs)
        assert all(torch.equal(a, b) for a, b in zip(rows_of(mine), rows_of(theirs), strict=True))
    (tmp_path / "corpus" / "b.txt").write_text("zeta eta\n" * 400)
    (tmp_path / "held-out").mkdir()
    (tmp_path / "held-out" / "c.txt").write_text("theta iota\n" * 50)
    parts = data.hf_text_corpus(tmp_path / "corpus", length=32, test=tmp_path / "held-out")
    train, validation, test = (part.data for part in (parts.train, parts.validation, parts.test))
    assert test[:] == b"theta iota\n" * 50 and len(train) + len(validation) == len("".join(lines).encode()) + 3600
    assert train[len(train) - 9 :] + validation[:] == b"zeta eta\n" * (len(validation) // 9 + 1)
    with pytest.raises(FileNotFoundError, match=r"is not a folder holding \.txt files"):
        data.hf_text_corpus(tmp_path / "nothing")
