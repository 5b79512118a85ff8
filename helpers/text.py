"""Caption normalisation (and, from notebook 03 on, the vocabulary)."""

from __future__ import annotations

import string

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
    dropping them (as the seed tutorials do with ``min_word_length=2`` and
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

