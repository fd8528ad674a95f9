"""Subword tokenizers: a byte-level BPE round-trips any text, saves and loads, is learned from the training part
alone, and its language models report bits per byte over every held-out byte, as a byte model does."""

import random

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("tokenizers")
pytest.importorskip("lightning")
from tokenizers import normalizers
from torch.utils.data import DataLoader

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.cli import main
from omniperceiver.core.ar import ARConfig
from omniperceiver.data.bpe import BPETokenizer, load_tokenizer
from omniperceiver.data.byte_stream import byte_stream_splits
from omniperceiver.models.perceiver_ar import PerceiverARConfig
from omniperceiver.train.catalog import get_task
from omniperceiver.train.sections import TrainingSettings
from omniperceiver.train.tasks.language import BitsPerByte

WORDS = (  # English, and words of other scripts
    "the", "of", "and", "to", "in", "is", "was", "he", "for", "it", "with", "as", "his", "on", "be", "at", "by", "had",
    "are", "but", "from", "or", "have", "an", "they", "über", "straße", "große", "grüße", "niño", "año", "señor",
    "città", "perché", "più", "東京", "日本語", "😀",
)  # fmt: skip


def _corpus(words: int, seed: int = 0) -> bytes:
    rng = random.Random(seed)
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(words // 7)]
    return "\n".join(lines).encode() + b"\n"


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(_corpus(20_000), 400)


TEXTS = [
    "the straße and the città",
    "Hällo [SEP] wörld [MASK] 😀\n\ttabs\r\nand CRLF",  # special tokens' spelling is text
    "never seen: qzxj ÆØÅ ∮ ε·da 🀄\x00\x7f",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_text_to_ids_to_text_is_identical(bpe, text):
    ids = bpe.encode(text)
    assert ids[0] == bpe.CLS and ids[-1] == bpe.SEP and all(i >= bpe.OFFSET for i in ids[1:-1])
    assert bpe.decode(ids) == text
    assert bpe.decode(ids, skip_special_tokens=False) == f"[CLS]{text}[SEP]"
    assert sum(len(bpe.token_bytes(i)) for i in ids) == len(text.encode())


def test_merges_shorten_the_text_and_the_special_ids_are_the_byte_tokenizers(bpe):
    assert 300 < bpe.vocab_size <= 400 and bpe.SPECIAL == ByteTokenizer.SPECIAL  # (fewer: no more pairs)
    assert [bpe.tokenizer.id_to_token(i) for i in range(6)] == list(ByteTokenizer.SPECIAL)
    assert len(bpe.encode("the straße and the città", special_tokens=False)) < 10  # 26 bytes
    lengths = bpe.byte_lengths()
    assert lengths[:6].tolist() == [0] * 6 and (lengths[6:262] == 1).all() and lengths.max() > 3


def test_save_and_load_give_the_same_ids_and_bad_files_one_clear_error(bpe, tmp_path):
    path = bpe.save(tmp_path)
    assert path == tmp_path / "tokenizer.json"
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, BPETokenizer) and all(loaded.encode(t) == bpe.encode(t) for t in TEXTS)
    assert type(load_tokenizer(tmp_path / "empty")) is ByteTokenizer  # no tokenizer.json: bytes
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "tokenizer.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=r"bad/tokenizer.json is not a tokenizer file"):
        BPETokenizer.load(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match=r"holds no tokenizer\.json"):
        BPETokenizer.load(tmp_path / "none")
    bpe.tokenizer.normalizer = normalizers.Lowercase()  # ids that no longer stand for the bytes they read
    try:
        bpe.save(tmp_path / "lowercase")
    finally:
        bpe.tokenizer.normalizer = None
    with pytest.raises(ValueError, match=r"lowercase/tokenizer.json: the tokenizer normalizes text"):
        BPETokenizer.load(tmp_path / "lowercase")


def test_learning_is_deterministic_and_rejects_text_that_is_not_utf8():
    data = _corpus(5_000, seed=1)
    assert BPETokenizer.train(data, 300).tokenizer.to_str() == BPETokenizer.train(data, 300).tokenizer.to_str()
    with pytest.raises(ValueError, match=r"byte 6 of the text is not UTF-8"):
        BPETokenizer.train(b"hello \xff there\n", 300)
    with pytest.raises(ValueError, match=r"more than 262 ids"):
        BPETokenizer.train(data, 262)


def test_held_out_bpe_windows_score_every_token_once_and_bits_per_byte_counts_bytes(bpe):
    """The sliding evaluation over BPE ids: each held-out token scored once, the bits summed and divided by the
    part's bytes (not its tokens), equal to a by-hand computation on a tiny model."""
    torch.manual_seed(0)
    splits = byte_stream_splits([_corpus(3_000, seed=2)], "tiny", "tiny", length=12)
    task = get_task("fortunes-lm")
    splits = {part: getattr(splits, part).tokenized(bpe) for part in ("train", "test")}
    test = splits["test"].with_stride(4)
    assert sum(int(test[k][2].sum()) for k in range(len(test))) == len(test.data)  # every byte, once
    scored = [i for k in range(len(test)) for i in test[k][0][test[k][2] > 0].tolist()]
    assert scored == test.stream.tolist()  # every token, once, in order
    config = PerceiverARConfig(bpe.vocab_size, 12, ARConfig(channels=16, num_latents=4, num_heads=2))
    model = config.build().eval()
    module = task.module(model, task, TrainingSettings())
    metric = BitsPerByte()
    with torch.inference_mode():
        for batch in DataLoader(test, 7):
            metric.update(*module.predict(batch))
        stream = test.ids(0, len(test.stream) + 1)
        bits = 0.0
        for t in range(1, len(stream)):  # by hand: token t after the window that scores it
            end = min(1 + ((t - 1) // 4 + 1) * 4, len(stream))
            logits = model(stream[max(0, end - 13) : end - 1][None])[0]
            bits -= F.log_softmax(logits[4 - (end - t)].double(), -1)[stream[t]].item() / torch.log(torch.tensor(2.0))
    assert float(metric.compute()) == pytest.approx(float(bits) / len(test.data), rel=1e-5)
    assert len(test.data) / len(test.stream) > 1.5  # a token stands for several bytes


def test_a_bpe_language_model_learns_its_tokenizer_from_training_text_and_keeps_it(tmp_path, capsys):
    """input.vocab_size learns a BPE from the training part alone (a word only in the held-out tail is no
    token), saves it beside the model; evaluate, generate and predict read with it."""
    for part, text in (("train", _corpus(40_000)), ("test", _corpus(3_000, seed=1) + b" zyxwvutsrq" * 200)):
        (tmp_path / part).mkdir()
        (tmp_path / part / "a.txt").write_bytes(text)
    recipe = tmp_path / "lm.yaml"
    recipe.write_text(
        f"dataset: text-corpus-lm\ndata_path: {tmp_path / 'train'}\ntest_path: {tmp_path / 'test'}\n"
        "input: {vocab_size: 500}\nmodel: {num_latents: 16, latent_channels: 32, num_layers: 1}\n"
        "training: {epochs: 2, batch_size: 16, learning_rate: 0.003}\n"
    )
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--output-dir", str(run), "--quiet"]) == 0
    trained = capsys.readouterr().out
    bits = float(trained.split("test_bits_per_byte ")[1][:6])
    assert bits < 4.0  # the random words' bytes: 4.5 bits each under a unigram model of them
    saved = load_tokenizer(run / "model")
    assert isinstance(saved, BPETokenizer) and 300 < saved.vocab_size <= 500  # (fewer: no more pairs)
    assert not any("zyxw" in saved.token_bytes(i).decode(errors="ignore") for i in range(saved.vocab_size))
    assert main(["evaluate", str(run), "--quiet"]) == 0
    assert f"test_bits_per_byte {bits:.4f}" in capsys.readouterr().out
    assert main(["generate", str(run), "--prompt", "the straße", "--temperature", "0", "--max-new-tokens", "8"]) == 0
    generated = capsys.readouterr().out
    assert generated.startswith("the straße") and len(generated) > len("the straße\n")
    (tmp_path / "prompt.txt").write_text("über the")
    assert main(["predict", str(run), str(tmp_path / "prompt.txt")]) == 0
    assert "'über the' -> " in capsys.readouterr().out


def test_the_tokenizer_command_learns_from_files_and_folders(tmp_path, capsys):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_bytes(_corpus(3_000))
    (tmp_path / "b.md").write_bytes(_corpus(3_000, seed=5))
    output = tmp_path / "tok"
    learn = ["tokenizer", "--vocab-size", "300", "--output", str(output)]
    assert main([*learn, str(tmp_path / "texts"), str(tmp_path / "b.md")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{output}/tokenizer.json: a byte-level BPE of 300 ids from ") and "in 2 files" in printed
    assert load_tokenizer(output).decode(load_tokenizer(output).encode("über 😀")) == "über 😀"
    assert main([*learn, str(tmp_path / "b.md")]) == 1
    assert "tokenizer.json exists: --overwrite replaces it" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    assert main([*learn, str(tmp_path / "latin1.txt"), "--overwrite"]) == 1
    assert "latin1.txt: byte 3 is not UTF-8" in capsys.readouterr().err
