"""The feature cache on disk: one memory-mapped array of every picture's grid of
features (float16 where it fits), its index (row order, encoder, layer, size, weights),
written batch by batch so that a killed run resumes, and read with checks.

`helpers.features` fills it; training, decoding, fine-tuning and SCST read it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from helpers import devices
from helpers.encoders import ENCODERS
from helpers.files import read_json, write_json_atomic

FEATURES, INDEX, PROGRESS = "features.npy", "features.json", "features.progress.json"
LOCK = "features.lock"


def _finished(out: Path, settings: dict, names: list[str]) -> dict | None:
    """The finished cache in `out` if it holds these settings and images, else None
    (saying on stderr why a cache that is there is replaced)."""
    if not (out / INDEX).exists():
        return None
    try:
        index = read_json(out / INDEX)
        _open_cache(out, index)
        if same(index, settings) and set(names) <= set(index["names"]):
            return index
        reason = "made with other settings or for other images"
    except ValueError as error:
        reason = str(error)
    print(f"{out}: replacing the feature cache ({reason})", file=sys.stderr)
    return None


def _progress(out: Path, fingerprint: str, shape: tuple, dtype: str) -> dict:
    """The state of a killed run of the same work, or a fresh one (any other state,
    damaged or not, starts over)."""
    partial = out / (FEATURES + ".partial")
    try:
        state = read_json(out / PROGRESS) if (out / PROGRESS).exists() else {}
    except ValueError:
        state = {}
    if (
        isinstance(state, dict)
        and partial.exists()
        and state.get("settings") == fingerprint
    ):
        return state
    for stale in (out / INDEX, out / FEATURES, out / PROGRESS, partial):
        stale.unlink(missing_ok=True)
    np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape).flush()
    state = {"settings": fingerprint, "done": 0, "skipped": {}}
    write_json_atomic(out / PROGRESS, state)
    return state


def write(
    out: Path,
    settings: dict,
    names: list[str],
    build,
    batches,
    *,
    batch_size: int,
    progress: bool,
    strategy,
):
    """Write the features of `image_paths` into the cache folder `out` (holding its
    lock): `build()` makes the model and `batches(names, size)` yields its inputs."""
    encoder = settings["encoder"]
    if index := _finished(out, settings, names):
        return index
    with strategy.scope():
        model = build()
    forward = devices.replicated(model, strategy)
    batch_size *= strategy.num_replicas_in_sync
    dtype = ENCODERS[encoder].dtype
    shape = (
        len(names),
        model.output_shape[1] * model.output_shape[2],
        model.output_shape[3],
    )
    # The progress file, rewritten after every batch, names the work by its hash.
    fingerprint = hashlib.sha256(json.dumps([settings, names], sort_keys=True).encode())
    state = _progress(out, fingerprint.hexdigest(), shape, dtype)
    partial = out / (FEATURES + ".partial")
    array = _open_array(partial, shape, dtype, mode="r+")
    start, skipped = state["done"], dict(state["skipped"])
    bar = tqdm(total=len(names), initial=start, unit="img", disable=not progress)
    row, began = start, time.perf_counter()
    for images, errors in batches(names[start:], batch_size):
        features = forward(images).reshape(len(images), *shape[1:])
        for offset, error in enumerate(np.asarray(errors)):
            if error:
                skipped[names[row + offset]] = error.decode()
                features[offset] = 0
        with np.errstate(over="ignore"):  # checked just below, with a clear message
            features = features.astype(dtype)
        finite = np.isfinite(features).reshape(len(images), -1).all(axis=1)
        if not finite.all():
            bad = [names[row + i] for i in np.flatnonzero(~finite)]
            raise ValueError(
                f"{out}: the {encoder} features of {bad[:3]} do not fit {dtype} "
                "(inf or NaN); nothing non-finite is written to the cache"
            )
        array[row : row + len(images)] = features
        array.flush()
        row += len(images)
        write_json_atomic(out / PROGRESS, {**state, "done": row, "skipped": skipped})
        bar.update(len(images))
    bar.close()
    if progress:  # the bar's last state is not kept everywhere (HTML copies)
        seconds = max(time.perf_counter() - began, 1e-9)
        print(
            f"{encoder} {settings['layer']}: {row - start} images in {seconds:.0f} s "
            f"({(row - start) / seconds:.1f} images/s)"
        )
    del array
    partial.replace(out / FEATURES)
    index = {"names": names, **settings, "shape": list(shape), "dtype": dtype}
    write_json_atomic(out / INDEX, {**index, "skipped": skipped})
    (out / PROGRESS).unlink()
    return {**index, "skipped": skipped}


def rows_of(names: list[str], feature_names: list[str]) -> np.ndarray:
    """The memmap row of each image in `names`; ValueError if some have none."""
    position = {name: row for row, name in enumerate(feature_names)}
    missing = [name for name in names if name not in position]
    if missing:
        raise ValueError(
            f"{len(missing)} image(s) have no feature row, e.g. {missing[:3]}"
        )
    return np.array([position[name] for name in names], np.int64)


def load_features(folder: str | Path) -> tuple[np.ndarray, dict]:
    """The memory-mapped feature array (read-only) and its index, checked together."""
    folder = Path(folder)
    if not (folder / INDEX).exists():
        raise FileNotFoundError(
            f"{folder}: no finished feature cache; notebook 02 (02_features) or "
            "`python -m helpers.features` writes it"
        )
    index = read_json(folder / INDEX)
    return _open_cache(folder, index), index


def _open_cache(folder: Path, index: dict) -> np.ndarray:
    """The finished cache's array; ValueError naming the file if it disagrees with INDEX."""
    try:
        shape, dtype = tuple(index["shape"]), index["dtype"]
        if len(index["names"]) != shape[0]:
            raise ValueError(f"{len(index['names'])} names for {shape[0]} rows")
    except (KeyError, TypeError, IndexError, ValueError) as error:
        raise ValueError(f"{folder / INDEX}: not a feature index ({error})") from None
    return _open_array(folder / FEATURES, shape, dtype)


def _open_array(path: Path, shape: tuple, dtype: str, mode: str = "r") -> np.ndarray:
    """A memory-mapped .npy of exactly this shape and dtype, else a ValueError naming it."""
    try:
        array = np.load(path, mmap_mode=mode)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path}: missing, cut short or not a .npy file ({error})"
        ) from None
    if array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
        raise ValueError(
            f"{path}: holds {array.dtype} {list(array.shape)}, expected {dtype} "
            f"{list(shape)}; extract the features again"
        )
    return array


def same(saved: dict, settings: dict) -> bool:
    return all(saved.get(key) == value for key, value in settings.items())
