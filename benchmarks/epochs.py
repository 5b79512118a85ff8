"""Epoch boundaries: training input with tf.data autotuning off (ours) and on, side by side.

    python benchmarks/epochs.py [--epochs 8] [--captions 3000]

The same attention decoder (the sample's sizes) trains on the same synthetic data
(196x512 features in a memmap, captions of up to 20 words) twice in one process,
`--epochs` epochs each way: once with `corpus.make_dataset` as it is, once with
tf.data's autotuning switched back on. With autotuning, Keras's new iterator at each
epoch waits for the old one's autotuning thread to wake, which on 2 busy cores can
add most of an epoch's time to about half of the epochs. Prints the seconds of every
epoch and the ratio of the totals.
"""

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import corpus as corpora
from helpers import model as models
from helpers import train
from helpers.config import get_config

GRID, DIM, VOCABULARY, WORDS = 196, 512, 60, 20


class EpochSeconds(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.began = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.began)


def epoch_seconds(features, rows, tokens, cfg, epochs: int, autotune: bool) -> list:
    data = corpora.make_dataset(
        features, rows, tokens, cfg.batch_size, shuffle=True, seed=0
    )
    if autotune:
        options = tf.data.Options()
        options.autotune.enabled = True
        data = data.with_options(options)
    keras.utils.set_random_seed(0)
    model = models.build(
        "attention", cfg, VOCABULARY, (GRID, DIM), np.zeros(DIM), np.ones(DIM)
    )
    model.compile(optimizer="adam", loss=train.masked_loss())
    model.fit(data.take(2), verbose=0)  # build and trace outside the timing
    timer = EpochSeconds()
    model.fit(data, epochs=epochs, callbacks=[timer], verbose=0, shuffle=False)
    return timer.seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--captions", type=int, default=3000)
    args = parser.parse_args()
    cfg = get_config("sample")
    rng = np.random.default_rng(0)
    images = args.captions // 5
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "features.npy"
        features = np.lib.format.open_memmap(path, "w+", np.float16, (images, GRID, DIM))
        features[:] = rng.normal(size=features.shape).astype(np.float16)
        features.flush()
        features = np.load(path, mmap_mode="r")
        tokens = rng.integers(4, VOCABULARY, (args.captions, WORDS + 2), np.int32)
        rows = np.repeat(np.arange(images), 5)
        totals = {}
        for name, autotune in (("autotuning off (ours)", False), ("autotuning on", True)):
            seconds = epoch_seconds(features, rows, tokens, cfg, args.epochs, autotune)
            totals[name] = sum(seconds)
            print(f"{name}: {' '.join(f'{s:.1f}' for s in seconds)} s per epoch")
    on, off = totals["autotuning on"], totals["autotuning off (ours)"]
    print(f"total {off:.0f} s against {on:.0f} s: {on / off:.2f}x faster without")


if __name__ == "__main__":
    main()
