"""Figures shared by the notebooks."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image


def caption_grid(
    images: list[Path], captions: list[list[str]], columns: int = 3, width: int = 42
):
    """Each image above its captions (the first one in bold: e.g. the model's)."""
    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(5 * columns, 6 * rows), squeeze=False
    )
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
    return save_figure_to(figure, Path(folder) / "figures" / f"{name}.png")


def save_figure_to(figure, path: Path) -> Path:
    """Save a figure as PNG at `path`, atomically, and close it."""
    from helpers.io import write_bytes_atomic

    return write_bytes_atomic(path, figure_png(figure))


def figure_png(figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def loss_curves(logs: dict[str, list[dict]]):
    """Training and validation loss per epoch, one colour per run."""
    figure, axis = plt.subplots(figsize=(7, 4))
    for (name, rows), colour in zip(logs.items(), plt.cm.tab10.colors):
        epochs = [row["epoch"] + 1 for row in rows]
        axis.plot(
            epochs,
            [row["loss"] for row in rows],
            "-",
            color=colour,
            label=f"{name} train",
        )
        axis.plot(
            epochs,
            [row["val_loss"] for row in rows],
            "--",
            color=colour,
            label=f"{name} validation",
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss (cross-entropy per word + penalty)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def attention_overlay(image: Image.Image, weights, size: int = 224):
    """One word's attention (grid,) upsampled to the image, smoothed, as an RGBA-ready map."""
    import numpy as np
    from PIL import ImageFilter

    side = int(round(len(weights) ** 0.5))
    grid = np.asarray(weights, np.float32).reshape(side, side)
    grid = (grid / max(grid.max(), 1e-8) * 255).astype(np.uint8)
    heat = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    heat = heat.filter(ImageFilter.GaussianBlur(size / side / 2))
    return np.asarray(heat, np.float32) / 255.0


def attention_figure(picture, words: list[str], attention, columns: int = 5):
    """The picture (a path or a PIL image), then one panel per word: where it looked."""
    source = picture if isinstance(picture, Image.Image) else Image.open(picture)
    image = source.convert("RGB").resize((224, 224))
    panels = len(words) + 1
    rows = -(-panels // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title(" ".join(words), fontsize=8, wrap=True)
    for axis, word, weights in zip(axes.flat[1:], words, attention):
        axis.imshow(image)
        axis.imshow(
            attention_overlay(image, weights), cmap="gray", alpha=0.6, vmin=0, vmax=1
        )
        axis.set_title(word, fontsize=10)
    figure.tight_layout()
    return figure


def bleu_by_length(
    references: dict[str, list[str]], hypotheses: dict[str, str], edges=(0, 6, 9, 12, 100)
):
    """Corpus BLEU-4 of the images grouped by the length of their generated caption."""
    from helpers import metrics

    labels, scores, counts = [], [], []
    for low, high in zip(edges, edges[1:]):
        group = [n for n, h in hypotheses.items() if low < len(metrics.tokens(h)) <= high]
        if group:
            labels.append(f"{low + 1}-{high}" if high < 100 else f">{low}")
            scores.append(
                metrics.bleu(
                    {n: references[n] for n in group}, {n: hypotheses[n] for n in group}
                )["bleu4"]
            )
            counts.append(len(group))
    figure, axis = plt.subplots(figsize=(6, 3))
    bars = axis.bar(labels, scores, color="tab:cyan")
    for bar, count in zip(bars, counts):
        axis.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"n={count}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    axis.set_xlabel("words in the generated caption")
    axis.set_ylabel("BLEU-4")
    figure.tight_layout()
    return figure
