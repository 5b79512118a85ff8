"""Readers for each caption file format, with every known quirk handled or reported.

Each reader returns image name -> raw captions and raises ValueError naming the file and
line (or the JSON entry) for anything it cannot read; repairs and repeats are appended
to `notes` as readable sentences. `helpers.data` decides which files a folder holds.
"""

from __future__ import annotations

import collections
import csv
import io
import re
from pathlib import Path

from helpers.files import MAX_TEXT_BYTES, read_json, read_regular

# Flickr8k's official split files (the sample writes the same ones).
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
# `<image>#<k><TAB or spaces><caption>`: Flickr8k's and Flickr30k's token files.
_TOKEN_LINE = re.compile(r"^(?P<image>[^#\s]+)#(?P<index>\d+)[\t ]+(?P<caption>.*\S)\s*$")


# The longest line a caption file may hold: a caption is under 1 kB in every dataset
# we read, so a longer line is a file that is not what its name says.
MAX_LINE_BYTES = 64 * 2**10


def read_text(path: Path) -> str:
    """A UTF-8 text file (a leading BOM dropped); ValueError naming the file and line.

    Only a regular file of at most MAX_TEXT_BYTES is read (not a pipe or a device),
    with no NUL byte and no line over MAX_LINE_BYTES."""
    raw = read_regular(path, MAX_TEXT_BYTES)
    if (nul := raw.find(b"\0")) != -1:
        line = raw.count(b"\n", 0, nul) + 1
        raise ValueError(f"{path}:{line}: a NUL byte (a binary file, not captions?)")
    start = 0
    while len(raw) - start > MAX_LINE_BYTES:
        end = raw.rfind(b"\n", start, start + MAX_LINE_BYTES + 1)
        if end == -1:
            line = raw.count(b"\n", 0, start) + 1
            raise ValueError(
                f"{path}:{line}: a line over {MAX_LINE_BYTES:,} bytes (not captions?)"
            )
        start = end + 1
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid UTF-8 ({error.reason})") from None
    if "\ufeff" in text:  # Files joined with `cat` keep the second one's BOM.
        line = text[: text.index("\ufeff")].count("\n") + 1
        raise ValueError(f"{path}:{line}: a byte-order mark inside the file")
    return text


def read_lines(path: Path):
    """Yield (line number, text) with BOM, CRLF and surrounding blanks removed."""
    for number, line in enumerate(io.StringIO(read_text(path), newline=None), start=1):
        if text := line.strip():
            yield number, text


def read_token_file(path: Path, notes: list[str]) -> dict[str, list[str]]:
    """Parse `<image>#<k><TAB or spaces><caption>` lines (Flickr8k and Flickr30k)."""
    captions: dict[str, list[str]] = collections.defaultdict(list)
    first_line: dict[tuple[str, str], int] = {}
    duplicates = []
    for number, text in read_lines(path):
        match = _TOKEN_LINE.match(text)
        if not match:
            raise ValueError(
                f"{path}:{number}: expected '<image>#<k><TAB><caption>', got {text[:80]!r}"
            )
        key = (match["image"], match["index"])
        if key in first_line:
            duplicates.append(f"{key[0]}#{key[1]} (lines {first_line[key]} and {number})")
            continue
        first_line[key] = number
        captions[match["image"]].append(match["caption"])
    _note_repeats(notes, path, "duplicate caption keys", duplicates)
    return dict(captions)


def _note_repeats(notes: list[str], path: Path, what: str, repeats: list[str]) -> None:
    if repeats:
        notes.append(
            f"{path.name}: {len(repeats)} {what}, kept the first of each: "
            + ", ".join(repeats[:5])
        )


def read_kaggle_csv(path: Path, notes: list[str]) -> dict[str, list[str]]:
    """Parse the Kaggle Flickr8k `captions.txt`: a real CSV with header image,caption.

    A row must sit on one line: a quote left open would otherwise swallow the rest
    of the file into one caption. A repeated row is kept as a reference of its own
    and reported: in the original token file these are two annotators' identical
    sentences under different numbers (`2305437797_e6c3460190.jpg#2` and `#3`), and
    published scores count both.
    """
    reader = csv.reader(io.StringIO(read_text(path), newline=""), strict=True)
    captions: dict[str, list[str]] = collections.defaultdict(list)
    first_line: dict[tuple[str, str], int] = {}
    duplicates, header = [], None
    line = 1  # where the next row starts
    try:
        for row in reader:
            number, line = line, reader.line_num + 1
            if reader.line_num > number:
                raise ValueError(
                    f"{path}:{number}: this row runs on to line {reader.line_num} "
                    "(a quote that is never closed?)"
                )
            row = [field.strip() for field in row]
            if not any(row):
                continue
            if header is None:
                header = row
                if header != ["image", "caption"]:
                    raise ValueError(
                        f"{path}:{number}: expected the header 'image,caption', got {row}"
                    )
                continue
            if len(row) != 2 or not all(row):
                raise ValueError(f"{path}:{number}: expected 'image,caption', got {row}")
            if tuple(row) in first_line:
                duplicates.append(f"{row[0]} (lines {first_line[tuple(row)]}, {number})")
            first_line.setdefault(tuple(row), number)
            captions[row[0]].append(row[1])
    except csv.Error as error:
        raise ValueError(
            f"{path}:{line}: {error} (a quote that is never closed?)"
        ) from None
    if duplicates:
        notes.append(
            f"{path.name}: {len(duplicates)} repeated row(s), each kept as a reference "
            "of its own (two annotators wrote the same sentence): "
            + ", ".join(duplicates[:5])
        )
    return dict(captions)


