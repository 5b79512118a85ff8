"""Feature extraction: every picture (or a cached frozen layer) through the encoder,
into the feature cache (`helpers.cache`).

    python -m helpers.features --data DATA_DIR --out OUT_DIR [--encoder vgg16]
        [--weights imagenet|none|PATH] [--limit N] [--batch-size N] [--layer NAME]
        [--source FROZEN_DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import filelock
import keras
import numpy as np
import tensorflow as tf

from helpers import cache, devices
from helpers.data import load_dataset
from helpers.encoders import (
    ENCODERS,
    build_encoder,
    preprocess,
    tuned_part,
    weights_identity,
)
from helpers.files import claim_folder, printable_output
from helpers.images import load_image


def decode_in_graph(size: int):
    """A tf.data map function: path -> ((size, size, 3) uint8 image, error string).

    A bad file gives a black image and a non-empty error instead of stopping the run.
    """

    def decode(path):
        try:
            return load_image(os.fsdecode(path.numpy()), size), ""
        except ValueError as error:
            return np.zeros((size, size, 3), np.uint8), str(error)

    def load(path):
        image, error = tf.py_function(decode, [path], [tf.uint8, tf.string])
        image.set_shape((size, size, 3))
        error.set_shape(())
        return image, error

    return load


def image_dataset(paths: list[Path], size: int, batch_size: int, encoder: str = "vgg16"):
    """tf.data: parallel decode and resize, batched, preprocessed, prefetched.

    Yields (images, errors): a bad file gives a black image and a non-empty error.
    """

    prepare = preprocess(encoder)
    return (
        tf.data.Dataset.from_tensor_slices([os.fsencode(p) for p in paths])
        .map(
            decode_in_graph(size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        .batch(batch_size)
        .map(
            lambda images, errors: (prepare(tf.cast(images, tf.float32)), errors),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def extract(
    image_paths: dict[str, Path],
    out: str | Path,
    *,
    encoder: str = "vgg16",
    weights: str | None = "imagenet",
    image_size: int = 224,
    batch_size: int = 32,
    seed: int = 1234,
    progress: bool = True,
    model=None,
    strategy=None,
    layer: str | None = None,
    source: str | Path | None = None,
) -> dict:
    """Features for `image_paths` (name -> file) into `out`; returns the index.

    `layer` defaults to the encoder's feature layer; fine-tuning caches the output of
    its frozen layer (`ENCODERS[encoder].frozen`) with the same machinery. With
    `source`, a finished cache of that frozen layer (same encoder, weights and size),
    the feature layer is computed from it by the rest of the CNN alone (VGG16: block5,
    9% of the work) instead of from the pictures; it differs from the direct way only
    by the cache's float16 rounding.

    Rows follow the order of `image_paths`, unless `out` holds a finished cache from
    the same encoder that has every requested image: it is reused as it is and rows
    follow its index (so a quick `--limit` run never wipes a full cache). A killed run
    resumes from its last finished batch. The batch size changes features only by
    float16 rounding, so it is not part of a cache's identity. One extraction at a
    time per folder: a second one stops with a message. `model` may be an encoder
    already built by `build_encoder` with the same arguments. Every GPU works on its
    share of each batch (`batch_size` images per device; `strategy` picks devices).
    """

    out = claim_folder(out)
    settings = {
        "encoder": encoder,
        "layer": layer or ENCODERS[encoder].layer,
        "image_size": image_size,
        "weights": weights_identity(weights, seed),
    }

    def build():
        full = model or build_encoder(encoder, weights, image_size, seed)
        if source:
            return tuned_part(full, encoder)
        if settings["layer"] == ENCODERS[encoder].layer:
            return full
        return keras.Model(full.input, full.get_layer(settings["layer"]).output)

    if source:
        batches = _cached_batches(source, settings)
    else:

        def batches(names, size):
            paths = [image_paths[name] for name in names]
            return image_dataset(paths, image_size, size, encoder)

    try:
        with filelock.FileLock(out / cache.LOCK, timeout=0):
            return cache.write(
                out,
                settings,
                list(image_paths),
                build,
                batches,
                batch_size=batch_size,
                progress=progress,
                strategy=strategy or devices.distribution_strategy(),
            )
    except filelock.Timeout:
        raise RuntimeError(
            f"{out}: another feature extraction is writing into this folder; "
            "wait for it to finish or choose another folder"
        ) from None


def _cached_batches(source, settings: dict):
    """A `batches(names, size)` function reading a frozen-layer cache, with the same
    errors (the skipped pictures) as the extraction that made it."""
    frozen_cache, index = cache.load_features(source)
    frozen = ENCODERS[settings["encoder"]].frozen
    wanted = {**settings, "layer": frozen}
    if settings["layer"] != ENCODERS[settings["encoder"]].layer or not cache.same(
        index, wanted
    ):
        raise ValueError(
            f"{source}: holds {index.get('encoder')} {index.get('layer')} "
            f"({index.get('weights')}, {index.get('image_size')} px), not the "
            f"{frozen} output these features need"
        )

    cells, channels = frozen_cache.shape[1:]
    side = math.isqrt(cells)  # square pictures give square grids

    def batches(names, size):
        rows = cache.rows_of(names, index["names"])
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            reasons = [index["skipped"].get(n, "") for n in names[start : start + size]]
            yield (
                np.asarray(frozen_cache[chunk], np.float32).reshape(
                    -1, side, side, channels
                ),
                np.array([reason.encode() for reason in reasons]),
            )

    return batches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.features",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True, help="dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--weights", default="imagenet", help="imagenet, none or a .h5 path"
    )
    parser.add_argument("--encoder", default="vgg16", choices=sorted(ENCODERS))
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--layer", help="another layer to cache (default: the grid's)")
    parser.add_argument(
        "--source", type=Path, help="a cache of the frozen layer to start from"
    )
    args = parser.parse_args(argv)
    printable_output()
    for option in ("limit", "batch_size", "image_size"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be a positive number")
    weights = None if args.weights.lower() == "none" else args.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        parser.error(f"--weights {weights}: no such file (use imagenet, none or a path)")
    try:
        dataset = load_dataset(args.data)
        for note in dataset.notes:
            print(f"note: {note}", file=sys.stderr)
        paths = dict(list(dataset.image_paths.items())[: args.limit])
        index = extract(
            paths,
            args.out,
            encoder=args.encoder,
            weights=weights,
            image_size=args.image_size,
            batch_size=args.batch_size,
            seed=args.seed,
            layer=args.layer,
            source=args.source,
        )
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{args.out / cache.FEATURES}: {index['shape']} {index['dtype']}, "
        f"{len(index['skipped'])} skipped"
    )
    for name, reason in index["skipped"].items():
        print(f"  skipped {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
