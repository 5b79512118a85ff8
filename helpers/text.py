"""Caption normalisation (and, from notebook 03 on, the vocabulary)."""

from __future__ import annotations

import collections
import dataclasses
import functools
import string
from pathlib import Path

import numpy as np

from helpers.files import read_json, write_json_atomic

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_DIGITS = str.maketrans("", "", string.digits)


def normalize_caption(
    text: str,
    *,
    keep_digits: bool = False,
    min_word_length: int = 1,
    alphabetic_only: bool = False,
) -> str:
    """Lowercase, strip punctuation (and digits), collapse spaces.

    One-letter words such as "a" are kept by default: the references keep them, so
    dropping them (as the common Keras captioning tutorials do with ``min_word_length=2`` and
    ``alphabetic_only=True``) costs BLEU for no gain.
    """
    text = text.lower().translate(_PUNCTUATION)
    if not keep_digits:
        text = text.translate(_DIGITS)
    words = [
        word
        for word in text.split()
        if len(word) >= min_word_length and (word.isalpha() or not alphabetic_only)
    ]
    return " ".join(words)


def words(text: str) -> list[str]:
    """Normalised words of a caption."""
    return normalize_caption(text).split()


PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
MAX_WORDS = 100  # the longest caption a vocabulary may allow (Flickr8k's: 38 words)
SPECIAL = (PAD, START, END, UNK)  # always the first four words
PAD_ID, START_ID, END_ID, UNK_ID = range(len(SPECIAL))  # so their ids are fixed


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Words <-> ids, fitted on training captions only, saved as JSON (no pickle)."""

    words: tuple[str, ...]  # id -> word; the four special tokens come first
    max_length: int  # words per caption, without <start> and <end>
    min_count: int

    @classmethod
    def fit(
        cls, captions: list[str], min_count: int = 5, max_length_percentile: float = 100.0
    ):
        """Keep words seen at least `min_count` times; most frequent first."""
        counts = collections.Counter(
            word for caption in captions for word in words(caption)
        )
        kept = sorted(
            (w for w, n in counts.items() if n >= min_count),
            key=lambda w: (-counts[w], w),
        )
        lengths = [len(words(caption)) for caption in captions]
        # The shortest length that covers `max_length_percentile` % of the captions.
        max_length = int(
            np.percentile(lengths, max_length_percentile, method="inverted_cdf")
        )
        return cls(tuple(SPECIAL) + tuple(kept), max(1, max_length), min_count)

    @functools.cached_property
    def ids(self) -> dict[str, int]:
        return {word: index for index, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, caption: str) -> list[int]:
        """<start> word ids <end>, unknown words as <unk>, cut at `max_length` words."""
        unk = self.ids[UNK]
        body = [self.ids.get(word, unk) for word in words(caption)][: self.max_length]
        return [self.ids[START], *body, self.ids[END]]

    def encode_batch(self, captions: list[str]) -> np.ndarray:
        """(len(captions), max_length + 2) int32, padded with <pad> = 0."""
        out = np.zeros((len(captions), self.max_length + 2), np.int32)
        for row, caption in enumerate(captions):
            ids = self.encode(caption)
            out[row, : len(ids)] = ids
        return out

    def decode(self, ids) -> str:
        """Words up to the first <end>; <pad> and <start> are dropped."""
        out = []
        for index in ids:
            index = int(index)
            if index == self.ids[END]:
                break
            if index not in (self.ids[PAD], self.ids[START]):
                out.append(self.words[index])
        return " ".join(out)

    def to_json(self) -> dict:
        return {
            "words": list(self.words),
            "max_length": self.max_length,
            "min_count": self.min_count,
        }

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Vocabulary:
        if not Path(path).exists():
            raise FileNotFoundError(
                f"{path}: no vocabulary; notebook 03 (03_tokenize) writes it"
            )
        content = read_json(path)
        content = content if isinstance(content, dict) else {}
        words, length = content.get("words"), content.get("max_length")
        if not (
            isinstance(words, list)
            and all(isinstance(w, str) for w in words)
            and tuple(words[:4]) == SPECIAL
            and isinstance(content.get("min_count"), int)
        ):
            raise ValueError(f"{path}: not a vocabulary file (special tokens missing)")
        if not (isinstance(length, int) and 1 <= length <= MAX_WORDS):
            raise ValueError(f"{path}: max_length {length!r} is outside 1..{MAX_WORDS}")
        return cls(tuple(words), length, content["min_count"])


def coverage(vocabulary: Vocabulary, captions: list[str]) -> float:
    """Share of the words in `captions` that the vocabulary knows (not <unk>)."""
    all_words = [word for caption in captions for word in words(caption)]
    return sum(word in vocabulary.ids for word in all_words) / max(1, len(all_words))
