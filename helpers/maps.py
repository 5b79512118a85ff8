"""Where the model looked: attention maps drawn over the picture, one panel per word
(the notebooks, the caption command, the web page and the explorer draw these)."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageFilter

from helpers.viz import COLUMN_INCHES, shown_picture, subplots


def attention_overlay(weights, size: tuple[int, int]) -> np.ndarray:
    """One word's attention (grid,) stretched over a picture of `size` (width, height)
    and smoothed, in [0, 1] of its largest cell. The encoder saw the whole picture
    squeezed into a square, so each cell covers the same share of the photo."""
    side = round(len(weights) ** 0.5)
    grid = np.asarray(weights, np.float32).reshape(side, side)
    grid = (grid / max(grid.max(), 1e-8) * 255).astype(np.uint8)
    heat = Image.fromarray(grid).resize(size, Image.BICUBIC)
    heat = heat.filter(ImageFilter.GaussianBlur(min(size) / side / 2))
    return np.asarray(heat, np.float32) / 255.0


def perplexity(attention) -> np.ndarray:
    """How many cells each word's attention (..., L) effectively spreads over: the
    exponential of its entropy, L for an even spread and 1 for a single cell."""
    weights = np.clip(np.asarray(attention, np.float64), 1e-12, None)
    weights = weights / weights.sum(-1, keepdims=True)
    return np.exp(-(weights * np.log(weights)).sum(-1))


def spread_summary(attention: list) -> str:
    """What the attention of many captions, one (words, L) array each, says about how
    much the model looks: the median word's perplexity and largest weight, against
    the L cells of the grid."""
    perplexities = np.concatenate([perplexity(a) for a in attention])
    peaks = np.concatenate([np.max(a, -1) for a in attention])
    cells = np.shape(attention[0])[-1]
    median, peak = np.median(perplexities), np.median(peaks)
    share = median / cells
    if share > 0.5:
        meaning = (
            "most words spread their attention over most of the grid: the context they "
            "read is close to the mean of the grid, which is all the merge baseline "
            "sees, and the maps above (each scaled to its own brightest cell) look more "
            "focused than the model is"
        )
    elif share > 0.1:
        meaning = (
            "a word looks at a region rather than a place: the maps above show where "
            "that region is, but it covers a good part of the picture"
        )
    else:
        meaning = "most words look at a few cells: attention picks out places"
    return (
        f"Over {len(perplexities)} words of {len(attention)} captions, the median "
        f"word's attention has a perplexity of {median:.1f}: as spread as an even "
        f"spread over {median:.0f} of the {cells} cells ({share:.0%} of the grid; an "
        f"even spread is {cells}, a single cell 1). Its largest weight is {peak:.2g}, "
        f"{peak * cells:.1f} times the even {1 / cells:.2g}. So {meaning}."
    )


def peak_label(weights) -> str:
    """A word's largest weight against the even spread 1/L: "max 0.05 = 2.4x even"."""
    weights = np.asarray(weights)
    return f"max {weights.max():.2g} = {weights.max() * weights.size:.1f}x even"


def _draw_attention(axis, image: Image.Image, weights, title: str, **title_kwargs):
    """One word's panel, with its largest weight against the even spread under it:
    each panel is scaled to its own largest cell, which alone would make a nearly
    even spread look as focused as a single cell."""
    axis.imshow(image)
    shown = axis.imshow(
        attention_overlay(weights, image.size), cmap="magma", alpha=0.55, vmin=0, vmax=1
    )
    axis.set_title(title, **title_kwargs)
    axis.text(
        0.5,
        -0.02,
        peak_label(weights),
        transform=axis.transAxes,
        ha="center",
        va="top",
        fontsize=8,
    )
    axis.axis("off")
    return shown


def _attention_bar(figure: Figure, shown, axes) -> None:
    bar = figure.colorbar(shown, ax=axes, fraction=0.025, pad=0.01)
    bar.set_label("attention, share of the word's largest cell", fontsize=10)


def attention_figure(picture, words: list[str], attention, columns: int = 5) -> Figure:
    """The picture (a path or a PIL image), then one panel per word: where it looked."""
    image = shown_picture(picture)
    panels = len(words) + 1
    columns = max(1, min(columns, panels))
    rows = -(-panels // columns)
    aspect = image.height / image.width
    width = min(COLUMN_INCHES, 1.9 * columns)
    figure, axes = subplots(
        rows,
        columns,
        figsize=(width, rows * (width / columns * aspect + 0.5)),
        squeeze=False,
        layout="constrained",
    )
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(image)
    axes.flat[0].set_title("the picture", fontsize=10)
    shown = None
    for axis, word, weights in zip(axes.flat[1:], words, attention):
        shown = _draw_attention(axis, image, weights, word, fontsize=11)
    if shown is not None:
        _attention_bar(figure, shown, axes)
        figure.suptitle(textwrap.fill(" ".join(words), 80), fontsize=11)
    return figure


def attention_step(picture, words: list[str], attention, position: int) -> Figure:
    """One step of a caption: the words so far, and where the model looked for word
    `position` (what the explorer shows)."""
    image = shown_picture(picture)
    figure, (left, right) = subplots(
        1, 2, figsize=(8, 4.4 * image.height / image.width + 0.8), layout="constrained"
    )
    left.imshow(image)
    left.axis("off")
    left.set_title(f"word {position + 1} of {len(words)}", fontsize=11)
    shown = [
        f"[{w}]" if i == position else w for i, w in enumerate(words[: position + 1])
    ]
    title = textwrap.fill(" ".join(shown), 40)
    bar = _draw_attention(right, image, attention[position], title, fontsize=11)
    _attention_bar(figure, bar, [left, right])
    return figure
