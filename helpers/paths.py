"""Project paths: where the data and everything a run writes live, never in
site-packages.

In a checkout (this package beside `notebooks/`) both sit in the checkout, whatever
the working directory. Installed as a package (a hosted kernel, docs/hosted.md) they
sit in the working directory, on Kaggle in /kaggle/working. $CAPTION_ARTIFACTS moves
the outputs anywhere (tests use a temporary folder).
"""

import os
from pathlib import Path

from helpers import hosts
from helpers.config import Config

ROOT = Path(__file__).resolve().parent.parent  # the checkout, if the package is in one
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS_VARIABLE = "CAPTION_ARTIFACTS"


def in_checkout(root: Path | None = None) -> bool:
    """Whether `root` (default ROOT) is a checkout of the series, not the folder of
    installed packages."""
    root = root or ROOT
    return (
        root.name not in ("site-packages", "dist-packages")
        and (root / "notebooks").is_dir()
    )


def work_folder(root: Path | None = None) -> Path:
    """The folder relative data folders and `artifacts/` are in: the checkout, else
    Kaggle's output folder on Kaggle (if there: CAPTION_HOST=kaggle elsewhere), else
    the working directory."""
    root = root or ROOT
    if in_checkout(root):
        return root
    on_kaggle = hosts.host() == "kaggle" and hosts.KAGGLE_WORKING.is_dir()
    return hosts.KAGGLE_WORKING if on_kaggle else Path.cwd()


def artifacts_root(root: Path | None = None) -> Path:
    """$CAPTION_ARTIFACTS, else `artifacts/` in the work folder."""
    if value := os.environ.get(ARTIFACTS_VARIABLE):
        return Path(value).expanduser().absolute()
    return work_folder(root) / "artifacts"


ARTIFACTS = artifacts_root()


def data_dir(cfg: Config) -> Path:
    """Folder holding the profile's dataset (absolute paths are kept as given)."""
    path = Path(cfg.data_dir).expanduser()
    return path if path.is_absolute() else work_folder() / path


def artifacts_dir(cfg: Config) -> Path:
    """Folder for everything a run of this profile writes; created on demand."""
    path = ARTIFACTS / cfg.profile
    path.mkdir(parents=True, exist_ok=True)
    return path
