"""Text in four languages: Debian's fortune cookies (English, German, Spanish, Italian), as byte ids: snippets
for language identification (of each snippet, or of each byte of two joined snippets), and the whole corpus for
language modelling."""

from __future__ import annotations

import random
import re
from pathlib import Path

import torch

from omniperceiver.adapters.text import ByteTokenizer
from omniperceiver.data.byte_stream import byte_stream_splits
from omniperceiver.data.splits import Splits, select, stratified_rows, stratified_split

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


def _snippets(snippet_chars: int, per_language: int, seed: int) -> list[list[str]]:
    """Per language, ``per_language`` fortunes (fewer if it has fewer) drawn with ``seed``, each cut to its
    first ``snippet_chars`` characters (entries under 32 characters are skipped)."""
    if not (FORTUNES / "de").is_dir():
        raise FileNotFoundError(f"the fortunes corpus is not installed ({FORTUNES}): {INSTALL}")
    generator = torch.Generator().manual_seed(seed)
    snippets = []
    for language in LANGUAGES:
        entries = [e[:snippet_chars] for path in _files(language) for e in _entries(path) if len(e) >= 32]
        snippets.append([entries[i] for i in torch.randperm(len(entries), generator=generator)[:per_language]])
    return snippets


def fortunes(*, snippet_chars: int = 128, per_language: int = 1500, seed: int = 0) -> Splits:
    """``per_language`` fortunes of each language (fewer if a language has fewer), each cut to its first
    ``snippet_chars`` characters (entries under 32 characters are skipped): TensorDatasets of (byte ids
    (L,) as [CLS] bytes [SEP] padded with [PAD], mask (L,), language)."""
    texts, labels = [], []
    for label, snippets in enumerate(_snippets(snippet_chars, per_language, seed)):
        texts += snippets
        labels += [label] * len(snippets)
    ids, mask = ByteTokenizer().batch(texts)
    description = f"fortune snippets of up to {snippet_chars} characters, {len(texts)} in {len(LANGUAGES)} languages"
    return stratified_split("fortunes", (ids, mask, torch.tensor(labels)), LANGUAGES, description, seed=seed)


MIN_PART = 16  # characters of each snippet a mixed example keeps at least


def fortunes_mixed(*, snippet_chars: int = 128, per_language: int = 1500, seed: int = 0) -> Splits:
    """Language identification per byte: each example is the start of a fortune of one language (at least 16
    characters) followed by the start of a fortune of another, ``snippet_chars`` characters in all where the
    two are long enough, cut at a random character: TensorDatasets of (byte ids (L,) as [CLS] bytes [SEP]
    padded with [PAD], mask (L,), each id's language (L,), -1 for [CLS], [SEP] and [PAD]), cut 70/15/15
    stratified by the first language."""
    snippets = _snippets(snippet_chars, per_language, seed)
    rng = random.Random(seed)
    texts, languages, first = [], [], []
    for label, own in enumerate(snippets):
        for text in own:
            other = rng.choice([k for k in range(len(LANGUAGES)) if k != label])
            cut = rng.randint(MIN_PART, max(MIN_PART, min(len(text), snippet_chars - MIN_PART)))
            second = rng.choice(snippets[other])[: snippet_chars - cut]
            texts.append(text[:cut] + second)
            languages.append([label] * len(text[:cut].encode()) + [other] * len(second.encode()))
            first.append(label)
    ids, mask = ByteTokenizer().batch(texts)
    labels = torch.full_like(ids, -1)
    for row, language in enumerate(languages):
        labels[row, 1 : 1 + len(language)] = torch.tensor(language)
    dataset = torch.utils.data.TensorDataset(ids, mask, labels)
    parts = [select(dataset, rows) for rows in stratified_rows(torch.tensor(first), seed=seed)]
    description = f"{len(texts)} pairs of fortune snippets joined, {snippet_chars} characters at most, bytes labelled"
    return Splits("fortunes-mixed", *parts, classes=LANGUAGES, description=description)


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
