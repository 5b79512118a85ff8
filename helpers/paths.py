"""Project paths, anchored on this package so they never depend on the working directory."""

import os
from pathlib import Path

from helpers.config import Config

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
# $CAPTION_ARTIFACTS moves every run's output elsewhere (tests use a temporary folder).
ARTIFACTS = Path(os.environ.get("CAPTION_ARTIFACTS", ROOT / "artifacts"))
NOTEBOOKS = ROOT / "notebooks"


def data_dir(cfg: Config) -> Path:
    """Folder holding the profile's dataset (absolute paths are kept as given)."""
    path = Path(cfg.data_dir)
    return path if path.is_absolute() else ROOT / path


def artifacts_dir(cfg: Config) -> Path:
    """Folder for everything a run of this profile writes; created on demand."""
    path = ARTIFACTS / cfg.profile
    path.mkdir(parents=True, exist_ok=True)
    return path
