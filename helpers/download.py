"""Download and unpack datasets: resumable, checksummed, and never half-extracted.

python -m helpers.data download flickr8k --to data/     # about 1 GB
python -m helpers.data download coco --to data/         # COCO 2014: about 19 GB
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import NamedTuple

from tqdm.auto import tqdm

from helpers.files import OWNED


class Remote(NamedTuple):
    """One archive of a dataset: where it is, what it unpacks to, how to check it."""

    url: str
    target: str  # the folder it becomes inside the dataset's folder
    checksum: str | None  # "md5:<hex>" or "sha256:<hex>"; None: none is published


FLICKR8K_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
COCO_URL = "http://images.cocodataset.org/"
DATASETS = {
    # Checksums as published by the mlverse/torchvision R package.
    "flickr8k": {
        "Flickr8k_Dataset.zip": Remote(
            FLICKR8K_URL + "Flickr8k_Dataset.zip",
            "Flicker8k_Dataset",
            "md5:f18a1e2920de5bd84dae7cf08ec78978",
        ),
        "Flickr8k_text.zip": Remote(
            FLICKR8K_URL + "Flickr8k_text.zip",
            "Flickr8k_text",
            "md5:bf6c1abcb8e4a833b7f922104de18627",
        ),
    },
    # COCO 2014 from cocodataset.org (md5 as Salesforce LAVIS checks them; the
    # annotations one is also the file's S3 ETag), and
    # Karpathy's split file, for which no checksum is published: its sha256 is printed.
    "coco": {
        "annotations_trainval2014.zip": Remote(
            COCO_URL + "annotations/annotations_trainval2014.zip",
            "annotations",
            "md5:0a379cfc70b0e71301e0f377548639bd",
        ),
        "caption_datasets.zip": Remote(
            "https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
            "karpathy",
            None,
        ),
        "val2014.zip": Remote(
            COCO_URL + "zips/val2014.zip",
            "val2014",
            "md5:a3d79f5ed8d289b7a7554ce06a5782b3",
        ),
        "train2014.zip": Remote(
            COCO_URL + "zips/train2014.zip",
            "train2014",
            "md5:0da8c0bd3d6becc4dcb32757491aca88",
        ),
    },
}
RETRY_BACKOFF_SECONDS = 2.0  # doubled after each failed attempt


def file_checksum(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str, destination: Path, checksum: str | None, retries: int = 3
) -> Path:
    """Download with resume (HTTP Range) into `<destination>.part`, verify, rename.

    `checksum` is "sha256:<hex>" or "md5:<hex>"; None (nothing published to check
    against) prints the file's sha256 instead. A dropped connection or an HTTP 5xx
    is retried after 2, 4, 8 ... seconds and continues where it stopped; a partial
    file survives an interruption and the next call continues it. A corrupt download
    is deleted. A file already at `destination` is never replaced (it may be the
    user's): it is verified against `checksum` and refused if it differs, or kept and
    its sha256 printed when there is no checksum.
    """
    algorithm, expected = checksum.split(":", 1) if checksum else ("sha256", None)
    destination = Path(destination)
    if destination.exists():
        return _already_there(destination, algorithm, expected)
    partial = destination.with_name(destination.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, partial, destination.name)
            break
        except urllib.error.HTTPError as error:
            if error.code == 416:  # Range beyond the end: the part file is complete.
                break
            if error.code < 500 or attempt == retries:  # 4xx will not get better
                raise RuntimeError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:
            if getattr(error, "errno", None) == errno.ENOSPC:
                raise _disk_full(partial) from None
            if attempt == retries:
                kept = partial.stat().st_size if partial.exists() else 0
                raise RuntimeError(
                    f"{url}: download interrupted ({error!r}); {partial} keeps the "
                    f"{kept} bytes received, run the same command again to resume"
                ) from None
        time.sleep(RETRY_BACKOFF_SECONDS * 2**attempt)
    _verify(partial, destination.name, algorithm, expected)
    partial.replace(destination)
    return destination


def _already_there(path: Path, algorithm: str, expected: str | None) -> Path:
    """A file at the destination, checked and kept as it is."""
    actual = file_checksum(path, algorithm)
    if expected is None:
        print(
            f"{path}: already there, kept; no published checksum, its sha256 is {actual}"
        )
    elif actual != expected:
        raise ValueError(
            f"{path}: already on disk but its {algorithm} is {actual}, "
            f"expected {expected}; delete or move it and run the command again"
        )
    return path


def _fetch(url: str, partial: Path, label: str) -> None:
    """One attempt: append the rest of `url` to `partial` (all of it if the server
    ignores the range), with a progress bar; IncompleteRead if the body is cut."""
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"})
    with urllib.request.urlopen(request, timeout=60) as response:
        if response.status != 206:  # The server ignored the range: start over.
            offset = 0
        total = offset + int(response.headers.get("Content-Length", 0))
        with (
            open(partial, "ab" if offset else "wb") as file,
            tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=label
            ) as bar,
        ):
            while chunk := response.read(1 << 16):
                file.write(chunk)
                bar.update(len(chunk))
    if partial.stat().st_size < total:
        raise http.client.IncompleteRead(b"", total - partial.stat().st_size)


def _verify(partial: Path, label: str, algorithm: str, expected: str | None) -> None:
    """Check a finished download; a corrupt one is deleted."""
    actual = file_checksum(partial, algorithm)
    if expected is None:
        print(f"{label}: no published checksum; its sha256 is {actual}")
    elif actual != expected:
        partial.unlink()
        raise ValueError(
            f"{label}: {algorithm} is {actual}, expected {expected}; the corrupt "
            "download was deleted, run the command again"
        )


def extract_zip(archive: Path, target: Path) -> Path:
    """Extract `archive` so that `target` appears complete or not at all.

    Members go into a fresh temporary folder beside `target` (ours alone, so removing
    it never touches anything else), which is renamed into place when complete.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        return target
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        with zipfile.ZipFile(archive) as bundle:
            if not bundle.namelist():
                raise ValueError(f"{archive}: the zip file is empty")
            broken = bundle.testzip()
            if broken:
                raise ValueError(f"{archive}: member {broken} is corrupt")
            bundle.extractall(staging)
        shutil.rmtree(staging / "__MACOSX", ignore_errors=True)
        entries = list(staging.iterdir())
        # An archive holding one folder gives that folder; loose files go into target.
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        (source / OWNED).touch()  # ours: a later job may replace it, never the user's
        source.replace(target)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{archive}: not a valid zip file ({error})") from None
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise _disk_full(target) from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _disk_full(path: Path) -> OSError:
    free = shutil.disk_usage(Path(path).parent).free / 2**20
    return OSError(
        errno.ENOSPC,
        f"{path}: the disk is full ({free:.0f} MB free); free some space and run the "
        "same command again (finished files are kept)",
    )


def download_dataset(
    name: str, to: str | Path, base_url: str | None = None, files: dict | None = None
) -> Path:
    """Download and extract the archives of dataset `name` into `<to>/<name>/`.

    `base_url` replaces each archive's location (tests serve them on loopback).
    """
    folder = Path(to) / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, remote in (files or DATASETS[name]).items():
        url = base_url + file if base_url else remote.url
        archive = download_file(url, folder / file, remote.checksum)
        extract_zip(archive, folder / remote.target)
    return folder
