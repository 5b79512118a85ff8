"""Figures shared by the notebooks."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image


def caption_grid(
    images: list[Path], captions: list[list[str]], columns: int = 3, width: int = 42
):
    """Each image above its captions (the first one in bold: e.g. the model's)."""
    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5 * columns, 6 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, path, lines in zip(axes.flat, images, captions):
        with Image.open(path) as image:
            axis.imshow(image.convert("RGB"))
        text = "\n".join(textwrap.fill(line, width) for line in lines)
        axis.set_title(text, fontsize=8, loc="left")
    figure.tight_layout()
    return figure


def save_figure(figure, folder: Path, name: str) -> Path:
    """Save a figure as `<folder>/figures/<name>.png` and return the path."""
    path = Path(folder) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, bbox_inches="tight")
    return path
