"""Hosted kernels, Google Colab and Kaggle: which one this is, and Kaggle's folders.

Every notebook's first code cell (the text of `notebooks/setup_cell.py`) installs this
package on a host; docs/hosted.md says how to run the series there.

    python -m helpers.hosts    # copy notebooks/setup_cell.py into every notebook
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HOST_VARIABLE = "CAPTION_HOST"  # "colab" or "kaggle": as if on that host (tests)
HOSTS = ("colab", "kaggle")
DATA_VARIABLE = "CAPTION_DATA_DIR"  # the data folder of every profile, read as given
# Where Kaggle mounts attached datasets (read-only) and keeps a notebook's outputs.
KAGGLE_INPUT_VARIABLE = "CAPTION_KAGGLE_INPUT"  # another input root (tests)
KAGGLE_INPUT = Path("/kaggle/input")
KAGGLE_WORKING = Path("/kaggle/working")
# Kaggle's copy of Flickr8k (adityajn105/flickr8k): captions.txt beside Images/. It is
# looked for this many folders below the input root, in at most MAX_FOLDERS folders.
SEARCH_DEPTH = 4
MAX_FOLDERS = 2000
SETUP_TAG = "hosted-setup"  # the tag of the setup cell in every notebook


def host() -> str | None:
    """Which host this is: colab, kaggle or None (one's own machine); $CAPTION_HOST
    decides first."""
    forced = os.environ.get(HOST_VARIABLE)
    if forced:
        if forced not in HOSTS:
            raise ValueError(f"{HOST_VARIABLE}={forced!r}: expected one of {HOSTS}")
        return forced
    if "COLAB_RELEASE_TAG" in os.environ or _importable("google.colab"):
        return "colab"
    if "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
        return "kaggle"
    return None


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # its parent package is missing
        return False


def kaggle_flickr8k(root: str | Path | None = None) -> Path | None:
    """The first folder (breadth first, by name) under Kaggle's input root that holds
    Flickr8k as Kaggle has it, `captions.txt` and `Images/`; None if there is none."""
    root = Path(root or os.environ.get(KAGGLE_INPUT_VARIABLE) or KAGGLE_INPUT)
    level, seen = [root], 0
    for _ in range(SEARCH_DEPTH + 1):
        for folder in level:
            if (folder / "captions.txt").is_file() and (folder / "Images").is_dir():
                return folder
        below = []
        for folder in level:
            seen += 1
            if seen > MAX_FOLDERS:
                return None
            try:
                below += sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:  # unreadable or gone: not ours to look into
                continue
        level = below
    return None


def data_folder(profile_data_dir: str, sample_images: int) -> Path | None:
    """The data folder the environment sets for a profile, or None (its own).

    $CAPTION_DATA_DIR first (it must exist), else on Kaggle an attached Flickr8k for
    the profiles that read Flickr8k (their folder is named flickr8k).
    """
    if value := os.environ.get(DATA_VARIABLE):
        folder = Path(value).expanduser().resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"{DATA_VARIABLE}={value}: no such folder")
        return folder
    if (
        host() == "kaggle"
        and not sample_images
        and Path(profile_data_dir).name == "flickr8k"
    ):
        return kaggle_flickr8k()
    return None


# The notebooks of a checkout, and the one text of their setup cells.
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SETUP_CELL = "setup_cell.py"


def write_setup_cells(notebooks: Path = NOTEBOOKS) -> list[Path]:
    """Rewrite the setup cell of every notebook in `notebooks` from its
    `setup_cell.py` (inserted as the first code cell where there is none); the
    notebooks changed."""
    import nbformat

    text = (notebooks / SETUP_CELL).read_text().strip()
    # Folded in Jupyter and Colab (its `@title` line), its code left out of the HTML
    # copies: a reader meets the title, then the notebook's own first cell.
    metadata = {"tags": [SETUP_TAG, "hide-input"], "jupyter": {"source_hidden": True}}
    changed = []
    for path in sorted(notebooks.glob("[0-9][0-9]*_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cells = [c for c in notebook.cells if SETUP_TAG in c.metadata.get("tags", [])]
        if cells and cells[0].source == text and cells[0].metadata == metadata:
            continue
        if cells:
            cells[0].source, cells[0].metadata = text, nbformat.from_dict(metadata)
        else:  # the first code cell, after the title
            cell = nbformat.v4.new_code_cell(text, metadata=metadata)
            if notebook.nbformat_minor < 5:  # cell ids came with nbformat 4.5
                del cell["id"]
            first = next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code")
            notebook.cells.insert(first, cell)
        nbformat.write(notebook, path)
        changed.append(path)
    return changed


def main() -> int:
    if not (NOTEBOOKS / SETUP_CELL).is_file():
        print(
            f"error: no {NOTEBOOKS / SETUP_CELL}: run this in a checkout", file=sys.stderr
        )
        return 2
    for path in write_setup_cells():
        print(f"rewrote the setup cell of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
