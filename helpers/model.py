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
- `TransformerCaptioner`: a pre-norm Transformer decoder (Vaswani et al., 2017) whose
  words attend causally to each other and to the projected grid; teacher forcing runs
  all positions at once, decoding steps with a key/value cache.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers, ops

from helpers.config import Config
from helpers.text import PAD_ID

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


def attend(query, keys, values, visible):
    """Scaled dot-product attention of projected heads: `query` (batch, 1, heads,
    head_dim) over `keys`, `values` (batch, cells, heads, head_dim) where `visible`
    (batch or 1, cells) is True; the output (batch, 1, heads, head_dim) and the
    weights (batch, heads, 1, cells)."""
    scale = 1.0 / np.sqrt(query.shape[-1])
    # (batch, heads, 1, cells)
    scores = ops.einsum("bqhd,bkhd->bhqk", query * scale, keys)
    scores = ops.where(visible[:, None, None, :], ops.cast(scores, "float32"), -1e9)
    weights = ops.cast(ops.softmax(scores, axis=-1), values.dtype)  # rows sum to one
    return ops.einsum("bhqk,bkhd->bqhd", weights, values), weights


class DecoderBlock(layers.Layer):
    """Pre-norm decoder block: causal self-attention, cross-attention over the grid and
    a feed-forward layer, each added to its input (a residual) after dropout."""

    def __init__(self, heads: int, dim: int, feed_forward: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.self_norm = layers.LayerNormalization(epsilon=1e-5, name="self_norm")
        self.self_attention = layers.MultiHeadAttention(heads, dim // heads, name="self")
        self.cross_norm = layers.LayerNormalization(epsilon=1e-5, name="cross_norm")
        self.cross_attention = layers.MultiHeadAttention(
            heads, dim // heads, name="cross"
        )
        self.feed_norm = layers.LayerNormalization(epsilon=1e-5, name="feed_norm")
        self.feed_in = layers.Dense(feed_forward, activation="relu", name="feed_in")
        self.feed_out = layers.Dense(dim, name="feed_out")
        self.dropout = layers.Dropout(dropout)

    def build(self, input_shape=None):
        """Every weight now: decoding steps use the attention's projections directly."""
        dim = self.self_attention.num_heads * self.self_attention.key_dim
        shape = (None, None, dim)
        for norm in (self.self_norm, self.cross_norm, self.feed_norm):
            norm.build(shape)
        self.self_attention.build(shape, shape)
        self.cross_attention.build(shape, shape)
        self.feed_in.build(shape)
        self.feed_out.build((None, None, self.feed_in.units))
        self.built = True

    def feed(self, x, training=False):
        """The feed-forward residual: x + W2 relu(W1 LayerNorm(x))."""
        hidden = self.dropout(self.feed_in(self.feed_norm(x)), training=training)
        return x + self.dropout(self.feed_out(hidden), training=training)

    def call(self, x, memory, training=False):
        """All positions at once: x (batch, time, dim), memory (batch, grid, dim) ->
        x and the cross-attention (batch, time, grid), the mean over heads."""
        h = self.self_norm(x)
        attended = self.self_attention(h, h, use_causal_mask=True, training=training)
        x = x + self.dropout(attended, training=training)  # (batch, time, dim)
        attended, weights = self.cross_attention(
            self.cross_norm(x), memory, return_attention_scores=True, training=training
        )  # (batch, time, dim), (batch, heads, time, grid)
        x = x + self.dropout(attended, training=training)
        return self.feed(x, training), ops.mean(weights, axis=1)

    def step(self, x, position, cache, training=False):
        """One position per row: x (batch, 1, dim) at `position` (batch,); `cache`
        holds this block's keys and values of earlier positions (batch, max_length,
        heads, head_dim) and of the grid. Returns x, the cross-attention (batch, grid)
        and the keys and values with this position's written in."""
        mha = self.self_attention
        h = self.self_norm(x)
        at = ops.cast(ops.one_hot(position, cache["key"].shape[1]), x.dtype)
        at = at[:, :, None, None]  # (batch, max_length, 1, 1): 1 at this position
        key = cache["key"] + mha.key_dense(h) * at  # (batch, max_length, heads, hd)
        value = cache["value"] + mha.value_dense(h) * at
        earlier = ops.arange(key.shape[1])[None, :] <= position[:, None]  # causal
        attended, _ = attend(mha.query_dense(h), key, value, earlier)
        x = x + self.dropout(mha.output_dense(attended), training=training)
        mha = self.cross_attention
        query = mha.query_dense(self.cross_norm(x))  # (batch, 1, heads, head_dim)
        every = ops.ones_like(cache["memory_key"][:1, :, 0, 0], "bool")  # (1, grid)
        attended, weights = attend(
            query, cache["memory_key"], cache["memory_value"], every
        )
        x = x + self.dropout(mha.output_dense(attended), training=training)
        alpha = ops.mean(weights, axis=1)[:, 0]  # (batch, grid)
        return self.feed(x, training), alpha, key, value


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerCaptioner(CaptionDecoder):
    """Transformer decoder over the feature grid, pre-norm (Vaswani et al., 2017;
    Xiong et al., 2020), with learnt positions and a key/value cache for decoding."""

    def __init__(
        self,
        *args,
        blocks: int = 2,
        heads: int = 4,
        model_dim: int = 128,
        feed_forward: int = 512,
        max_length: int = 64,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        if model_dim % heads:
            raise ValueError(f"transformer_dim {model_dim} is not a multiple of heads")
        self.block_count, self.heads, self.model_dim = blocks, heads, model_dim
        self.feed_forward, self.max_length = feed_forward, max_length
        # Decoding: True steps with cached keys and values, False runs the whole
        # prefix again at every step (slower; the reference the cache is tested on).
        self.kv_cache = True
        self.project_memory = layers.Dense(model_dim, name="memory")
        self.embedding = layers.Embedding(
            self.vocabulary_size, model_dim, name="embedding"
        )
        self.positions = layers.Embedding(max_length, model_dim, name="positions")
        self.dropout = layers.Dropout(self.dropout_rate)
        self.blocks = [
            DecoderBlock(heads, model_dim, feed_forward, self.dropout_rate, name=f"b{i}")
            for i in range(blocks)
        ]
        self.final_norm = layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.output_layer = layers.Dense(
            self.vocabulary_size, dtype="float32", name="logits"
        )
        self.recurrent_state = ("position", "words") + tuple(
            f"{part}{i}" for i in range(blocks) for part in ("key", "value")
        )

    def build(self, input_shape=None):
        """Every weight now, whatever is called first (`call`, `initial_state`)."""
        shape = (None, None, self.model_dim)
        self.project_memory.build((None, None, self.feature_dim))
        self.embedding.build()
        self.positions.build()
        for block in self.blocks:
            block.build(shape)
        self.final_norm.build(shape)
        self.output_layer.build(shape)
        self.built = True

    @classmethod
    def sized(cls, cfg: Config, **common) -> TransformerCaptioner:
        return cls(
            blocks=cfg.transformer_layers,
            heads=cfg.transformer_heads,
            model_dim=cfg.transformer_dim,
            feed_forward=cfg.transformer_ff,
            max_length=cfg.transformer_max_length,
            **{**common, "dropout": cfg.transformer_dropout},
        )

    def call(self, inputs, training=False):
        features, words = inputs  # (batch, grid, feature_dim), (batch, time)
        memory = self.project_memory(self.normalize(features))  # (batch, grid, dim)
        return self.unroll({"memory": memory}, words, training=training)[0]

    def initial_state(self, features, training=False):
        if not self.built:
            self.build()
        memory = self.project_memory(self.normalize(features))  # (batch, grid, dim)
        position = ops.zeros_like(features[:, 0, 0], "int32")  # (batch,) next position
        state = {"memory": memory, "position": position}
        if not self.kv_cache:
            # (batch, max_length) the words so far
            state["words"] = ops.tile(position[:, None], (1, self.max_length))
            return state
        head_dim = self.model_dim // self.heads
        empty = ops.zeros_like(memory[:, :1, :1, None])  # (batch, 1, 1, 1)
        empty = ops.tile(empty, (1, self.max_length, self.heads, head_dim))
        for i, block in enumerate(self.blocks):
            mha = block.cross_attention  # the grid's keys and values, once per picture
            state[f"memory_key{i}"] = mha.key_dense(memory)  # (batch, grid, heads, hd)
            state[f"memory_value{i}"] = mha.value_dense(memory)
            state[f"key{i}"] = state[f"value{i}"] = empty  # (batch, max_length, h, hd)
        return state

    def unroll(self, state, words, training=False):
        time = words.shape[1]  # (batch, time) words
        if time > self.max_length:
            raise ValueError(
                f"captions of {time} words are longer than the {self.max_length} "
                "positions of this Transformer (transformer_max_length)"
            )
        x = self.embedding(words) + self.positions(ops.arange(time))  # (batch, time, d)
        x = self.dropout(x, training=training)
        for block in self.blocks:
            x, alphas = block(x, state["memory"], training=training)
        logits = self.output_layer(self.final_norm(x))  # (batch, time, vocabulary)
        return logits, alphas  # alphas (batch, time, grid): the last block's

    def step(self, words, state, training=False):
        position = state["position"]  # (batch,) where each row's word goes
        if not self.kv_cache:  # the whole prefix again, one more word each time
            at = ops.one_hot(position, self.max_length, dtype="int32")
            prefix = state["words"] + words[:, None] * at  # (batch, max_length)
            logits, alphas = self.unroll(state, prefix, training=training)
            here = position[:, None, None]
            logits = ops.take_along_axis(logits, here, axis=1)[:, 0]  # (batch, V)
            alpha = ops.take_along_axis(alphas, here, axis=1)[:, 0]  # (batch, grid)
            return logits, alpha, {**state, "words": prefix, "position": position + 1}
        x = self.embedding(words) + self.positions(position)  # (batch, dim)
        x = self.dropout(x, training=training)[:, None, :]  # (batch, 1, dim)
        new = {"position": position + 1}
        for i, block in enumerate(self.blocks):
            cache = {
                "key": state[f"key{i}"],
                "value": state[f"value{i}"],
                "memory_key": state[f"memory_key{i}"],
                "memory_value": state[f"memory_value{i}"],
            }
            x, alpha, new[f"key{i}"], new[f"value{i}"] = block.step(
                x, position, cache, training=training
            )
        logits = self.output_layer(self.final_norm(x))[:, 0]  # (batch, vocabulary)
        return logits, alpha, {**state, **new}  # alpha (batch, grid): the last block's

    def get_config(self):
        return {
            **super().get_config(),
            "blocks": self.block_count,
            "heads": self.heads,
            "model_dim": self.model_dim,
            "feed_forward": self.feed_forward,
            "max_length": self.max_length,
        }


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
