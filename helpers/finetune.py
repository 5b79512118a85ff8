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

from helpers import train
from helpers.config import Config
from helpers.corpus import Corpus, features_fingerprint, fingerprint, make_dataset
from helpers.encoders import ENCODERS, encoder_from_identity, tuned_part
from helpers.model import PACKAGE, copy_decoder


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledAdam(keras.optimizers.Adam):
    """Adam whose learning rate is multiplied by `scales[variable.path]` for some
    variables: fine-tuning moves the CNN in smaller steps than the decoder.

    (Scaling those gradients instead would change nothing: Adam divides them out.)
    """

    def __init__(self, *args, scales: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.scales = dict(scales or {})

    def update_step(self, gradient, variable, learning_rate):
        # As Adam finds the variable's moments (the backend may pass its tf.Variable).
        path = self._trainable_variables[self._get_variable_index(variable)].path
        scale = self.scales.get(path, 1.0)
        super().update_step(gradient, variable, learning_rate * scale)

    def get_config(self):
        return {**super().get_config(), "scales": self.scales}


@keras.saving.register_keras_serializable(package=PACKAGE)
class FineTuner(keras.Model):
    """The unfrozen CNN part under a decoder: cached frozen outputs of B images and
    K captions of each in, next-word logits out, (B, K, time, vocabulary)."""

    def __init__(self, tuned: keras.Model, decoder: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.tuned, self.decoder = tuned, decoder
        # The CNN's steps are smaller than the decoder's (ScaledAdam).
        self.learning_rate_scales = {}

    def call(self, inputs, training=False):
        cached, words = inputs  # (B, cells, c), (B, K, time)
        per_image, time = words.shape[1], words.shape[2]
        grid = ops.repeat(features_of(self.tuned, cached), per_image, axis=0)
        logits = self.decoder(
            (grid, ops.reshape(words, (-1, time))), training=training
        )  # (B * K, time, vocabulary): grid is (B * K, grid, feature_dim)
        return ops.reshape(logits, (-1, per_image, time, logits.shape[-1]))

    def optimizer_for(self, schedule, clipnorm: float):
        """The optimiser `train.fit` trains this model with: Adam, with the CNN's
        variables at their scaled rate."""
        return ScaledAdam(schedule, scales=self.learning_rate_scales, clipnorm=clipnorm)

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


def caption_groups(corpus, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, tokens): each image's cache row and its captions' padded ids,
    (images, K, length); an image with fewer than K captions gets empty ones (all
    padding, so they weigh nothing in the loss)."""
    names, vocabulary = corpus.splits[split], corpus.vocabulary
    per_image = max(len(corpus.captions[n]) for n in names)
    tokens = np.zeros((len(names), per_image, vocabulary.max_length + 2), np.int32)
    for i, name in enumerate(names):
        tokens[i, : len(corpus.captions[name])] = vocabulary.encode_batch(
            corpus.captions[name]
        )
    return corpus.rows(names), tokens


def fine_tune(
    decoder: keras.Model,
    corpus: Corpus,
    cfg: Config,
    out: str | Path,
    *,
    weights: str | None = None,
    epochs: int | None = None,
    **options,
):
    """Train the encoder's unfrozen part and (a copy of) `decoder` together from the
    frozen part's cache, `corpus.features` (`features.extract(...,
    layer=ENCODERS[encoder].frozen)`); returns (FineTuner, log rows). `decoder`
    itself is left as it was; `options` go to `train.fit`.

    `epochs` defaults to `cfg.finetune_epochs`. The decoder learns at
    `cfg.learning_rate * cfg.finetune_learning_rate_scale`, the CNN part at
    `cfg.finetune_cnn_scale` times that. `weights` is the encoder's weights file if
    it was made with one.
    """
    name, index = corpus.index["encoder"], corpus.index
    if index["layer"] != ENCODERS[name].frozen:
        raise ValueError(
            f"the cache holds {name} {index['layer']}; fine-tuning reads "
            f"{ENCODERS[name].frozen}, the output of the frozen part"
        )
    table = {split: caption_groups(corpus, split) for split in ("train", "dev")}
    epochs = epochs or cfg.finetune_epochs
    settings = {
        "fine_tune": name,
        "start": "kept unless an epoch beats it",
        "epochs": epochs,
        "config": json.loads(cfg.to_json()),
        "decoder": fingerprint(*decoder.get_weights()),
        "vocabulary": fingerprint(corpus.vocabulary.words),
        "captions": fingerprint(*table["train"], *table["dev"]),
        "cache": features_fingerprint(corpus.names, corpus.features),
        "weights": index["weights"],
    }
    per_image = table["train"][1].shape[1]

    def datasets(batch_size):  # batch_size captions: whole images of K captions each
        images = max(1, batch_size // per_image)
        return (
            make_dataset(
                corpus.features, *table["train"], images, shuffle=True, seed=cfg.seed
            ),
            make_dataset(corpus.features, *table["dev"], images),
        )

    def build():
        identity = {**index, "layer": ENCODERS[name].layer}
        encoder = encoder_from_identity(identity, weights)
        model = FineTuner(tuned_part(encoder, name), copy_decoder(decoder))
        model.learning_rate_scales = {
            v.path: cfg.finetune_cnn_scale for v in model.tuned.trainable_variables
        }
        return model

    rate = cfg.learning_rate * cfg.finetune_learning_rate_scale
    job = train.Job(settings, build, datasets, epochs, rate, keep_start=True)
    return train.fit(job, cfg, out, **options)


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
