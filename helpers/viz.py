"""Figures shared by the notebooks, the caption command and the web page.

Every function returns a `matplotlib.figure.Figure` made without pyplot: pyplot keeps
no reference to it, so nothing shows it behind the caller's back, nothing has to close
it, and threads (the web page) can draw at once. A notebook shows a figure by making
it the last expression of the cell (or with `display`); `save_figure` writes the PNG
and hands the same figure back, so one line saves and shows.
"""

from __future__ import annotations

import functools
import io
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
from IPython import get_ipython
from matplotlib.figure import Figure
from PIL import Image

from helpers import metrics
from helpers.files import write_bytes_atomic
from helpers.images import open_image


@functools.cache
def _enable_notebook_display() -> None:
    """Let Jupyter draw pyplot-free figures inline.

    The inline backend registers its PNG formatter only once pyplot has made a figure;
    d2l calls the same function for the same reason. Outside IPython it does nothing.
    """
    if get_ipython() is not None:
        # Imported here: it loads pyplot, which a script or the web page never needs.
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")


def subplots(rows: int = 1, columns: int = 1, **kwargs) -> tuple[Figure, object]:
    """Like `plt.subplots`, for a figure that only its caller shows."""
    _enable_notebook_display()
    figure = Figure(
        figsize=kwargs.pop("figsize", None), layout=kwargs.pop("layout", None)
    )
    return figure, figure.subplots(rows, columns, **kwargs)


def save_figure(figure: Figure, folder: Path, name: str) -> Figure:
    """Save `figure` as `<folder>/figures/<name>.png` and return it, to be shown."""
    save_figure_to(figure, Path(folder) / "figures" / f"{name}.png")
    return figure


def save_figure_to(figure: Figure, path: Path) -> Path:
    """Save a figure as PNG at `path`, atomically."""
    return write_bytes_atomic(path, figure_png(figure))


