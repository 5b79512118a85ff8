"""Atomic file writes, bounded reads of untrusted files, and folder ownership.

Every folder our jobs write carries the marker file `OWNED`. Only such a folder is ever
emptied or replaced; any other non-empty folder is refused with a ValueError, so a
wrong path can never delete a user's files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

OWNED = ".written-by-captioning"


def printable_output() -> None:
    """Let stdout and stderr print any file name: bytes that are not UTF-8 (kept as
    surrogates by `os.fsdecode`) show as escapes instead of crashing the print."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; results are for sharing
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj) -> Path:
    """Write an object as indented JSON atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


MAX_JSON_BYTES = 64 * 2**20  # an index of COCO's 123,287 pictures is about 5 MB
MAX_TEXT_BYTES = 512 * 2**20  # caption files: Flickr30k's is 16 MB, COCO's 100 MB


def file_problem(path: str | Path, empty: bool = False) -> str | None:
    """What keeps `path` from being a regular file we may open, in one line naming it
    ("is a directory", "is not a regular file", "is empty"...), or None. Only
    `os.stat` is used: nothing is opened."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return f"{os.fsdecode(path)}: no such file"
    except OSError as error:  # a symbolic link loop, a folder we may not enter, ...
        return f"{os.fsdecode(path)}: cannot be read ({error.strerror})"
    return _mode_problem(path, status, empty)


def _mode_problem(path, status: os.stat_result, empty: bool) -> str | None:
    if stat.S_ISDIR(status.st_mode):
        what = "is a directory"
    elif not stat.S_ISREG(status.st_mode):
        what = "is not a regular file (a pipe, socket or device)"
    elif status.st_size == 0 and not empty:
        what = "is empty"
    else:
        return None
    return f"{os.fsdecode(path)}: {what}"


def open_regular(path: str | Path, empty: bool = True) -> BinaryIO:
    """`path` opened for reading if `file_problem` finds nothing wrong with it (checked
    again on the open file, in case it was swapped); else ValueError saying what it
    is. A pipe or device is never opened."""
    problem = file_problem(path, empty)
    if problem:
        raise ValueError(problem)
    try:  # O_NONBLOCK: a pipe swapped in since the check does not block
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise ValueError(
            f"{os.fsdecode(path)}: cannot be opened ({error.strerror})"
        ) from None
    problem = _mode_problem(path, os.fstat(handle), empty)
    if problem:
        os.close(handle)
        raise ValueError(problem)
    return os.fdopen(handle, "rb")


def read_regular(path: str | Path, limit: int, inside: Path | None = None) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; with `inside`, one that
    lies in that folder (a symbolic link out of it is refused). A FIFO, a device or a
    folder is refused before it is read (`open_regular`), so reading never blocks or
    runs out of memory. ValueError naming the file."""
    path = Path(path)
    if inside is not None:
        real = path.resolve()
        if not real.is_relative_to(Path(inside).resolve()):
            raise ValueError(f"{path}: leads out of {inside} (to {real}); refused")
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        if size > limit:
            raise ValueError(f"{path}: {size:,} bytes, over the {limit:,} limit")
        data = file.read(limit + 1)
    if len(data) > limit:  # it grew while we read it
        raise ValueError(f"{path}: over the {limit:,} byte limit")
    return data


def read_json(path: str | Path, limit: int = MAX_JSON_BYTES, inside: Path | None = None):
    """Parse a JSON file (a BOM is allowed) of at most `limit` bytes; ValueError naming
    the file (and line) if it is not a regular file, too large, too deeply nested or
    not valid JSON."""
    data = read_regular(path, limit, inside)
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        line = getattr(error, "lineno", 1)
        raise ValueError(f"{path}:{line}: not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply to be ours") from None


def _check_ours(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: a file is there, not a folder; it is left alone")
    if folder.is_dir() and not (folder / OWNED).exists() and any(folder.iterdir()):
        raise ValueError(
            f"{folder}: not empty and not written by this project, so it is left "
            f"alone; choose a new or empty folder (outputs of versions before the "
            f"{OWNED} marker are not recognised: move or delete them yourself)"
        )


def claim_folder(folder: str | Path) -> Path:
    """Create `folder`, or adopt it if empty or ours; ValueError if it holds other files."""
    folder = Path(folder)
    _check_ours(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / OWNED).touch()
    return folder


def remove_folder(folder: str | Path, why: str) -> None:
    """Delete a folder we wrote, saying why on stderr; refuse any other non-empty one."""
    folder = Path(folder)
    _check_ours(folder)
    if folder.exists():
        print(f"{folder}: removing {why}", file=sys.stderr)
        shutil.rmtree(folder)


@contextlib.contextmanager
def staged(target: str | Path):
    """Yield a fresh folder beside `target`; when the block ends it replaces `target`.

    Readers see the old folder or the new one, never a mixture or a half. `target` must
    be new, empty or ours (checked first); if the block fails, the staging folder is
    removed and `target` is untouched.
    """
    target = Path(target)
    _check_ours(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    staging = claim_folder(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    os.chmod(staging, 0o755)  # mkdtemp makes it private; results are for sharing
    try:
        yield staging
        if target.exists():
            trash = Path(
                tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old.")
            )
            target.replace(trash / target.name)
            shutil.rmtree(trash)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


LEFTOVER_SECONDS = 600  # a staging folder this old was left by a killed job


def _remove_leftovers(target: Path) -> None:
    """Remove the staging folders a killed `staged` left beside `target`: ours (they
    carry the marker) and untouched for LEFTOVER_SECONDS, so never a live one."""
    for folder in target.parent.glob(f".{target.name}.*"):
        old = time.time() - folder.stat().st_mtime > LEFTOVER_SECONDS
        if folder.is_dir() and not folder.is_symlink() and old:
            if (folder / OWNED).exists() or folder.name.startswith(
                f".{target.name}.old."
            ):
                shutil.rmtree(folder, ignore_errors=True)
