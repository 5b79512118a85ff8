"""CIDEr-D with document frequencies fixed in advance, vectorised with numpy.

pycocoevalcap's CIDEr-D (Vedantam et al., 2015) is pure Python and takes its document
frequencies from the references it is given. Self-critical training scores thousands
of sampled captions per epoch against the references of their own image, with the
document frequencies of the training references (Rennie et al., 2017), so here:

- every word is an integer and every n-gram one int64 key (base-2^15 digits);
- the references' tf-idf vectors, norms and lengths are computed once (`References`);
- a batch of captions is scored with a few sorts and lookups, no Python loop per word.

The formula is pycocoevalcap's, quirks included: idf = log(documents) -
log(max(1, df)), tf-idf clipped by the reference's, the mean over n = 1..4 of the
cosine similarities, times a Gaussian penalty (sigma 6) on the difference in length
counted in bigrams, averaged over the references and multiplied by 10. The tests
check it against pycocoevalcap to 1e-6.
"""

from __future__ import annotations

import dataclasses

import numpy as np

BASE = 2**15  # word ids are digits of the n-gram keys: 4 * 15 bits fit in an int64


@dataclasses.dataclass
class References:
    """The tf-idf vectors of some images' reference captions, flattened."""

    first: np.ndarray  # (images,) the index of each image's first reference
    count: np.ndarray  # (images,) how many references each image has
    ngrams: np.ndarray  # (distinct,) sorted keys of every n-gram in the references
    keys: np.ndarray  # (entries,) sorted reference * distinct + index in `ngrams`
    values: np.ndarray  # (entries,) tf-idf of that n-gram in that reference
    norms: np.ndarray  # (references, n)
    lengths: np.ndarray  # (references,) bigrams in each reference


def _lookup(table: np.ndarray, wanted: np.ndarray):
    """(index, found): where each wanted value is in the sorted `table`, if it is."""
    if not len(table):
        return np.zeros(wanted.shape, np.int64), np.zeros(wanted.shape, bool)
    index = np.searchsorted(table, wanted).clip(max=len(table) - 1)
    return index, table[index] == wanted


