"""Self-critical sequence training: the decoder learns the metric (Rennie et al., 2017).

Cross-entropy teaches the decoder to predict each next word of a reference given the
reference's own previous words. At test time it reads its own words instead (exposure
bias), and it is judged on whole captions by CIDEr-D or BLEU, which no per-word loss
sees. Self-critical training learns from what is judged: for each picture the decoder
samples captions, each one is scored with CIDEr-D against the picture's references
(document frequencies of the training references, `helpers.cider`), and REINFORCE
makes the captions that score above a baseline more likely and the others less:

    loss = -(reward - baseline) * log p(sampled word | words before it)

summed over the words up to `<end>`. The baseline is the mean reward of the picture's
other samples (Luo, 2020; the default) or the reward of the model's own greedy caption
(Rennie et al.): no extra network learns it, and the sign of reward - baseline says
"better or worse than what the model does now". Everything else (optimiser,
checkpoints, resume after a kill, progress bar, early stopping on dev CIDEr-D) is
`helpers.train.fit`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import metrics, train
from helpers.cider import CiderD
from helpers.config import Config
from helpers.corpus import Corpus, features_fingerprint, fingerprint, make_dataset
from helpers.decode import beam_search, policy_log_probs, repeat_state, sample
from helpers.model import PACKAGE, copy_decoder
from helpers.text import END, PAD_ID, START_ID, Vocabulary

BASELINES = ("greedy", "mean")


def with_end(text: str) -> str:
    """A caption as the reward sees it: normalised words, then the word `<end>`."""
    return " ".join([*metrics.tokens(text), END])


class Reward:
    """CIDEr-D of captions (vocabulary ids, <pad> after <end>) against the references
    of their pictures, with the document frequencies of `document_names`' captions.

    `<end>` is a word of the reward, at the end of every caption and reference (Rennie
    et al., 2017, appendix E): a caption cut short ("a dog runs on a") loses the n-grams
    that end a reference ("the grass <end>"), so fragments that share many words with
    the references no longer pay. Reported metrics stay as published, without it.
    """

    def __init__(
        self,
        captions: dict[str, list[str]],
        document_names: list[str],
        names: list[str],
        vocabulary: Vocabulary,
    ):
        def normalised(name):
            return [with_end(c) for c in captions[name]]

        self.cider = CiderD([normalised(n) for n in document_names])
        self.references = self.cider.references([normalised(n) for n in names])
        self.names = names  # `images` index these
        # Each vocabulary id as a CIDEr-D word id; <pad> and <start> are none (0).
        words = [" ".join(metrics.tokens(word)) for word in vocabulary.words]
        words[vocabulary.ids[END]] = END
        self.lookup = self.cider.encode(words)[:, 0]

    def texts(self, texts: list[str], images) -> np.ndarray:
        """The rewards of captions given as text (each ends with `<end>`)."""
        ids = self.cider.encode([with_end(t) for t in texts])
        return self.cider.score(self.references, ids, np.asarray(images))

    def __call__(self, tokens: np.ndarray, images: np.ndarray) -> np.ndarray:
        """(captions,) float32 rewards of `tokens` (captions, time) for the pictures
        `images` (indices into `names`)."""
        scores = self.cider.score(self.references, self.lookup[tokens], images)
        return scores.astype(np.float32)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SelfCritical(keras.Model):
    """A decoder that learns from the reward of its own sampled captions.

    It trains on batches of (features, image): `image` indexes the picture's
    references in `self.reward` (a `Reward`, set before training and not saved).
    Called on features it gives the greedy captions' word ids; validation scores
    them, so the best epoch is the one with the best dev CIDEr-D.
    """

    def __init__(
        self,
        decoder: keras.Model,
        max_length: int,
        samples: int = 5,
        baseline: str = "greedy",
        temperature: float = 1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if baseline not in BASELINES:
            raise ValueError(
                f"scst_baseline must be one of {BASELINES}, not {baseline!r}"
            )
        if samples < (2 if baseline == "mean" else 1):
            raise ValueError(f"the {baseline} baseline needs more samples than {samples}")
        self.decoder, self.max_length = decoder, max_length
        self.samples, self.baseline, self.temperature = samples, baseline, temperature
        self.reward = None
        # The decoding loops as their own functions: Keras traces train_step without
        # AutoGraph, and an unknown batch size keeps the loops' shapes fixed.
        signature = [tf.TensorSpec((None, decoder.grid, decoder.feature_dim))]
        self.greedy = tf.function(
            functools.partial(beam_search, decoder, beam_width=1, max_length=max_length),
            input_signature=signature,
        )
        self.sample = tf.function(
            functools.partial(
                sample,
                decoder,
                samples=samples,
                max_length=max_length,
                temperature=temperature,
            ),
            input_signature=signature,
        )
        self.trackers = [keras.metrics.Mean(name=n) for n in ("loss", "reward", "cider")]

    @property
    def metrics(self):
        return self.trackers

    def call(self, features):
        """The greedy captions' word ids, (batch, max_length)."""
        return self.greedy(features)[0]

    def _score(self, tokens, images):
        rewards = tf.numpy_function(self.reward, [tokens, images], tf.float32)
        return tf.reshape(rewards, [-1])  # (captions,)

    def train_step(self, data):
        features, images = data  # (batch, grid, dim), (batch,)
        k = self.samples
        tokens = self.sample(features)  # (batch * k, max_length)
        rewards = tf.reshape(self._score(tokens, tf.repeat(images, k)), (-1, k))
        if self.baseline == "greedy":
            baseline = self._score(self(features), images)[:, None]  # (batch, 1)
        else:  # the mean of the picture's other samples
            baseline = (tf.reduce_sum(rewards, 1, keepdims=True) - rewards) / (k - 1)
        advantage = tf.reshape(rewards - baseline, (-1, 1))  # (batch * k, 1)
        start = tf.fill([tf.shape(tokens)[0], 1], START_ID)
        words = tf.concat([start, tokens[:, :-1]], axis=1)  # what each word followed
        mask = tf.cast(tf.not_equal(tokens, PAD_ID), tf.float32)  # words up to <end>
        variables = self.decoder.trainable_variables
        with tf.GradientTape() as tape:
            # One start per picture (its attention projection), repeated for its samples.
            state = repeat_state(self.decoder.initial_state(features), k)
            logits, _ = self.decoder.unroll(state, words)  # (batch * k, time, V)
            chosen = tf.gather(
                policy_log_probs(logits, self.temperature), tokens, batch_dims=2
            )  # (batch * k, time): log-probability of each sampled word
            loss = -tf.reduce_sum(advantage * chosen * mask) / tf.reduce_sum(mask)
        gradients = tape.gradient(self.optimizer.scale_loss(loss), variables)
        self.optimizer.apply(gradients, variables)
        self.trackers[0].update_state(loss)
        self.trackers[1].update_state(rewards)
        return {"loss": self.trackers[0].result(), "reward": self.trackers[1].result()}

    def test_step(self, data):
        features, images = data
        self.trackers[2].update_state(self._score(self(features), images))
        return {"cider": self.trackers[2].result()}

    def get_config(self):
        return {
            **super().get_config(),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "max_length": self.max_length,
            "samples": self.samples,
            "baseline": self.baseline,
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config):
        decoder = keras.saving.deserialize_keras_object(config.pop("decoder"))
        return cls(decoder, **config)


