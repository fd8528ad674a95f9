"""Text in four languages: Debian's fortune cookies (English, German, Spanish, Italian), as byte ids: snippets
for language identification, and the whole corpus for language modelling."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.data.byte_stream import byte_stream_splits
from omniperceiver.data.splits import Splits, stratified_split

FORTUNES = Path("/usr/share/games/fortunes")
LANGUAGES = ("english", "german", "spanish", "italian")
INSTALL = "apt-get install fortunes fortunes-min fortunes-de fortunes-es fortunes-it"
# English categories fit for a demo (some others hold crude humour)
ENGLISH = (
    "art", "computers", "cookie", "definitions", "education", "food", "fortunes", "goedel", "humorists",
    "kids", "law", "linuxcookie", "literature", "love", "magic", "medicine", "miscellaneous", "news",
    "people", "pets", "platitudes", "politics", "riddles", "science", "songs-poems", "sports", "startrek",
    "wisdom", "work", "zippy",
)  # fmt: skip


def _entries(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    text = re.sub(r".\x08", "", text)  # overstrike sequences (char, backspace) of old terminals
    return [entry.strip() for entry in text.split("\n%\n") if entry.strip()]


def _files(language: str) -> list[Path]:
    if language == "english":
        return [FORTUNES / name for name in ENGLISH if (FORTUNES / name).is_file()]
    folder = FORTUNES / {"german": "de", "spanish": "es", "italian": "it"}[language]
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix not in (".dat", ".u8"))


def fortunes(*, snippet_chars: int = 128, per_language: int = 1500, seed: int = 0) -> Splits:
    """``per_language`` fortunes of each language (fewer if a language has fewer), each cut to its first
    ``snippet_chars`` characters (entries under 32 characters are skipped): TensorDatasets of (byte ids
    (L,) as [CLS] bytes [SEP] padded with [PAD], mask (L,), language)."""
    if not (FORTUNES / "de").is_dir():
        raise FileNotFoundError(f"the fortunes corpus is not installed ({FORTUNES}): {INSTALL}")
    generator = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for label, language in enumerate(LANGUAGES):
        entries = [e[:snippet_chars] for path in _files(language) for e in _entries(path) if len(e) >= 32]
        chosen = torch.randperm(len(entries), generator=generator)[:per_language]
        texts += [entries[i] for i in chosen]
        labels += [label] * len(chosen)
    ids, mask = ByteTokenizer().batch(texts)
    description = f"fortune snippets of up to {snippet_chars} characters, {len(texts)} in {len(LANGUAGES)} languages"
    return stratified_split("fortunes", (ids, mask, torch.tensor(labels)), LANGUAGES, description, seed=seed)


def fortunes_corpus(*, length: int = 256, seed: int = 0) -> Splits:
    """The whole fortunes corpus of the four languages (every file a source, entries as the files hold them,
    "%" lines between), for language modelling: each file's first 90% for training, its next 5% for validation
    and its last 5% for test, read as :class:`~omniperceiver.data.byte_stream.ByteWindows` of ``length``
    bytes."""
    if not (FORTUNES / "de").is_dir():
        raise FileNotFoundError(f"the fortunes corpus is not installed ({FORTUNES}): {INSTALL}")
    files = [path for language in LANGUAGES for path in _files(language)]
    sources = ["".join(f"{entry}\n%\n" for entry in _entries(path)).encode("utf-8") for path in files]
    description = f"{len(files)} fortune files in {len(LANGUAGES)} languages"
    return byte_stream_splits(sources, "fortunes-lm", description, length=length, seed=seed)
