"""The model bundle: everything needed to caption a new picture, in one folder.

bundle/
  attention.keras  merge.keras   decoders (Keras format, loaded in safe mode), and
  scst.keras                     after notebook 08, the self-critically trained one
  vocabulary.json                words <-> ids
  config.json                    the run's resolved config
  encoder_tuned.weights.h5       only in a fine-tuned bundle (notebook 07): the
                                 weights of the encoder's fine-tuned layers
  bundle.json                    the encoder (CNN, layer, input size, weights, tuned
                                 layers) whose features the decoders read, each
                                 file's sha256 and the data the decoders were trained on
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np

from helpers import encoders
from helpers.config import LIMITS, Config, data_description, load_config
from helpers.files import read_json, read_regular, staged, write_json_atomic
from helpers.keras_files import MAX_PART_BYTES, check_keras_archive
from helpers.model import KINDS, CaptionDecoder
from helpers.text import Vocabulary

MANIFEST = "bundle.json"
PARTS = ["vocabulary.json", "config.json"]  # besides the decoders
TUNED = "encoder_tuned.weights.h5"
MANIFEST_TYPES = {"encoder": dict, "models": list, "files": dict, "trained_on": str}
ENCODER_TYPES = {
    "encoder": str,
    "layer": str,
    "image_size": int,
    "weights": str,
    "grid": int,
    "feature_dim": int,
    "tuned_layers": list,  # fine-tuned layers, their weights in TUNED; [] for none
}


@dataclasses.dataclass
class Bundle:
    model: CaptionDecoder
    vocabulary: Vocabulary
    config: Config
    encoder: dict  # encoder, layer, image_size, weights, grid, feature_dim, tuned_layers
    folder: Path

    def build_encoder(self, weights_file: str | None = None):
        """The encoder this bundle's decoder reads, with its fine-tuned layers if any.

        `weights_file` is the encoder's base weights file, if it was made with one.
        """
        encoder = encoders.encoder_from_identity(self.encoder, weights_file, offline=True)
        _, height, width, channels = encoder.output_shape
        if (height * width, channels) != (self.model.grid, self.model.feature_dim):
            raise ValueError(
                f"{self.folder / MANIFEST}: its encoder ({self.encoder['encoder']} at "
                f"{self.encoder['image_size']} px) gives {height * width}x{channels} "
                f"features, but the decoder reads {self.model.grid}x"
                f"{self.model.feature_dim}"
            )
        if self.encoder["tuned_layers"]:
            part = encoders.tuned_part(encoder, self.encoder["encoder"])
            if tuned_layers(part) != self.encoder["tuned_layers"]:
                raise ValueError(
                    f"{self.folder / MANIFEST}: its tuned layers are not the ones "
                    f"{self.encoder['encoder']} fine-tunes ({tuned_layers(part)})"
                )
            part.load_weights(self.folder / TUNED)
            if not all(np.isfinite(w).all() for w in part.get_weights()):
                raise ValueError(
                    f"{self.folder / TUNED}: holds weights that are not finite"
                )
        return encoder


def tuned_layers(part) -> list[str]:
    """The names of the layers with weights in a `encoders.tuned_part`."""
    return [layer.name for layer in part.layers if layer.weights]


def encoder_identity(feature_index: dict, tuned=None) -> dict:
    """The part of a feature index that a new image must be encoded with; `tuned` is
    the fine-tuned part of the encoder (`encoders.tuned_part`), if any."""
    keys = ("encoder", "layer", "image_size", "weights")
    grid, feature_dim = feature_index["shape"][1:]
    return {
        **{k: feature_index[k] for k in keys},
        "grid": grid,
        "feature_dim": feature_dim,
        "tuned_layers": tuned_layers(tuned) if tuned is not None else [],
    }


def save_bundle(
    folder: str | Path,
    models: dict,
    vocabulary: Vocabulary,
    cfg: Config,
    feature_index: dict,
    tuned=None,
) -> Path:
    """Write the decoders, vocabulary, config and encoder identity into `folder`;
    with `tuned` (the fine-tuned part of the encoder) also its weights.

    The bundle is written into a staging folder and renamed into place: readers see
    the old bundle or the new one, never a mixture (no stale decoder survives).
    """
    unknown = sorted(set(models) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown model kind(s) {unknown}; a bundle holds {list(KINDS)}")
    with staged(folder) as staging:
        for kind, model in models.items():
            model.save(staging / f"{kind}.keras")
        vocabulary.save(staging / "vocabulary.json")
        cfg.save(staging / "config.json")
        files = [f"{kind}.keras" for kind in sorted(models)] + PARTS
        if tuned is not None:
            tuned.save_weights(staging / TUNED)
            files.append(TUNED)
        write_json_atomic(
            staging / MANIFEST,
            {
                "encoder": encoder_identity(feature_index, tuned),
                "models": sorted(models),
                "files": {name: _sha256(staging / name) for name in files},
                "trained_on": data_description(cfg),
            },
        )
    return Path(folder)


def add_decoders(folder: str | Path, models: dict) -> Path:
    """Save the bundle in `folder` again with `models` ({kind: decoder}) added to (or
    replacing) the decoders it holds; the vocabulary, config and encoder stay."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest["encoder"]["tuned_layers"]:
        raise ValueError(f"{folder}: a fine-tuned bundle; add decoders to its source")
    held = {kind: load_bundle(folder, kind) for kind in manifest["models"]}
    first = next(iter(held.values()))
    encoder = first.encoder
    index = {
        **{k: encoder[k] for k in ("encoder", "layer", "image_size", "weights")},
        "shape": [0, encoder["grid"], encoder["feature_dim"]],
    }
    decoders = {kind: loaded.model for kind, loaded in held.items()} | models
    return save_bundle(folder, decoders, first.vocabulary, first.config, index)


