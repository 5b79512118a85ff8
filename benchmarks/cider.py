"""CIDEr-D speed: helpers.cider against pycocoevalcap, side by side, same captions.

    python benchmarks/cider.py [--profile sample] [--batches 20]

The workload of self-critical training: batches of 32 pictures x 5 sampled captions,
each scored against its picture's references with the document frequencies of the
training references. No model is needed: the "samples" are the sample profile's
training references of other pictures, cut to random lengths. pycocoevalcap gets the
same document frequencies (its own scoring code, frequencies injected) and is timed
on the same batches; both must agree to 1e-6. Prints captions scored per second and
the ratio.
"""

import argparse
import time

import numpy as np
from pycocoevalcap.cider.cider_scorer import CiderScorer, precook

from helpers import data, metrics
from helpers.cider import CiderD
from helpers.config import get_config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="sample")
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    dataset = data.load_profile_dataset(get_config(args.profile))
    train = [
        [" ".join(metrics.tokens(c)) for c in dataset.captions[n]]
        for n in dataset.splits["train"]
    ]
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(args.batches):
        images = np.repeat(rng.choice(len(train), 32), 5)
        words = [rng.choice(train[rng.integers(len(train))]).split() for _ in images]
        captions = [" ".join(w[: rng.integers(3, len(w) + 1)]) for w in words]
        batches.append((images, captions))
    count = sum(len(images) for images, _ in batches)

    ours = CiderD(train)
    prepared = ours.references(train)
    started = time.perf_counter()
    fast = [ours.score(prepared, ours.encode(c), i) for i, c in batches]
    fast_seconds = time.perf_counter() - started

    frequencies = {}
    for refs in train:
        for ngram in {g for ref in refs for g in precook(ref)}:
            frequencies[ngram] = frequencies.get(ngram, 0) + 1

    class Fixed(CiderScorer):  # pycocoevalcap's scoring with the training frequencies
        ref_len = property(lambda self: np.log(len(train)), lambda self, value: None)

    started = time.perf_counter()
    slow = []
    for images, captions in batches:
        scorer = Fixed()
        for image, caption in zip(images, captions):
            scorer += (caption, train[image])
        scorer.document_frequency.update(frequencies)
        slow.append(np.array(scorer.compute_cider()))
    slow_seconds = time.perf_counter() - started

    difference = max(np.abs(a - b).max() for a, b in zip(fast, slow))
    assert difference < 1e-6, difference
    print(
        f"{count} captions in {args.batches} batches of 160, largest difference {difference:.1e}"
    )
    print(f"pycocoevalcap  {count / slow_seconds:10,.0f} captions per second")
    print(f"helpers.cider  {count / fast_seconds:10,.0f} captions per second")
    print(f"ratio          {slow_seconds / fast_seconds:10.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
