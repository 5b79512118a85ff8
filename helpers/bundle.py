"""The model bundle: everything needed to caption a new picture, in one folder.

bundle/
  attention.keras  merge.keras   decoders (Keras format, loaded in safe mode)
  vocabulary.json                words <-> ids
  config.json                    the run's resolved config
  bundle.json                    the encoder (CNN, layer, input size, weights) whose
                                 features the decoders read, the vocabulary's hash and
                                 the data the decoders were trained on
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from helpers.config import Config, data_description, load_config
from helpers.io import write_json_atomic
from helpers.text import Vocabulary

KINDS = ("attention", "merge")


@dataclasses.dataclass
class Bundle:
    model: object  # a helpers.model.Captioner
    vocabulary: Vocabulary
    config: Config
    encoder: dict  # encoder, layer, image_size, weights, grid, feature_dim


def encoder_identity(feature_index: dict) -> dict:
    """The part of a feature index that a new image must be encoded with."""
    keys = ("encoder", "layer", "image_size", "weights")
    grid, feature_dim = feature_index["shape"][1:]
    return {
        **{k: feature_index[k] for k in keys},
        "grid": grid,
        "feature_dim": feature_dim,
    }


def save_bundle(
    folder: str | Path,
    models: dict,
    vocabulary: Vocabulary,
    cfg: Config,
    feature_index: dict,
) -> Path:
    """Write the decoders, vocabulary, config and encoder identity into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for kind, model in models.items():
        if kind not in KINDS:
            raise ValueError(f"unknown model kind {kind!r}")
        temporary = folder / f".{kind}.partial.keras"
        model.save(temporary)
        temporary.replace(folder / f"{kind}.keras")
    vocabulary.save(folder / "vocabulary.json")
    cfg.save(folder / "config.json")
    write_json_atomic(
        folder / "bundle.json",
        {
            "encoder": encoder_identity(feature_index),
            "vocabulary_sha256": _sha256(folder / "vocabulary.json"),
            "models": sorted(models),
            "trained_on": data_description(cfg),
        },
    )
    return folder


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_bundle(
    folder: str | Path, kind: str = "attention", expect_encoder: dict | None = None
) -> Bundle:
    """Load one decoder with its vocabulary and check that the parts belong together."""
    import keras

    from helpers import model as _  # noqa: F401  registers the model classes

    folder = Path(folder)
    path = folder / f"{kind}.keras"
    for needed in (path, folder / "vocabulary.json", folder / "bundle.json"):
        if not needed.exists():
            raise FileNotFoundError(
                f"{folder}: not a complete model bundle ({needed.name} "
                "is missing); notebook 04 writes one"
            )
    manifest = json.loads((folder / "bundle.json").read_text())
    encoder = manifest["encoder"]
    if _sha256(folder / "vocabulary.json") != manifest["vocabulary_sha256"]:
        raise ValueError(
            f"{folder}/vocabulary.json is not the vocabulary these decoders "
            "were trained with (its hash differs from bundle.json)"
        )
    vocabulary = Vocabulary.load(folder / "vocabulary.json")
    model = keras.saving.load_model(path, safe_mode=True)
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
    return Bundle(model, vocabulary, load_config(folder / "config.json"), encoder)