def figure_png(figure: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def open_picture(
    picture: str | Path | Image.Image, size: int | None = None
) -> Image.Image:
    """An RGB picture as people see it (EXIF rotation applied), optionally resized.

    Files are opened as the encoder opens them: the same formats and pixel limit.
    """
    image = (
        picture.convert("RGB")
        if isinstance(picture, Image.Image)
        else open_image(picture, size)
    )
    return image.resize((size, size)) if size else image


# A notebook column shows about 9 inches of a figure at 100 dpi: wider figures shrink,
# and their text with them. Text is set at 10 points or more at that width.
COLUMN_INCHES = 9.0
PICTURE_INCHES = 5.0  # the height of a picture shown on its own
# Thin figure margins and gaps between panels (fractions of the figure and the panels)
MARGINS = dict(left=0.01, right=0.99, bottom=0.01, top=0.99, hspace=0.05, wspace=0.05)


def caption_grid(
    images: list[Path], captions: list[list[str]], columns: int = 3, width: int = 36
) -> Figure:
    """Each image above its captions (the first line is e.g. the model's), in rows of
    `columns`, sized so that 10-point text fits a notebook column."""
    if not images:
        figure, axis = subplots(figsize=(COLUMN_INCHES, 0.6))
        axis.axis("off")
        axis.text(0, 0.5, "(no pictures to show)", fontsize=10)
        return figure
    side = COLUMN_INCHES / columns  # a panel's width, however many pictures
    wrap = round(width * 3 / columns)  # characters of 10-point text across a panel
    columns = max(1, min(columns, len(images)))  # no blank column
    rows = -(-len(images) // columns)
    texts = ["\n".join(textwrap.fill(line, wrap) for line in lines) for lines in captions]
    lines = max(t.count("\n") + 1 for t in texts)
    # A band of text above a band of picture per row, each of a fixed height: a tall
    # photo shrinks into its band instead of reaching the captions below it.
    text_inches = 0.1 + lines * 10 * 1.25 / 72
    picture_inches = min(side * 0.8, PICTURE_INCHES)
    figure, axes = subplots(
        2 * rows,
        columns,
        figsize=(side * columns, rows * (text_inches + picture_inches)),
        height_ratios=[text_inches, picture_inches] * rows,
        gridspec_kw=MARGINS,
        squeeze=False,
    )
    for axis in axes.flat:
        axis.axis("off")
    for number, (path, text) in enumerate(zip(images, texts)):
        row, column = divmod(number, columns)
        label, picture = axes[2 * row, column], axes[2 * row + 1, column]
        label.text(0, 1, text, fontsize=10, va="top", transform=label.transAxes)
        picture.imshow(open_picture(path))
        picture.set_anchor("N")  # against its captions, whatever its shape
    return figure


def length_histogram(lengths: np.ndarray, max_length: int | None = None) -> Figure:
    """Words per caption; a dashed line where captions are cut, if they are."""
    lengths = np.asarray(lengths)
    figure, axis = subplots(figsize=(6, 3))
    axis.hist(lengths, bins=np.arange(lengths.max() + 2) - 0.5, color="tab:green")
    if max_length is not None:
        axis.axvline(
            max_length + 0.5,
            color="black",
            linestyle="--",
            label=f"max_length = {max_length}",
        )
        axis.legend()
    axis.set_xlabel("words per training caption")
    axis.set_ylabel("captions")
    axis.set_title(
        f"Caption length: median {np.median(lengths):.0f}, max {lengths.max()}"
    )
    figure.tight_layout()
    return figure


def vocabulary_curve(
    min_counts: list[int], sizes: list[int], coverage: dict[str, list[float]], chosen: int
) -> Figure:
    """Vocabulary size (left axis) and share of words known (right) per minimum count."""
    figure, left = subplots(figsize=(6, 3))
    left.plot(min_counts, sizes, "o-", color="tab:blue")
    left.set_xlabel("minimum count in training captions")
    left.set_ylabel("vocabulary size", color="tab:blue")
    right = left.twinx()
    for (label, shares), style in zip(coverage.items(), ("s--", "^:", "d-.")):
        right.plot(min_counts, np.array(shares) * 100, style, label=label)
    right.set_ylabel("% of words known", color="tab:red")
    right.legend(loc="center right")
    left.axvline(chosen, color="grey", linestyle=":")
    left.set_title(f"Vocabulary against coverage (this profile uses {chosen})")
    figure.tight_layout()
    return figure


def loss_curves(logs: dict[str, list[dict]]) -> Figure:
    """Training and validation loss per epoch, one colour per run."""
    figure, axis = subplots(figsize=(7, 4))
    for (name, rows), colour in zip(logs.items(), matplotlib.colormaps["tab10"].colors):
        epochs = [row["epoch"] + 1 for row in rows]
        for key, style, split in (
            ("loss", "-", "train"),
            ("val_loss", "--", "validation"),
        ):
            values = [row[key] for row in rows]
            axis.plot(epochs, values, style, color=colour, label=f"{name} {split}")
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss (cross-entropy per word + penalty)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def reward_curve(log: list[dict], start: float) -> Figure:
    """Self-critical training per epoch: the mean CIDEr-D of the sampled captions
    (training pictures) and of the greedy captions (dev pictures), from `start`, the
    cross-entropy model's dev CIDEr-D at epoch 0."""
    figure, axis = subplots(figsize=(7, 4))
    epochs = [0] + [row["epoch"] + 1 for row in log]
    axis.plot(epochs[1:], [row["reward"] for row in log], "o-", label="sampled, train")
    dev = [start] + [row["val_cider"] for row in log]
    axis.plot(epochs, dev, "s--", label="greedy, dev")
    axis.axhline(start, color="grey", linewidth=0.8, label="cross-entropy model, dev")
    axis.set_xlabel("epoch (0: before self-critical training)")
    axis.set_ylabel("CIDEr-D (training document frequencies)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def shown_picture(picture) -> Image.Image:
    """A picture (a path or a PIL image) at most 320 pixels a side, its aspect kept."""
    image = open_picture(picture)
    image.thumbnail((320, 320))
    return image


def beam_figure(picture, steps: list[list[dict]], length_penalty: float = 1.0) -> Figure:
    """Beam search on one picture: the picture, the surviving beams of each step with
    their total log-probability, and the final choice by score / length ** penalty."""
    image = shown_picture(picture)
    lines = []
    for number, beams in enumerate(steps, start=1):
        for rank, beam in enumerate(beams):
            label = f"step {number:2d}" if rank == 0 else ""
            end = " (ended)" if beam["finished"] else ""
            lines.append(
                f"{label:8s}{beam['score']:7.2f}  {' '.join(beam['words'])}{end}"
            )
    last = sorted(
        steps[-1],
        key=lambda b: -b["score"] / len(b["words"]) ** length_penalty,
    )
    lines += ["", f"the pick: total / length ** {length_penalty:g}"]
    for rank, beam in enumerate(last):
        score = beam["score"] / len(beam["words"]) ** length_penalty
        mark = "  <- chosen" if rank == 0 else ""
        lines.append(
            f"  {beam['score']:6.2f} / {len(beam['words']):2d} ** {length_penalty:g}"
            f" = {score:6.3f}  {' '.join(beam['words'])}{mark}"
        )
    # The picture above the text, as wide as the text is tall allows: big enough to
    # see what the beams are talking about.
    text_inches = 0.19 * len(lines) + 0.3
    figure, (top, bottom) = subplots(
        2,
        1,
        figsize=(COLUMN_INCHES, PICTURE_INCHES + text_inches),
        gridspec_kw={"height_ratios": [PICTURE_INCHES, text_inches]},
    )
    top.imshow(image)
    top.axis("off")
    bottom.axis("off")
    bottom.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=10)
    figure.tight_layout()
    return figure


def activation_maps(
    pictures: list, titles: list[str], maps: dict[str, list[np.ndarray]]
) -> Figure:
    """Each picture with its title, then one map per encoder: the length of each grid
    cell's feature vector (brighter: more is going on there), with a colour bar."""
    columns = 1 + len(maps)
    side = COLUMN_INCHES / columns
    figure, axes = subplots(
        len(pictures),
        columns,
        figsize=(COLUMN_INCHES, (side + 0.5) * len(pictures)),
        squeeze=False,
        layout="constrained",
    )
    for row, (picture, title) in enumerate(zip(pictures, titles)):
        axes[row, 0].imshow(picture)
        axes[row, 0].set_title(title, fontsize=10, loc="left")
        for column, (label, grids) in enumerate(maps.items(), start=1):
            shown = axes[row, column].imshow(grids[row], cmap="viridis")
            axes[row, column].set_title(label, fontsize=10)
            figure.colorbar(shown, ax=axes[row, column], fraction=0.046, pad=0.04)
        for axis in axes[row]:
            axis.axis("off")
    return figure


def bleu_by_length(
    references: dict[str, list[str]],
    hypotheses: dict[str, str],
    edges=(0, 6, 9, 12, 100),
) -> Figure:
    """Corpus BLEU-4 of the images grouped by the length of their generated caption."""
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
    figure, axis = subplots(figsize=(6, 3))
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
