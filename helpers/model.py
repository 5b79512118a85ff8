"""Caption decoders over a grid of CNN features, in Keras 3.

Every model exposes the same two methods, used by training (teacher forcing over the
whole caption) and by decoding (greedy and beam search, one step at a time):

    state = model.initial_state(features)             # features (batch, 196, 512)
    logits, alpha, state = model.step(words, state)   # words (batch,) int

`model.unroll(state, words)` runs the model over whole captions from a given state
(the LSTMs `step` by `step`, the Transformer all positions at once): self-critical
training starts it from one picture's state repeated for each sample.

- `AttentionCaptioner`: Show, Attend and Tell with soft (additive) attention, initial
  LSTM state from the mean feature, a gating scalar on the context, dropout, and the
  doubly stochastic attention penalty; wide grids can be projected to `context_dim`
  channels first.
- `MergeCaptioner`: the "merge" model of the common Keras captioning tutorials (pooled
  image through a Dense layer, added to an LSTM over the words), trained the same way,
  as the baseline.
- `TransformerCaptioner` (helpers/transformer.py): a pre-norm Transformer decoder whose
  words attend causally to each other and to the projected grid.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers, ops

from helpers.captioner import PACKAGE, CaptionDecoder
from helpers.config import Config
from helpers.text import PAD_ID
from helpers.transformer import TransformerCaptioner


@keras.saving.register_keras_serializable(package=PACKAGE)
class AttentionCaptioner(CaptionDecoder):
    """LSTM decoder with soft attention over the feature grid (Xu et al., 2015)."""

    def __init__(
        self,
        *args,
        attention_dim: int = 256,
        attention_penalty: float = 1.0,
        context_dim: int = 0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.attention_dim, self.attention_penalty = attention_dim, attention_penalty
        self.context_dim = context_dim
        units = self.units
        # Wide grids (Lite0's 1280 channels) are projected once per picture, so every
        # step's LSTM input and output layer see context_dim channels, not 1280.
        self.project_context = (
            layers.Dense(context_dim, name="context") if context_dim else None
        )
        self.embedding = layers.Embedding(
            self.vocabulary_size, self.embedding_dim, name="embedding"
        )
        self.init_h = layers.Dense(units, activation="tanh", name="init_h")
        self.init_c = layers.Dense(units, activation="tanh", name="init_c")
        self.project_features = layers.Dense(attention_dim, name="attend_features")
        self.project_hidden = layers.Dense(attention_dim, name="attend_hidden")
        self.score = layers.Dense(1, name="attend_score")
        self.gate = layers.Dense(1, activation="sigmoid", name="context_gate")
        self.cell = layers.LSTMCell(units, name="lstm")
        self.dropout = layers.Dropout(self.dropout_rate)
        self.output_layer = layers.Dense(
            self.vocabulary_size, dtype="float32", name="logits"
        )

    @classmethod
    def sized(cls, cfg: Config, **common) -> AttentionCaptioner:
        return cls(
            attention_dim=cfg.attention_dim,
            attention_penalty=cfg.attention_penalty,
            context_dim=cfg.context_dim,
            **common,
        )

    def initial_state(self, features, training=False):
        features = self.normalize(features)  # (batch, grid, feature_dim)
        if self.project_context:
            features = self.project_context(features)  # (batch, grid, context_dim)
        mean = ops.mean(features, axis=1)  # (batch, channels)
        return {
            "features": features,
            "projected": self.project_features(features),  # (batch, grid, attention_dim)
            "h": self.init_h(mean),  # (batch, units)
            "c": self.init_c(mean),  # (batch, units)
        }

    def attend(self, state):
        """Additive attention: weights over the grid and the weighted mean feature."""
        hidden = self.project_hidden(state["h"])[:, None, :]  # (batch, 1, attention_dim)
        energy = self.score(ops.tanh(state["projected"] + hidden))  # (batch, grid, 1)
        alpha = ops.softmax(energy[..., 0], axis=-1)  # (batch, grid), sums to one
        # As a batched matrix product: alpha[..., None] * features would build a
        # (batch, grid, feature_dim) tensor at every step, several times slower to train.
        context = ops.matmul(alpha[:, None, :], state["features"])[:, 0]  # (batch, dim)
        return alpha, context

    def step(self, words, state, training=False):
        alpha, context = self.attend(state)
        context = self.gate(state["h"]) * context  # gate beta_t, (batch, feature_dim)
        embedded = self.embedding(words)  # (batch, embedding_dim)
        inputs = ops.concatenate([embedded, ops.cast(context, embedded.dtype)], axis=-1)
        h, (h, c) = self.cell(inputs, [state["h"], state["c"]], training=training)
        # Deep output: the word depends on the state, the context and the previous word.
        deep = ops.concatenate([h, ops.cast(context, h.dtype), embedded], axis=-1)
        logits = self.output_layer(self.dropout(deep, training=training))  # (batch, V)
        return logits, alpha, {**state, "h": h, "c": c}

    def add_attention_penalty(self, alphas, words):
        """Doubly stochastic regularisation: spread attention over the whole grid.

        The paper's sum over cells of (1 - coverage)^2 differs from the sum of
        (steps / grid - coverage)^2 only by a constant, because each step's weights
        sum to one; the centred form logs zero for even coverage. It is divided by
        the caption length because our cross-entropy is a mean per word, where the
        paper's was a sum over the caption.
        """
        if not self.attention_penalty:
            return
        real = ops.not_equal(words, PAD_ID)  # (batch, time), False on padding
        mask = ops.cast(real, alphas.dtype)[..., None]  # (batch, time, 1)
        coverage = ops.sum(alphas * mask, axis=1)  # (batch, grid)
        steps = ops.sum(mask, axis=1)  # (batch, 1)
        spread = ops.sum((steps / self.grid - coverage) ** 2, axis=-1)  # (batch,)
        penalty = ops.mean(spread / ops.maximum(steps[:, 0], 1.0))
        self.add_loss(self.attention_penalty * ops.cast(penalty, "float32"))

    def get_config(self):
        return {
            **super().get_config(),
            "attention_dim": self.attention_dim,
            "attention_penalty": self.attention_penalty,
            "context_dim": self.context_dim,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MergeCaptioner(CaptionDecoder):
    """The tutorials' merge model: image and words meet after the LSTM."""

    def __init__(self, *args, units: int = 256, **kwargs):
        super().__init__(*args, units=units, **kwargs)
        self.image_dropout = layers.Dropout(self.dropout_rate)
        self.image_dense = layers.Dense(units, activation="relu", name="image_dense")
        self.embedding = layers.Embedding(
            self.vocabulary_size, self.embedding_dim, name="embedding"
        )
        self.word_dropout = layers.Dropout(self.dropout_rate)
        self.cell = layers.LSTMCell(units, name="lstm")
        self.decoder_dense = layers.Dense(units, activation="relu", name="decoder_dense")
        self.output_layer = layers.Dense(
            self.vocabulary_size, dtype="float32", name="logits"
        )

    def initial_state(self, features, training=False):
        pooled = ops.mean(self.normalize(features), axis=1)  # (batch, feature_dim)
        pooled = self.image_dropout(pooled, training=training)
        image = self.image_dense(pooled)  # (batch, units)
        zeros = ops.zeros_like(image)
        no_attention = ops.zeros_like(features[:, :, 0])  # (batch, grid)
        return {"image": image, "h": zeros, "c": zeros, "no_attention": no_attention}

    def step(self, words, state, training=False):
        embedded = self.embedding(words)  # (batch, embedding_dim)
        embedded = self.word_dropout(embedded, training=training)
        h, (h, c) = self.cell(embedded, [state["h"], state["c"]], training=training)
        merged = self.decoder_dense(ops.add(state["image"], h))  # (batch, units)
        logits = self.output_layer(merged)  # (batch, vocabulary)
        # Zero weights: this model has no attention to show.
        return logits, state["no_attention"], {**state, "h": h, "c": c}


