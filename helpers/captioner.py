"""What every caption decoder shares: feature standardisation, the teacher-forced
`call` over a caption, the config it is saved with (helpers/model.py and
helpers/transformer.py define the decoders, helpers/model.py lists them)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from helpers.config import Config

PACKAGE = "captioning"


class CaptionDecoder(keras.Model):
    """Shared teacher-forced loop: `call` runs `step` over every position of a caption."""

    recurrent_state = ("h", "c")  # the state entries that change from step to step

    def __init__(
        self,
        vocabulary_size: int,
        *,
        grid: int = 196,
        feature_dim: int = 512,
        embedding_dim: int = 256,
        units: int = 512,
        dropout: float = 0.5,
        feature_mean=None,
        feature_variance=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size, self.grid, self.feature_dim = (
            vocabulary_size,
            grid,
            feature_dim,
        )
        self.embedding_dim, self.units, self.dropout_rate = embedding_dim, units, dropout
        # Features are standardised per channel with statistics of the training split.
        zeros, ones = np.zeros(feature_dim), np.ones(feature_dim)
        self.feature_mean = np.asarray(
            zeros if feature_mean is None else feature_mean, np.float32
        )
        self.feature_variance = np.asarray(
            ones if feature_variance is None else feature_variance, np.float32
        )

    def normalize(self, features):
        """(batch, grid, feature_dim) standardised per channel, in the compute dtype."""
        scale = 1.0 / np.sqrt(self.feature_variance)
        normalised = (ops.cast(features, "float32") - self.feature_mean) * scale
        return ops.cast(normalised, self.compute_dtype)  # float16 under mixed precision

    def call(self, inputs, training=False):
        features, words = inputs  # (batch, grid, feature_dim), (batch, time)
        state = self.initial_state(features, training=training)
        logits, alphas = self.unroll(state, words, training=training)
        self.add_attention_penalty(alphas, words)
        return logits  # (batch, time, vocabulary)

    def unroll(self, state, words, training=False):
        """Teacher forcing from `state`: logits (batch, time, vocabulary) and attention
        weights (batch, time, grid) of `words` (batch, time)."""
        logits, alphas = [], []
        for t in range(words.shape[1]):
            step_logits, alpha, state = self.step(words[:, t], state, training=training)
            logits.append(step_logits)  # (batch, vocabulary)
            alphas.append(alpha)  # (batch, grid)
        return ops.stack(logits, axis=1), ops.stack(alphas, axis=1)

    def add_attention_penalty(self, alphas, words):
        """Subclasses may add a loss on the attention weights."""

    @classmethod
    def sized(cls, cfg: Config, **common) -> CaptionDecoder:
        """A decoder of this class with the config's sizes (`common`: the vocabulary
        and feature sizes, the feature statistics, the shared sizes)."""
        return cls(**common)

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary_size": self.vocabulary_size,
            "grid": self.grid,
            "feature_dim": self.feature_dim,
            "embedding_dim": self.embedding_dim,
            "units": self.units,
            "dropout": self.dropout_rate,
            "feature_mean": self.feature_mean.tolist(),
            "feature_variance": self.feature_variance.tolist(),
        }
