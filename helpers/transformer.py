"""A Transformer caption decoder (Vaswani et al., 2017) over the grid of CNN features.

Pre-norm blocks of Keras layers (Xiong et al., 2020): causal self-attention over the
words, cross-attention over the projected grid, a feed-forward layer. Teacher forcing
runs every position of a caption at once; decoding steps one position at a time with a
key/value cache, behind the same `initial_state` and `step` as the LSTMs of
helpers/model.py, so greedy and beam search (helpers/decode.py) need no change.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from helpers.captioner import PACKAGE, CaptionDecoder
from helpers.config import Config


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
