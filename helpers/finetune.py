"""Fine-tuning at the cost of the unfrozen part only.

Tutorials that fine-tune their CNN unfreeze its last block, and so do we, without
running the rest of the CNN again and again: the output of the frozen part (VGG16:
`block4_pool`, ResNet: the end of stage 4) is cached once per image with the feature
machinery of notebook 02, and each step runs only the unfrozen part (`block5` or
`conv5`) on that cache, once per image, for all of the image's captions. The CNN part
learns at `cfg.finetune_cnn_scale` times the decoder's rate; everything else (loss,
optimiser, checkpoints, early stopping, resume) is `helpers.train.fit`.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from keras import ops

from helpers import features, train
from helpers.config import Config
from helpers.model import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class FineTuner(keras.Model):
    """The unfrozen CNN part under a decoder: cached frozen outputs of B images and
    K captions of each in, next-word logits out, (B, K, time, vocabulary)."""

    def __init__(self, tuned: keras.Model, decoder: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.tuned, self.decoder = tuned, decoder
        # The CNN's steps are smaller than the decoder's (helpers.train.ScaledAdam).
        self.learning_rate_scales = {}

    def call(self, inputs, training=False):
        cached, words = inputs  # (B, cells, c), (B, K, time)
        per_image, time = words.shape[1], words.shape[2]
        grid = ops.repeat(features_of(self.tuned, cached), per_image, axis=0)
        logits = self.decoder(
            (grid, ops.reshape(words, (-1, time))), training=training
        )  # (B * K, time, vocabulary): grid is (B * K, grid, feature_dim)
        return ops.reshape(logits, (-1, per_image, time, logits.shape[-1]))

    def get_config(self):
        return {
            **super().get_config(),
            "tuned": keras.saving.serialize_keras_object(self.tuned),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        tuned = keras.saving.deserialize_keras_object(config.pop("tuned"))
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(tuned, decoder, **config)


def features_of(part: keras.Model, cached):
    """(B, cells, c) cached frozen outputs -> (B, grid, feature_dim) through the
    unfrozen `part`, in inference mode (ResNet's BatchNorm keeps its statistics)."""
    _, height, width, channels = part.input_shape
    grid = part(ops.reshape(cached, (-1, height, width, channels)), training=False)
    return ops.reshape(grid, (-1, grid.shape[1] * grid.shape[2], grid.shape[3]))


def caption_groups(
    captions: dict[str, list[str]], names: list[str], vocabulary, feature_names
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, tokens): each image's cache row and its captions' padded ids,
    (images, K, length); an image with fewer than K captions gets empty ones (all
    padding, so they weigh nothing in the loss)."""
    per_image = max(len(captions[n]) for n in names)
    tokens = np.zeros((len(names), per_image, vocabulary.max_length + 2), np.int32)
    for i, name in enumerate(names):
        tokens[i, : len(captions[name])] = vocabulary.encode_batch(captions[name])
    return features.rows_of(names, feature_names), tokens


def copy_decoder(decoder: keras.Model) -> keras.Model:
    """A new decoder with the same configuration and weights."""
    copy = type(decoder).from_config(decoder.get_config())
    probe = np.zeros((1, decoder.grid, decoder.feature_dim), np.float32)
    copy((probe, np.ones((1, 1), np.int32)))
    copy.set_weights(decoder.get_weights())
    return copy


def fine_tune(
    decoder: keras.Model,
    cache: np.ndarray,
    cache_index: dict,
    cfg: Config,
    captions: dict[str, list[str]],
    splits: dict[str, list[str]],
    vocabulary,
    out: str | Path,
    *,
    weights: str | None = None,
    epochs: int | None = None,
    verbose: int = 2,
    strategy=None,
):
    """Train the encoder's unfrozen part and (a copy of) `decoder` together from the
    frozen part's cache (`features.extract(..., layer=ENCODERS[encoder].frozen)`);
    returns (FineTuner, log rows). `decoder` itself is left as it was.

    `epochs` defaults to `cfg.finetune_epochs`. The decoder learns at
    `cfg.learning_rate * cfg.finetune_learning_rate_scale`, the CNN part at
    `cfg.finetune_cnn_scale` times that. `weights` is the encoder's weights file if
    it was made with one.
    """
    name = cache_index["encoder"]
    if cache_index["layer"] != features.ENCODERS[name].frozen:
        raise ValueError(
            f"the cache holds {name} {cache_index['layer']}; fine-tuning reads "
            f"{features.ENCODERS[name].frozen}, the output of the frozen part"
        )
    table = {
        split: caption_groups(captions, splits[split], vocabulary, cache_index["names"])
        for split in ("train", "dev")
    }
    epochs = epochs or cfg.finetune_epochs
    settings = {
        "fine_tune": name,
        "epochs": epochs,
        "config": json.loads(cfg.to_json()),
        "decoder": train.fingerprint(*decoder.get_weights()),
        "vocabulary": train.fingerprint(vocabulary.words),
        "captions": train.fingerprint(*table["train"], *table["dev"]),
        "cache": train.features_fingerprint(cache_index["names"], cache),
        "weights": cache_index["weights"],
    }
    per_image = table["train"][1].shape[1]

    def datasets(batch_size):  # batch_size captions: whole images of K captions each
        images = max(1, batch_size // per_image)
        return (
            train.make_dataset(cache, *table["train"], images, True, cfg.seed),
            train.make_dataset(cache, *table["dev"], images),
        )

    def build():
        identity = {**cache_index, "layer": features.ENCODERS[name].layer}
        encoder = features.encoder_from_identity(identity, weights)
        model = FineTuner(features.tuned_part(encoder, name), copy_decoder(decoder))
        model.learning_rate_scales = {
            v.path: cfg.finetune_cnn_scale for v in model.tuned.trainable_variables
        }
        return model

    return train.fit(
        out,
        settings,
        build,
        datasets,
        cfg,
        epochs,
        cfg.learning_rate * cfg.finetune_learning_rate_scale,
        verbose=verbose,
        strategy=strategy,
    )


def tuned_features(
    part: keras.Model, cache: np.ndarray, rows: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """Features of the given cache rows through the unfrozen `part`, float32."""
    return np.concatenate(
        [
            ops.convert_to_numpy(
                features_of(part, np.asarray(cache[rows[i : i + batch_size]]))
            )
            for i in range(0, len(rows), batch_size)
        ]
    )
