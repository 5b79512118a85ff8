"""Decoding speed: batched greedy and beam-3 against one predict per word, side by side.

    python benchmarks/decode.py [--profile ci] [--images 100]

Uses the trained attention model of `artifacts/<profile>/bundle/` (run the notebooks
first) on the same test images for all three. The per-word loop captions one image
at a time with one `model.predict` call per word, feeding the whole padded prefix as
the common Keras captioning tutorials do. Target: batched decoding at least 50x faster.
"""

import argparse
import os
import sys
import time

import numpy as np

from helpers import bundle, cache, paths
from helpers.config import get_config
from helpers.decode import Decoder


def per_word_greedy(model, vocabulary, image_features, max_length):
    """One image, one `model.predict` per word, the prefix padded to full length."""
    end = vocabulary.ids["<end>"]
    sequence = [vocabulary.ids["<start>"]]
    for _ in range(max_length):
        padded = np.zeros((1, max_length), np.int32)
        padded[0, : len(sequence)] = sequence
        logits = model.predict((image_features[None], padded), verbose=0)
        scores = logits[0, len(sequence) - 1].copy()
        scores[[0, 1, 3]] = -np.inf  # never <pad>, <start> or <unk>, like our decoder
        word = int(np.argmax(scores))
        if word == end:
            break
        sequence.append(word)
    return sequence[1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument(
        "--seed-images",
        type=int,
        default=10,
        help="images for the (slow) per-word loop",
    )
    args = parser.parse_args()
    out = paths.artifacts_dir(get_config(args.profile))
    if not (out / "bundle").exists():
        print(
            f"error: no bundle in {out}; run the notebooks for this profile first",
            file=sys.stderr,
        )
        return 2
    array, index = cache.load_features(out / "features")
    trained = bundle.load_bundle(out / "bundle", "attention")
    decoder = Decoder(trained.model, trained.vocabulary)
    batch = np.asarray(array[: args.images], np.float32)
    timings = {}
    for width in (1, 3):
        decoder(batch[:4], width)  # compile once, outside the timing
        start = time.perf_counter()
        results = decoder(batch, width)
        timings[width] = len(batch) / (time.perf_counter() - start)
        if width == 1:
            greedy = results
    subset = batch[: args.seed_images]
    per_word_greedy(trained.model, trained.vocabulary, subset[0], decoder.max_length)
    start = time.perf_counter()
    loop = [
        per_word_greedy(trained.model, trained.vocabulary, image, decoder.max_length)
        for image in subset
    ]
    loop_rate = len(subset) / (time.perf_counter() - start)
    agree = sum(a == r["tokens"] for a, r in zip(loop, greedy))
    print(
        f"model: {args.profile} attention bundle, {len(trained.vocabulary)} words, "
        f"up to {decoder.max_length} steps, {os.cpu_count()} CPUs"
    )
    print(
        f"per-word loop (1 image, 1 predict per word): {loop_rate:8.2f} captions/s "
        f"({len(subset)} images)"
    )
    print(
        f"batched greedy:                                 {timings[1]:8.2f} captions/s "
        f"({len(batch)} images) -> {timings[1] / loop_rate:6.1f}x"
    )
    print(
        f"batched beam 3:                                 {timings[3]:8.2f} captions/s "
        f"({len(batch)} images) -> {timings[3] / loop_rate:6.1f}x"
    )
    print(f"greedy outputs agree with the per-word loop on {agree}/{len(subset)} images")
    return 0 if agree == len(subset) else 1


if __name__ == "__main__":
    sys.exit(main())