def read_flickr30k_csv(path: Path, notes: list[str]) -> dict[str, list[str]]:
    """Parse the Kaggle Flickr30k `results.csv`: `image_name| comment_number| comment`."""
    captions: dict[str, list[str]] = collections.defaultdict(list)
    repaired = []
    for number, text in read_lines(path):
        fields = [field.strip() for field in text.split("|")]
        if number == 1 and fields[0] == "image_name":
            continue
        if len(fields) == 2 and re.match(r"^\d\s+\S", fields[1]):
            # A known row lost the second delimiter: "x.jpg| 4 A dog runs ...".
            fields = [fields[0], *fields[1].split(maxsplit=1)]
            repaired.append(number)
        if len(fields) != 3 or not fields[0] or not fields[2]:
            raise ValueError(
                f"{path}:{number}: expected 'image_name| comment_number| comment', "
                f"got {text[:80]!r}"
            )
        captions[fields[0]].append(fields[2])
    if repaired:
        notes.append(f"{path.name}: repaired a missing '|' on lines {repaired}")
    return dict(captions)


def read_coco(paths: list[Path]) -> dict[str, list[str]]:
    """Parse COCO `captions_*.json` files into file name -> captions."""
    captions: dict[str, list[str]] = collections.defaultdict(list)
    for path in paths:
        images, annotations = _fields(
            read_json(path), str(path), images=list, annotations=list
        )
        names = dict(
            _fields(image, f"{path}: images[{i}]", id=int, file_name=str)
            for i, image in enumerate(images)
        )
        for i, annotation in enumerate(annotations):
            where = f"{path}: annotations[{i}]"
            image_id, caption = _fields(annotation, where, image_id=int, caption=str)
            if image_id not in names:
                raise ValueError(f"{where}: image_id {image_id} names no image")
            captions[names[image_id]].append(caption.strip())
    return dict(captions)


def read_karpathy(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Parse a Karpathy `dataset_*.json` into (captions, splits)."""
    (images,) = _fields(read_json(path), str(path), images=list)
    captions, splits = {}, collections.defaultdict(list)
    for i, image in enumerate(images):
        where = f"{path}: images[{i}]"
        split, name, sentences = _fields(
            image, where, split=str, filename=str, sentences=list
        )
        if split not in KARPATHY_SPLITS:
            raise ValueError(f"{where}: unknown split {split!r}")
        captions[name] = [
            _fields(sentence, f"{where}.sentences[{k}]", raw=str)[0].strip()
            for k, sentence in enumerate(sentences)
        ]
        splits[KARPATHY_SPLITS[split]].append(name)
    return captions, dict(splits)


def _fields(item, where: str, **types) -> list:
    """The named fields of a JSON object, each checked for presence and type."""
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(item).__name__}")
    for key, kind in types.items():
        if not isinstance(item.get(key), kind):
            raise ValueError(
                f"{where}: needs {key!r} as {kind.__name__}, got {item.get(key)!r:.60}"
            )
    return [item[key] for key in types]


def read_split_file(path: Path) -> list[str]:
    """One image name per line."""
    return [text for _, text in read_lines(path)]


def read_split_lists(folder: Path) -> dict[str, list[str]]:
    """{split: image names} from Flickr8k's three split files in `folder`; {} unless
    all three are there."""
    files = {name: folder / file for name, file in SPLIT_FILES.items()}
    if not all(path.is_file() for path in files.values()):
        return {}
    return {name: read_split_file(path) for name, path in files.items()}


def split_in_order(order: list[str], fraction: float = 0.125) -> dict[str, list[str]]:
    """test, dev and train (each sorted) from names already in random order, in
    Flickr8k's proportions (6:1:1)."""
    held_out = max(1, round(len(order) * fraction))
    return {
        "train": sorted(order[2 * held_out :]),
        "dev": sorted(order[held_out : 2 * held_out]),
        "test": sorted(order[:held_out]),
    }