class CiderD:
    """CIDEr-D whose document frequencies come from `documents`: the reference
    captions of each image (an n-gram's frequency is the number of images with it in
    any of their references). Captions are strings of space-separated words, already
    normalised as the metric expects (`helpers.metrics.tokens`)."""

    def __init__(self, documents: list[list[str]], n: int = 4, sigma: float = 6.0):
        if not documents:
            raise ValueError("document frequencies need at least one image")
        self.n, self.sigma, self.words = n, sigma, {}
        rows, keys, _, _ = self._ngrams(self.encode([c for d in documents for c in d]))
        image = np.repeat(np.arange(len(documents)), [len(d) for d in documents])[rows]
        pairs = np.unique(np.stack([image, keys], axis=1), axis=0)  # (image, n-gram)
        self.df_keys, self.df_counts = np.unique(pairs[:, 1], return_counts=True)
        self.log_documents = np.log(float(len(documents)))

    def encode(self, captions: list[str]) -> np.ndarray:
        """(captions, longest) word ids, 0 after the end; new words get new ids."""
        split = [caption.split() for caption in captions]
        ids = np.zeros((len(split), max(map(len, split), default=0)), np.int64)
        for row, words in enumerate(split):
            for column, word in enumerate(words):
                ids[row, column] = self.words.setdefault(word, len(self.words) + 1)
        if len(self.words) >= BASE:
            raise ValueError(f"more than {BASE - 1} distinct words: n-gram keys overflow")
        return ids

    def references(self, references: list[list[str]]) -> References:
        """The references of some images, ready to score captions against."""
        count = np.array([len(refs) for refs in references])
        if not len(count) or not count.all():
            raise ValueError("every image needs at least one reference")
        ids = self.encode([ref for refs in references for ref in refs])
        rows, keys, orders, counts = self._ngrams(ids)
        tf_idf = self._tf_idf(keys, counts)
        ngrams = np.unique(keys)
        combined = rows * len(ngrams) + np.searchsorted(ngrams, keys)
        order = np.argsort(combined)
        return References(
            first=np.cumsum(count) - count,
            count=count,
            ngrams=ngrams,
            keys=combined[order],
            values=tf_idf[order],
            norms=self._norms(rows, orders, tf_idf, len(ids)),
            lengths=np.maximum((ids > 0).sum(axis=1) - 1, 0),
        )

    def score(
        self, references: References, captions: np.ndarray, images: np.ndarray
    ) -> np.ndarray:
        """CIDEr-D of each caption (word ids from `encode`, 0 after the end) against
        the references of its image (`images`: indices into `references`)."""
        captions, images = np.asarray(captions, np.int64), np.asarray(images)
        rows, keys, orders, counts = self._ngrams(captions)
        tf_idf = self._tf_idf(keys, counts)
        norms = self._norms(rows, orders, tf_idf, len(captions))  # (captions, n)
        lengths = np.maximum((captions > 0).sum(axis=1) - 1, 0)  # bigrams
        width = references.count.max()  # references per image, at most
        slot = np.arange(width)
        valid = slot < references.count[images][:, None]  # (captions, width)
        ref = np.where(valid, references.first[images][:, None] + slot, 0)
        # Each n-gram of a caption against the same n-gram in each of its references.
        ngram, known = _lookup(references.ngrams, keys)
        wanted = ref[rows] * len(references.ngrams) + ngram[:, None]  # (entries, width)
        found, matched = _lookup(references.keys, wanted)
        matched &= known[:, None] & valid[rows]
        theirs = np.where(matched, references.values[found], 0.0)
        overlap = (
            np.minimum(tf_idf[:, None], theirs) * theirs
        )  # clipped, (entries, width)
        cells = (rows[:, None] * width + slot) * self.n + orders[:, None]
        similarity = (
            np.bincount(
                cells.ravel(), overlap.ravel(), minlength=len(captions) * width * self.n
            )
            .reshape(len(captions), width, self.n)
            .astype(float)
        )  # int if all are empty
        denominator = norms[:, None, :] * references.norms[ref]  # (captions, width, n)
        similarity /= np.where(denominator > 0, denominator, 1.0)
        delta = lengths[:, None] - references.lengths[ref]
        penalty = np.exp(-(delta**2) / (2 * self.sigma**2)) * valid
        per_reference = similarity.mean(axis=2) * penalty  # (captions, width)
        return 10.0 * per_reference.sum(axis=1) / references.count[images]

    def __call__(self, references: list[list[str]], captions: list[str]) -> np.ndarray:
        """CIDEr-D of each caption against its own list of references (strings)."""
        prepared = self.references(references)
        return self.score(prepared, self.encode(captions), np.arange(len(captions)))

    def _ngrams(self, ids: np.ndarray):
        """The distinct n-grams of each row: (row, key, order - 1, count) arrays."""
        rows, keys, orders = [], [], []
        key, inside = ids, ids > 0
        for order in range(self.n):
            if order:  # extend every window by the next word
                key = key[:, :-1] * BASE + ids[:, order:]
                inside = inside[:, :-1] & (ids[:, order:] > 0)
            row, column = np.nonzero(inside)
            rows.append(row)
            keys.append(key[row, column])
            orders.append(np.full(len(row), order))
        rows, keys, orders = map(np.concatenate, (rows, keys, orders))
        # Count each distinct (row, key): sort by both, then count the runs.
        sort = np.lexsort((keys, rows))
        rows, keys, orders = rows[sort], keys[sort], orders[sort]
        start = np.flatnonzero(
            np.r_[True, (rows[1:] != rows[:-1]) | (keys[1:] != keys[:-1])]
        )[: len(rows)]
        counts = np.diff(np.r_[start, len(rows)])
        return rows[start], keys[start], orders[start], counts

    def _tf_idf(self, keys, counts) -> np.ndarray:
        """Term frequency times log(documents) - log(max(1, document frequency))."""
        at, found = _lookup(self.df_keys, keys)
        df = np.where(found, self.df_counts[at], 0)
        return counts * (self.log_documents - np.log(np.maximum(df, 1)))

    def _norms(self, rows, orders, tf_idf, count: int) -> np.ndarray:
        """(count, n) the norm of each row's tf-idf vector of each order."""
        squares = np.bincount(rows * self.n + orders, tf_idf**2, minlength=count * self.n)
        return np.sqrt(squares).reshape(count, self.n)
