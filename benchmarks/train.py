"""Training input pipelines at Flickr8k scale: ours against per-prefix X1/X2/y arrays, side by side.

    python benchmarks/train.py [--vocabulary 2500 8800] [--steps 20] [--fraction 0.01]

Both train the same merge model (Embedding 256, LSTM 256, Dense 256) on the same
synthetic data: 6,000 images of 196x512 float16 features in a memmap, 30,000 captions
of up to 38 words.

- ours: one example per caption (memmap row + token ids), batches read from the memmap,
  teacher forcing over the whole caption, sparse targets with padding masked out;
- tutorial: one example per caption prefix, each with its own float32 copy of the image
  feature and a one-hot next word, as the common Keras captioning tutorials build X1, X2 and y.

The tutorial's arrays do not fit in memory at full size (they need over 100 GiB), so they are
built for `--fraction` of the prefixes; their epoch time is projected linearly from
that measurement, and their peak memory as the measured peak plus the arrays' growth
to full size (an underestimate: Keras may copy them again), marked as projected. Each pipeline runs in its own
process so that peak memory (max RSS) is its own. Targets: >= 10x less peak memory and
>= 3x less time per epoch.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES, CAPTIONS, GRID, DIM, MAX_LENGTH, UNITS, BATCH = 6000, 30000, 196, 512, 38, 256, 64


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(folder: Path, vocabulary: int):
    """The memmap of features and the caption table (rows, padded token ids)."""
    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / "features.npy"
    if not path.exists():
        array = np.lib.format.open_memmap(path, "w+", np.float16, (IMAGES, GRID, DIM))
        for start in range(0, IMAGES, 500):
            array[start : start + 500] = rng.normal(size=(500, GRID, DIM)).astype(
                np.float16
            )
        array.flush()
        del array
    features = np.load(path, mmap_mode="r")
    lengths = np.clip(rng.normal(11, 4, CAPTIONS).round().astype(int), 3, MAX_LENGTH)
    tokens = np.zeros((CAPTIONS, MAX_LENGTH + 2), np.int32)
    for row, length in enumerate(lengths):
        tokens[row, 0] = 1
        tokens[row, 1 : length + 1] = rng.integers(4, vocabulary, length)
        tokens[row, length + 1] = 2
    rows = np.repeat(np.arange(IMAGES), CAPTIONS // IMAGES)
    return features, rows, tokens, lengths


def run_ours(folder: Path, vocabulary: int, steps: int) -> dict:
    import numpy as np

    from helpers import corpus as corpora
    from helpers import model as models
    from helpers import train

    features, rows, tokens, _ = synthetic(folder, vocabulary)
    cfg = type("Cfg", (), {"embedding_dim": 256, "units": UNITS, "dropout": 0.5})
    model = models.build(
        "merge", cfg, vocabulary, (GRID, DIM), np.zeros(DIM), np.ones(DIM)
    )
    model.compile(optimizer="adam", loss=train.masked_loss())
    data = corpora.make_dataset(features, rows, tokens, BATCH, shuffle=True)
    model.fit(data.take(3), verbose=0)  # build and trace outside the timing
    start = time.perf_counter()
    model.fit(data.take(steps), verbose=0)
    per_step = (time.perf_counter() - start) / steps
    return {
        "epoch_seconds": per_step * len(rows) / BATCH,
        "peak_mib": peak_mib(),
        "examples": len(rows),
        "projected": False,
        "parameters": model.count_params(),
    }


def tutorial_model(vocabulary: int):
    """The tutorials' merge model, predicting one next word from a padded prefix."""
    import keras
    from keras import layers

    image = keras.Input((GRID, DIM))  # (batch, 196, 512)
    prefix = keras.Input((MAX_LENGTH,), dtype="int32")  # (batch, 38)
    pooled = layers.GlobalAveragePooling1D()(image)  # (batch, 512)
    image_branch = layers.Dense(UNITS, activation="relu")(layers.Dropout(0.5)(pooled))
    words = layers.Embedding(vocabulary, 256, mask_zero=True)(prefix)  # (batch, 38, 256)
    words = layers.LSTM(UNITS)(layers.Dropout(0.5)(words))  # (batch, 256)
    merged = layers.Dense(UNITS, activation="relu")(layers.add([image_branch, words]))
    output = layers.Dense(vocabulary, activation="softmax")(merged)  # (batch, vocabulary)
    model = keras.Model([image, prefix], output)
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def run_tutorial(folder: Path, vocabulary: int, fraction: float) -> dict:
    import numpy as np

    features, rows, tokens, lengths = synthetic(folder, vocabulary)
    pairs_total = int((lengths + 1).sum())  # one pair per next word, <end> included
    captions = max(1, int(len(rows) * fraction))
    pairs = int((lengths[:captions] + 1).sum())
    x1 = np.zeros((pairs, GRID, DIM), np.float32)  # a copy of the feature per prefix
    x2 = np.zeros((pairs, MAX_LENGTH), np.int32)
    y = np.zeros((pairs, vocabulary), np.float32)  # one-hot next word
    pair = 0
    for caption in range(captions):
        ids = tokens[caption]
        for t in range(1, lengths[caption] + 2):
            x1[pair] = features[rows[caption]]
            x2[pair, :t] = ids[:t]
            y[pair, ids[t]] = 1.0
            pair += 1
    array_bytes = x1.nbytes + x2.nbytes + y.nbytes
    model = tutorial_model(vocabulary)
    model.fit(
        [x1[: BATCH * 3], x2[: BATCH * 3]], y[: BATCH * 3], batch_size=BATCH, verbose=0
    )
    start = time.perf_counter()
    model.fit([x1, x2], y, batch_size=BATCH, verbose=0)
    per_pair = (time.perf_counter() - start) / pairs
    measured = peak_mib()
    scale = pairs_total / pairs
    # Only the arrays grow with the number of pairs; the runtime and model do not.
    return {
        "epoch_seconds": per_pair * pairs_total,
        "peak_mib": measured + array_bytes * (scale - 1) / 2**20,
        "measured_peak_mib": measured,
        "measured_pairs": pairs,
        "array_gib_full": array_bytes * scale / 2**30,
        "examples": pairs_total,
        "projected": True,
        "parameters": model.count_params(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocabulary", type=int, nargs="+", default=[2500, 8800])
    parser.add_argument("--steps", type=int, default=20, help="timed steps for ours")
    parser.add_argument(
        "--fraction",
        type=float,
        default=0.01,
        help="share of the tutorial's prefixes actually built",
    )
    parser.add_argument("--run", choices=["ours", "tutorial"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        vocabulary = args.vocabulary[0]
        result = (
            run_ours(args.folder, vocabulary, args.steps)
            if args.run == "ours"
            else run_tutorial(args.folder, vocabulary, args.fraction)
        )
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory() as folder:
        for vocabulary in args.vocabulary:
            results = {}
            for run in ("ours", "tutorial"):
                output = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--run",
                        run,
                        "--folder",
                        folder,
                        "--vocabulary",
                        str(vocabulary),
                        "--steps",
                        str(args.steps),
                        "--fraction",
                        str(args.fraction),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[run] = json.loads(output.stdout.strip().splitlines()[-1])
            ours, tutorial = results["ours"], results["tutorial"]
            print(
                f"vocabulary {vocabulary}, {CAPTIONS} captions of {IMAGES} images, "
                f"max length {MAX_LENGTH}, batch {BATCH}, {os.cpu_count()} CPUs"
            )
            print(
                f"  ours: {ours['examples']:7d} examples/epoch, peak {ours['peak_mib']:9.0f} "
                f"MiB, {ours['epoch_seconds']:8.0f} s/epoch ({ours['parameters']:,} params)"
            )
            print(
                f"  tutorial: {tutorial['examples']:7d} examples/epoch, peak {tutorial['peak_mib']:9.0f} "
                f"MiB, {tutorial['epoch_seconds']:8.0f} s/epoch ({tutorial['parameters']:,} params) "
                f"projected from {tutorial['measured_pairs']} pairs (measured peak "
                f"{tutorial['measured_peak_mib']:.0f} MiB); its arrays would take "
                f"{tutorial['array_gib_full']:.1f} GiB"
            )
            print(
                f"  ratio tutorial/ours: peak memory {tutorial['peak_mib'] / ours['peak_mib']:.1f}x "
                f"(target >= 10), time per epoch "
                f"{tutorial['epoch_seconds'] / ours['epoch_seconds']:.1f}x (target >= 3)"
            )


if __name__ == "__main__":
    main()