def train_scst(
    decoder: keras.Model,
    corpus: Corpus,
    cfg: Config,
    out: str | Path,
    *,
    epochs: int | None = None,
    **options,
):
    """Self-critical training of (a copy of) the cross-entropy `decoder`; returns
    (SelfCritical with the best dev CIDEr-D, log rows). The starting decoder counts:
    when no epoch beats its dev CIDEr-D, the model returned holds it unchanged.
    `decoder` is left as it was; `options` go to `train.fit`.

    A step samples `cfg.scst_samples` captions of each of `cfg.scst_pictures` pictures
    (per device). The decoder learns at
    `cfg.learning_rate * cfg.scst_learning_rate_scale`.
    """
    train_names, dev_names = corpus.splits["train"], corpus.splits["dev"]
    names = train_names + dev_names
    reward = Reward(corpus.captions, train_names, names, corpus.vocabulary)
    rows = corpus.rows(names)
    images = np.arange(len(names), dtype=np.int32)  # indices into the reward's pictures
    split = len(train_names)
    epochs = epochs or cfg.scst_epochs
    settings = {
        "scst": cfg.scst_baseline,
        "reward": "CIDEr-D with <end>",
        "start": "kept unless an epoch beats it",
        "epochs": epochs,
        "config": json.loads(cfg.to_json()),
        "decoder": fingerprint(*decoder.get_weights()),
        "vocabulary": fingerprint(corpus.vocabulary.words),
        "splits": fingerprint(corpus.splits),
        "captions": fingerprint({n: corpus.captions[n] for n in names}),
        "features": features_fingerprint(corpus.names, corpus.features),
    }

    def pack(batch_features, batch_images):
        return batch_features, batch_images

    def datasets(batch_size):  # cfg.batch_size per device: dev greedy decoding
        pictures = cfg.scst_pictures * (batch_size // cfg.batch_size)
        features = corpus.features
        return (
            make_dataset(
                features,
                rows[:split],
                images[:split],
                pictures,
                shuffle=True,
                seed=cfg.seed,
                pack=pack,
            ),
            make_dataset(features, rows[split:], images[split:], batch_size, pack=pack),
        )

    def build():
        model = SelfCritical(
            copy_decoder(decoder),
            max_length=corpus.vocabulary.max_length + 1,  # words plus <end>
            samples=cfg.scst_samples,
            baseline=cfg.scst_baseline,
            temperature=cfg.scst_temperature,
        )
        model.reward = reward
        return model

    rate = cfg.learning_rate * cfg.scst_learning_rate_scale
    job = train.Job(
        settings, build, datasets, epochs, rate, ("val_cider", "max"), keep_start=True
    )
    return train.fit(job, cfg, out, **options)
