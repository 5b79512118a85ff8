"""What a `.keras` file (a zip) may hold, checked before Keras reads anyone's file."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

MAX_PART_BYTES = 512 * 2**20  # a decoder or tuned layers: tens of MB
# A .keras file is a zip; these are its only members, the sizes uncompressed (Keras
# unpacks them), so a small file cannot make Keras read or write gigabytes.
KERAS_MEMBERS = {
    "metadata.json": 2**16,
    "config.json": 4 * 2**20,  # the sample's: 6 kB (mostly the feature statistics)
    "model.weights.h5": MAX_PART_BYTES,
}
# The sizes a decoder's config may ask for, checked before Keras builds anything
# (Flickr8k's decoder: 512 units, 2,900 words; COCO's vocabulary: about 10,000).
DECODER_LIMITS = {
    "vocabulary_size": (1, 50_000),
    "grid": (1, 4096),  # 64x64: VGG16 at 1024 px, the largest image_size
    "feature_dim": (1, 4096),
    "embedding_dim": (1, 1024),
    "units": (1, 2048),
    "attention_dim": (1, 1024),
    "context_dim": (0, 1024),
    # the Transformer (flickr8k's: 3 blocks of 8 heads, 512 wide, 2,048 feed-forward)
    "blocks": (1, 12),
    "heads": (1, 64),
    "model_dim": (1, 2048),
    "feed_forward": (1, 8192),
    "max_length": (1, 512),
}


def check_keras_archive(path: Path) -> None:
    """ValueError naming `path` unless it is a zip of KERAS_MEMBERS within their sizes
    whose config asks for sizes within DECODER_LIMITS: checked before Keras sees it."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            unknown = sorted({m.filename for m in members} - set(KERAS_MEMBERS))
            if unknown or len(members) != len(KERAS_MEMBERS):
                raise ValueError(
                    f"{path}: holds {len(members)} members, not {sorted(KERAS_MEMBERS)}"
                )
            for member in members:
                if member.file_size > KERAS_MEMBERS[member.filename]:
                    raise ValueError(
                        f"{path}: {member.filename} is {member.file_size:,} bytes "
                        f"unpacked, over the {KERAS_MEMBERS[member.filename]:,} limit"
                    )
            sizes = list(_sizes(json.loads(archive.read("config.json"))))
    except (zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a Keras file ({error})") from None
    except RecursionError:
        raise ValueError(f"{path}: config.json nested too deeply") from None
    for name, value in sizes:
        low, high = DECODER_LIMITS[name]
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not low <= value <= high
        ):
            raise ValueError(f"{path}: {name} = {value!r:.40} is outside {low}..{high}")


def _sizes(item):
    """(name, value) of every DECODER_LIMITS key anywhere in a parsed JSON config."""
    if isinstance(item, dict):
        for key, value in item.items():
            if key in DECODER_LIMITS:
                yield key, value
            yield from _sizes(value)
    elif isinstance(item, list):
        for value in item:
            yield from _sizes(value)
