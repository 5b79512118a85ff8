"""What a training run reads: the feature cache, the captions, the splits and the
vocabulary (`Corpus`), hashed into the identity of a run, and streamed as tf.data
batches of whole captions with the features of their pictures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from helpers import cache
from helpers.text import PAD_ID, Vocabulary


@dataclasses.dataclass(frozen=True)
class Corpus:
    """What a training run reads, together: the feature cache (memory-mapped) and its
    index, the captions, the splits and the vocabulary."""

    features: np.ndarray  # (images, grid, feature_dim), one row per index["names"]
    index: dict  # the cache's index: names in row order, encoder, layer, weights
    captions: dict[str, list[str]]  # image name -> its reference captions
    splits: dict[str, list[str]]  # "train" / "dev" / "test" -> image names
    vocabulary: Vocabulary

    @classmethod
    def load(cls, out: Path, dataset, features: str = "features") -> Corpus:
        """The corpus notebooks 02 and 03 wrote under `out` for `dataset`."""
        array, index = cache.load_features(out / features)
        vocabulary = Vocabulary.load(out / "vocabulary.json")
        return cls(array, index, dataset.captions, dataset.splits, vocabulary)

    @property
    def names(self) -> list[str]:
        return self.index["names"]

    def rows(self, names: list[str]) -> np.ndarray:
        """The cache rows of these images."""
        return cache.rows_of(names, self.names)

    def table(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, tokens): the cache row of each caption's image and its padded ids."""
        names = self.splits[split]
        rows = np.repeat(self.rows(names), [len(self.captions[n]) for n in names])
        texts = [c for name in names for c in self.captions[name]]
        return rows, self.vocabulary.encode_batch(texts)

    def identity(self) -> dict:
        """Short hashes of what a run learns from: another vocabulary, other splits or
        captions, or a re-extracted cache make it another run, never a resumed one."""
        return {
            "vocabulary": fingerprint(self.vocabulary.words),
            "splits": fingerprint(self.splits),
            "captions": fingerprint(*self.table("train"), *self.table("dev")),
            "features": features_fingerprint(self.names, self.features),
        }


def fingerprint(*parts) -> str:
    """A short sha256 of arrays (by their bytes) and JSON-able values."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def features_fingerprint(names: list[str], array: np.ndarray) -> str:
    """`fingerprint` of a feature cache: its names, shape and 16 evenly spaced rows
    (hashing the whole memmap would read every feature from disk)."""
    probe = np.linspace(0, len(array) - 1, num=min(16, len(array)), dtype=int)
    return fingerprint(names, list(array.shape), array[probe])


def feature_statistics(
    features: np.ndarray, rows: np.ndarray, floor: float = 1e-6, chunk: int = 256
):
    """Per-channel mean and variance (at least `floor`) over the given rows, in chunks."""
    rows = np.unique(rows)
    total = np.zeros(features.shape[-1])
    squares = np.zeros(features.shape[-1])
    for start in range(0, len(rows), chunk):
        block = np.asarray(features[rows[start : start + chunk]], np.float64)
        total += block.sum(axis=(0, 1))
        squares += (block**2).sum(axis=(0, 1))
    count = len(rows) * features.shape[1]
    mean = total / count
    return mean.astype(np.float32), np.maximum(squares / count - mean**2, floor).astype(
        np.float32
    )


def teacher_forcing(images_or_features, tokens):
    """((inputs, words so far), next words, weights): every position predicts the next.

    The weights are 0 on padding, so padding never contributes to the loss.
    """
    inputs, targets = tokens[..., :-1], tokens[..., 1:]  # (batch, [captions,] time)
    weights = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)
    return (images_or_features, inputs), targets, weights


def make_dataset(
    features: np.ndarray,
    rows: np.ndarray,
    tokens: np.ndarray,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    pack=teacher_forcing,
) -> tf.data.Dataset:
    """Batches of `pack(features, tokens)`: by default ((features, input words),
    target words, target weights), with weights 0 on padding, so padding never
    contributes to the loss. `tokens` may be anything with one row per example."""
    grid, dim = features.shape[1:]

    def gather(batch_rows):
        return np.asarray(features[batch_rows], dtype=np.float32)  # (batch, grid, dim)

    def load(batch_rows, batch_tokens):
        batch_features = tf.numpy_function(gather, [batch_rows], tf.float32)
        batch_features.set_shape((None, grid, dim))
        return pack(batch_features, batch_tokens)

    data = tf.data.Dataset.from_tensor_slices((rows, tokens))
    if shuffle:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    # No autotuning: when an epoch ends, tf.data waits for its autotuning thread to
    # finish its current sleep before the next epoch starts, a stall that grows with
    # the epoch and doubled about half of the sample's epochs on 2 cores
    # (benchmarks/epochs.py). The parallelism stays AUTOTUNE, fixed when an epoch's
    # iterator starts: the training step is no slower.
    options = tf.data.Options()
    options.autotune.enabled = False
    return (
        data.batch(batch_size)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
