"""Fine-tuning end to end: VGG16's `block5` unfrozen under a trained decoder.

Tutorials that fine-tune their CNN unfreeze its last block, and so do we. Here the encoder reads
JPEG files (not cached features), only `block5_*` layers train, the learning rate is
a tenth of the profile's, and everything else (loss, optimiser, checkpoints, early
stopping, resume) is `helpers.train.fit`.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import features, train
from helpers.config import Config
from helpers.model import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class EndToEnd(keras.Model):
    """Preprocessed images and words in, next-word logits out."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder

    def call(self, inputs, training=False):
        images, words = inputs  # (batch, size, size, 3), (batch, time)
        grid = self.encoder(images, training=training)  # (batch, h, w, channels)
        _, height, width, channels = self.encoder.output_shape
        cells = keras.ops.reshape(
            grid, (-1, height * width, channels)
        )  # (batch, grid, c)
        return self.decoder((cells, words), training=training)  # (batch, time, vocab)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        encoder = keras.saving.deserialize_keras_object(config.pop("encoder"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(encoder, decoder, **config)


def unfreeze_last_block(encoder: keras.Model, prefix: str = "block5") -> None:
    """Make only the layers named `prefix*` trainable."""
    for layer in encoder.layers:
        layer.trainable = layer.name.startswith(prefix)


def image_caption_dataset(
    paths: list[str],
    tokens: np.ndarray,
    size: int,
    batch_size: int,
    encoder: str,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of ((preprocessed images, input words), target words, target weights)."""
    decode, prepare = features.decode_in_graph(size), features.preprocess(encoder)

    def load(path, caption):
        image, _ = decode(path)
        return image, caption

    def split(images, batch_tokens):
        return train.teacher_forcing(prepare(tf.cast(images, tf.float32)), batch_tokens)

    data = tf.data.Dataset.from_tensor_slices(([str(p) for p in paths], tokens))
    if shuffle:
        data = data.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return (
        data.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .map(split, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def fine_tune(
    decoder: keras.Model,
    encoder_identity: dict,
    cfg: Config,
    image_paths: dict,
    captions: dict[str, list[str]],
    splits: dict[str, list[str]],
    vocabulary,
    out: str | Path,
    *,
    epochs: int | None = None,
    max_steps: int | None = None,
    weights: str | None = None,
    verbose: int = 2,
):
    """Train encoder `block5` and decoder together from images; returns (model, log).

    `epochs` defaults to `cfg.finetune_epochs`, the learning rate is
    `cfg.learning_rate * cfg.finetune_learning_rate_scale`.
    """
    name, size = encoder_identity["encoder"], encoder_identity["image_size"]
    epochs = epochs or cfg.finetune_epochs
    table = {}  # split -> (image path of each caption, its padded token ids)
    for split in ("train", "dev"):
        pairs = [(image_paths[n], c) for n in splits[split] for c in captions[n]]
        table[split] = (
            [str(p) for p, _ in pairs],
            vocabulary.encode_batch([c for _, c in pairs]),
        )
    settings = {
        "fine_tune": True,
        "encoder": encoder_identity,
        "epochs": epochs,
        "max_steps": max_steps,
        "config": json.loads(cfg.to_json()),
        "vocabulary": train.fingerprint(vocabulary.words),
        "captions": train.fingerprint(
            table["train"][0], table["train"][1], table["dev"][0], table["dev"][1]
        ),
    }

    def datasets(batch_size):
        train_data = image_caption_dataset(
            *table["train"], size, batch_size, name, True, cfg.seed
        )
        dev_data = image_caption_dataset(*table["dev"], size, batch_size, name)
        if max_steps:
            train_data, dev_data = train_data.take(max_steps), dev_data.take(max_steps)
        return train_data, dev_data

    def build():
        encoder = features.encoder_from_identity(encoder_identity, weights)
        unfreeze_last_block(encoder)
        return EndToEnd(encoder, decoder)

    return train.fit(
        out,
        settings,
        build,
        datasets,
        len(table["train"][0]),
        cfg,
        epochs,
        cfg.learning_rate * cfg.finetune_learning_rate_scale,
        verbose=verbose,
    )