MAX_MANIFEST_BYTES = 2**20


def _sha256(path: Path) -> str:
    """The sha256 of a bundle file: a regular file inside its folder, of bounded size."""
    return hashlib.sha256(read_regular(path, MAX_PART_BYTES, path.parent)).hexdigest()


def read_manifest(folder: Path) -> dict:
    """bundle.json, checked for every key, type and range; ValueError naming the file."""
    path = folder / MANIFEST
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(
            f"{folder}: not a model bundle ({MANIFEST} is missing); notebook 04 writes one"
        )
    manifest = read_json(path, MAX_MANIFEST_BYTES, inside=folder)
    problems = _problems(manifest, MANIFEST_TYPES)
    if not problems:
        problems = _problems(manifest["encoder"], ENCODER_TYPES, "encoder.")
        problems += [
            f"models lists {kind!r}" for kind in manifest["models"] if kind not in KINDS
        ]
    if not problems and (TUNED in manifest["files"]) != bool(
        manifest["encoder"]["tuned_layers"]
    ):
        problems.append(f"files and encoder.tuned_layers disagree about {TUNED}")
    if not problems:
        low, high = LIMITS["image_size"]
        if not low <= manifest["encoder"]["image_size"] <= high:
            problems.append(f"encoder.image_size is outside {low}..{high}")
    if problems:
        raise ValueError(
            f"{path}: not a bundle manifest of this version ({'; '.join(problems)})"
        )
    return manifest


def _problems(item, types: dict, prefix: str = "") -> list[str]:
    if not isinstance(item, dict):
        return [f"{prefix or 'the file'} is not a JSON object"]
    found = [f"unknown key {prefix}{key}" for key in sorted(set(item) - set(types))]
    return found + [
        f"{prefix}{key} should be {kind.__name__}"
        for key, kind in types.items()
        if not isinstance(item.get(key), kind) or isinstance(item.get(key), bool)
    ]


def stored_weights(path: Path) -> int:
    """How many weight arrays of layers a .keras file holds (not its optimiser's)."""
    arrays = []

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and not name.startswith("optimizer/"):
            arrays.append(name)

    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as file:
        with h5py.File(file, "r") as weights:
            weights.visititems(visit)
    return len(arrays)


def load_bundle(
    folder: str | Path, kind: str = "attention", expect_encoder: dict | None = None
) -> Bundle:
    """Load one decoder with its vocabulary and check that the parts belong together.

    Every file is checked against the sha256 that bundle.json recorded for it.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    encoder = manifest["encoder"]
    if kind not in manifest["models"]:
        raise ValueError(
            f"{folder}: has no {kind} decoder (bundle.json lists {manifest['models']})"
        )
    path = folder / f"{kind}.keras"
    for name in (path.name, *PARTS, *([TUNED] if encoder["tuned_layers"] else [])):
        if not (folder / name).exists() and not (folder / name).is_symlink():
            raise FileNotFoundError(
                f"{folder}: not a complete model bundle ({name} is missing); "
                "notebook 04 writes one"
            )
        if _sha256(folder / name) != manifest["files"].get(name):
            raise ValueError(
                f"{folder / name} is not the file this bundle was saved with (its "
                "sha256 differs from bundle.json): the parts come from different runs"
            )
    vocabulary = Vocabulary.load(folder / "vocabulary.json")
    check_keras_archive(path)
    try:  # safe mode: no Lambda layer or other code in the file runs
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # a bad zip, a missing entry, an unknown class, ...
        message = str(error).splitlines()[0][:200] if str(error) else ""
        raise ValueError(
            f"{path}: not a decoder this version can load "
            f"({type(error).__name__}: {message})"
        ) from None
    if not isinstance(model, CaptionDecoder):
        raise ValueError(f"{path}: holds a {type(model).__name__}, not a decoder")
    # Keras refuses weights of the wrong shape but ignores surplus ones: a config of
    # fewer Transformer blocks than the weights would load with blocks left unused.
    if stored_weights(path) != len(model.weights):
        raise ValueError(
            f"{path.name}: its config builds a decoder of {len(model.weights)} weight "
            f"arrays but the file holds {stored_weights(path)}: sizes and weights differ"
        )
    if model.vocabulary_size != len(vocabulary):
        raise ValueError(
            f"{path.name} was trained with {model.vocabulary_size} words but "
            f"vocabulary.json has {len(vocabulary)}: they come from different runs"
        )
    if (model.grid, model.feature_dim) != (encoder["grid"], encoder["feature_dim"]):
        raise ValueError(
            f"{path.name} expects {model.grid}x{model.feature_dim} features but "
            f"bundle.json describes {encoder['grid']}x{encoder['feature_dim']}"
        )
    if expect_encoder is not None:
        differences = {
            k: (encoder.get(k), v)
            for k, v in expect_encoder.items()
            if encoder.get(k) != v
        }
        if differences:
            raise ValueError(
                f"{folder} was trained on other features: "
                + ", ".join(
                    f"{k} is {a!r}, not {b!r}" for k, (a, b) in differences.items()
                )
            )
    return Bundle(model, vocabulary, load_config(folder / "config.json"), encoder, folder)