@dataclasses.dataclass(frozen=True)
class Kind:
    """A decoder a bundle can hold."""

    model: type[CaptionDecoder]  # its class
    trained_by: str  # the notebook that trains it
    label: str  # its name on the web page


# Every decoder kind, best first (the web page's default is the first a bundle holds).
# A new kind is one entry here and its model class.
KINDS = {
    "scst": Kind(AttentionCaptioner, "08_scst", "attention, self-critical (CIDEr-D)"),
    "attention": Kind(AttentionCaptioner, "04_train", "attention, cross-entropy"),
    "merge": Kind(MergeCaptioner, "04_train", "merge, no attention"),
    "transformer": Kind(TransformerCaptioner, "04b_transformer", "Transformer"),
}
ARCHITECTURES = tuple(k for k, kind in KINDS.items() if kind.trained_by == "04_train")


def build(
    kind: str,
    cfg: Config,
    vocabulary_size: int,
    feature_shape: tuple[int, int],
    feature_mean: np.ndarray,
    feature_variance: np.ndarray,
) -> CaptionDecoder:
    """The decoder of `kind` (a key of KINDS) sized by the config."""
    if kind not in KINDS:
        raise ValueError(f"Unknown model kind {kind!r}; choose one of {list(KINDS)}")
    grid, feature_dim = feature_shape
    return KINDS[kind].model.sized(
        cfg,
        vocabulary_size=vocabulary_size,
        grid=grid,
        feature_dim=feature_dim,
        embedding_dim=cfg.embedding_dim,
        units=cfg.units,
        dropout=cfg.dropout,
        feature_mean=np.asarray(feature_mean).tolist(),
        feature_variance=np.asarray(feature_variance).tolist(),
    )


def copy_decoder(decoder: CaptionDecoder) -> CaptionDecoder:
    """A new decoder with the same configuration and weights (fine-tuning and
    self-critical training train a copy and leave the original as it was)."""
    copy = type(decoder).from_config(decoder.get_config())
    probe = np.zeros((1, decoder.grid, decoder.feature_dim), np.float32)
    copy((probe, np.ones((1, 1), np.int32)))
    copy.set_weights(decoder.get_weights())
    return copy
