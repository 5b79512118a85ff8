"""Transformer decoding: stepping with a key/value cache against recomputing the whole
prefix at every step, side by side.

    python benchmarks/transformer_cache.py [--profile ci] [--images 64] [--words 20]

A Transformer of the profile's sizes (random weights: the speed of a step does not
depend on what the model learnt) decodes the same random 196x512 features with
`Decoder`, greedy and beam 3, once with its cache (each step runs one position
through the blocks and attends to the cached keys and values) and once without (each
step runs all `transformer_max_length` positions again, as a tf.function must with
fixed shapes). Both must give the same captions. Prints captions per second and the
ratio.
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

from helpers import model as models
from helpers.config import get_config
from helpers.decode import Decoder
from helpers.text import Vocabulary

GRID, DIM = 196, 512


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--words", type=int, default=20, help="decoding steps")
    parser.add_argument("--vocabulary", type=int, default=1000)
    args = parser.parse_args()
    cfg = get_config(args.profile)
    words = ("<pad>", "<start>", "<end>", "<unk>")
    words += tuple(f"w{i}" for i in range(args.vocabulary - len(words)))
    vocabulary = Vocabulary(words, max_length=args.words - 1, min_count=1)
    keras.utils.set_random_seed(cfg.seed)
    model = models.build(
        "transformer", cfg, len(words), (GRID, DIM), np.zeros(DIM), np.ones(DIM)
    )
    features = np.random.default_rng(0).normal(size=(args.images, GRID, DIM))
    features = features.astype(np.float32)
    rates, captions = {}, {}
    for cached in (True, False):
        model.kv_cache = cached
        decoder = Decoder(model, vocabulary)
        for width in (1, 3):
            decoder(features, width)  # compile (XLA: for this batch size) untimed
            start = time.perf_counter()
            captions[cached, width] = [r["tokens"] for r in decoder(features, width)]
            rates[cached, width] = args.images / (time.perf_counter() - start)
    print(
        f"Transformer of the {args.profile} profile: {cfg.transformer_layers} blocks, "
        f"width {cfg.transformer_dim}, {cfg.transformer_max_length} positions; "
        f"{args.images} images, {args.words} steps, {os.cpu_count()} CPUs"
    )
    same = True
    for width, name in ((1, "greedy"), (3, "beam 3")):
        ratio = rates[True, width] / rates[False, width]
        print(
            f"{name:7s} recomputing the prefix {rates[False, width]:8.1f} captions/s   "
            f"with the cache {rates[True, width]:8.1f} captions/s -> {ratio:5.2f}x"
        )
        same &= captions[True, width] == captions[False, width]
    print(f"the same captions with and without the cache: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
