"""Text in four languages: Debian's fortune cookies (English, German, Spanish, Italian) for language
identification, as byte ids."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from omniperceiver.adapters.text import ByteTokenizer
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
