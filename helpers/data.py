"""Caption datasets as users have them: Flickr8k (original and Kaggle), Flickr30k,
COCO 2014 and Karpathy split files, with every known quirk reported, never hidden.

    python -m helpers.data inspect DATA_DIR [--json]
    python -m helpers.data download flickr8k --to data/
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import hashlib
import http.client
import io
import json
import random
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from helpers.text import normalize_caption

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
# Where each layout keeps its images, in order of preference.
IMAGE_FOLDERS = [
    "Flicker8k_Dataset",  # sic: the original release misspells it
    "Flickr8k_Dataset",
    "Images",
    "flickr30k-images",
    "flickr30k_images",
    "images",
]
SPLIT_FILES = {
    "train": "Flickr_8k.trainImages.txt",
    "dev": "Flickr_8k.devImages.txt",
    "test": "Flickr_8k.testImages.txt",
}
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "dev", "test": "test"}
_TOKEN_LINE = re.compile(r"^(?P<image>[^#\s]+)#(?P<index>\d+)[\t ]+(?P<caption>.*\S)\s*$")


@dataclasses.dataclass
class Dataset:
    """Images that have both a file and captions, their splits, and what was odd."""

    layout: str
    root: Path
    captions: dict[str, list[str]]  # image name -> raw captions, usable images only
    splits: dict[str, list[str]]  # "train" / "dev" / "test" -> sorted image names
    split_source: str
    image_paths: dict[str, Path]  # image name -> file, usable images only
    missing_images: list[str]  # names with captions but no image file
    images_without_captions: list[str]  # image files no caption refers to
    unsplit_images: list[str]  # usable images in no split
    notes: list[str]  # every other quirk, one readable sentence each

    def report(self) -> dict:
        """The counts and quirks as one JSON-ready dictionary."""
        vocabulary = {
            word
            for captions in self.captions.values()
            for caption in captions
            for word in normalize_caption(caption).split()
        }
        return {
            "layout": self.layout,
            "root": str(self.root),
            "images": len(self.captions),
            "captions": sum(len(c) for c in self.captions.values()),
            "splits": {name: len(names) for name, names in self.splits.items()},
            "split_source": self.split_source,
            "unsplit_images": len(self.unsplit_images),
            "missing_images": self.missing_images,
            "images_without_captions": self.images_without_captions,
            "vocabulary": len(vocabulary),
            "notes": self.notes,
        }


# ---------------------------------------------------------------- readers


def read_lines(path: Path):
    """Yield (line number, text) with BOM, CRLF and surrounding blanks removed."""
    for number, raw in enumerate(Path(path).read_bytes().splitlines(), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(
                f"{path}:{number}: not valid UTF-8 ({error.reason})"
            ) from None
        if number == 1:
            text = text.removeprefix("\ufeff")
        text = text.strip()
        if text:
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
    if duplicates:
        notes.append(
            f"{path.name}: {len(duplicates)} duplicate caption keys, kept the first of each: "
            + ", ".join(duplicates[:5])
        )
    return dict(captions)


def read_kaggle_csv(path: Path) -> dict[str, list[str]]:
    """Parse the Kaggle Flickr8k `captions.txt`: a real CSV with header image,caption."""
    text = "\n".join(line for _, line in read_lines(path))
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header != ["image", "caption"]:
        raise ValueError(f"{path}:1: expected the header 'image,caption', got {header}")
    captions: dict[str, list[str]] = collections.defaultdict(list)
    for row in reader:
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise ValueError(
                f"{path}:{reader.line_num}: expected 'image,caption', got {row}"
            )
        captions[row[0].strip()].append(row[1].strip())
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
        content = _read_json(path)
        names = {image["id"]: image["file_name"] for image in content["images"]}
        for annotation in content["annotations"]:
            if annotation["image_id"] not in names:
                raise ValueError(
                    f"{path}: annotation {annotation.get('id')} names no image"
                )
            captions[names[annotation["image_id"]]].append(annotation["caption"].strip())
    return dict(captions)


def read_karpathy(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Parse a Karpathy `dataset_*.json` into (captions, splits)."""
    content = _read_json(path)
    captions, splits = {}, collections.defaultdict(list)
    for number, image in enumerate(content["images"]):
        if image["split"] not in KARPATHY_SPLITS:
            raise ValueError(
                f"{path}: image {number} has unknown split {image['split']!r}"
            )
        captions[image["filename"]] = [s["raw"].strip() for s in image["sentences"]]
        splits[KARPATHY_SPLITS[image["split"]]].append(image["filename"])
    return captions, dict(splits)


def read_split_file(path: Path) -> list[str]:
    """One image name per line."""
    return [text for _, text in read_lines(path)]


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}:{error.lineno}: invalid JSON ({error.msg})") from None


# ---------------------------------------------------------------- layouts


def _find(root: Path, *names: str) -> Path | None:
    """The first of `names` found in `root` or one folder below it."""
    for name in names:
        for candidate in [root / name, *sorted(root.glob(f"*/{name}"))]:
            if candidate.exists():
                return candidate
    return None


def _image_files(root: Path, layout: str) -> dict[str, Path]:
    """Image name -> path for every image file of the layout."""
    if layout == "coco2014":
        folders = [f for f in (root / "train2014", root / "val2014") if f.is_dir()]
    else:
        folder = _find(root, *IMAGE_FOLDERS)
        folders = [folder] if folder and folder.is_dir() else []
    if not folders:
        raise FileNotFoundError(
            f"{root}: found captions but no image folder (looked for {IMAGE_FOLDERS})"
        )
    return {
        path.name: path
        for folder in folders
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")
    }


def load_dataset(root: str | Path, seed: int = 1234) -> Dataset:
    """Detect the layout under `root`, parse it and report every quirk."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    notes: list[str] = []
    karpathy = _find(
        root, "dataset_flickr8k.json", "dataset_flickr30k.json", "dataset_coco.json"
    )
    split_lists: dict[str, list[str]] = {}
    split_source = ""

    if token := _find(root, "Flickr8k.token.txt"):
        layout, captions = "flickr8k-original", read_token_file(token, notes)
        split_paths = {name: token.parent / file for name, file in SPLIT_FILES.items()}
        if all(path.exists() for path in split_paths.values()):
            split_lists = {
                name: read_split_file(path) for name, path in split_paths.items()
            }
            split_source = f"official lists in {token.parent.name}/"
    elif kaggle := _find(root, "captions.txt"):
        layout, captions = "flickr8k-kaggle", read_kaggle_csv(kaggle)
    elif token := _find(root, "results_20130124.token"):
        layout, captions = "flickr30k", read_token_file(token, notes)
    elif results := _find(root, "results.csv"):
        layout, captions = "flickr30k-kaggle", read_flickr30k_csv(results, notes)
    elif coco := sorted(root.glob("annotations/captions_*2014.json")):
        layout, captions = "coco2014", read_coco(coco)
    elif karpathy:
        layout, captions = f"karpathy-{karpathy.stem.removeprefix('dataset_')}", {}
        captions = read_karpathy(karpathy)[0]
    else:
        raise ValueError(
            f"{root}: no known caption file (Flickr8k.token.txt, captions.txt, "
            "results_20130124.token, results.csv, annotations/captions_*2014.json "
            "or dataset_*.json)"
        )
    if not split_lists and karpathy:
        split_lists, split_source = (
            read_karpathy(karpathy)[1],
            f"Karpathy {karpathy.name}",
        )

    files = _image_files(root, layout)
    missing = sorted(set(captions) - set(files))
    without = sorted(set(files) - set(captions))
    usable = {name: captions[name] for name in sorted(set(captions) & set(files))}
    if missing:
        notes.append(f"{len(missing)} image(s) with captions but no file: {missing[:5]}")
    if without:
        notes.append(f"{len(without)} image file(s) without captions: {without[:5]}")

    if split_lists:
        _check_disjoint(split_lists, split_source)
        splits = {}
        for name, names in split_lists.items():
            unknown = sorted(set(names) - set(usable))
            if unknown:
                notes.append(
                    f"{split_source}: {len(unknown)} {name} name(s) without a usable image: "
                    f"{unknown[:5]}"
                )
            splits[name] = sorted(set(names) & set(usable))
        for name in ("train", "dev", "test"):
            if not splits.setdefault(name, []):
                notes.append(f"{split_source}: the {name} split is empty")
    else:
        splits = seeded_split(sorted(usable), seed)
        split_source = f"seeded split by image (seed {seed})"
    in_a_split = {name for names in splits.values() for name in names}
    unsplit = sorted(set(usable) - in_a_split)
    if unsplit:
        notes.append(f"{len(unsplit)} image(s) in no split: {unsplit[:5]}")
    return Dataset(
        layout=layout,
        root=root,
        captions=usable,
        splits=splits,
        split_source=split_source,
        image_paths={name: files[name] for name in usable},
        missing_images=missing,
        images_without_captions=without,
        unsplit_images=unsplit,
        notes=notes,
    )


def load_profile_dataset(cfg) -> Dataset:
    """The dataset a profile names: its folder, with the sample generated on first use."""
    from helpers.sample import ensure_sample

    return load_dataset(ensure_sample(cfg), seed=cfg.seed)


def seeded_split(
    names: list[str], seed: int, fraction: float = 0.125
) -> dict[str, list[str]]:
    """Split image names (never captions) into train/dev/test, like Flickr8k's 6:1:1."""
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    held_out = max(1, round(len(shuffled) * fraction))
    return {
        "train": sorted(shuffled[2 * held_out :]),
        "dev": sorted(shuffled[held_out : 2 * held_out]),
        "test": sorted(shuffled[:held_out]),
    }


def _check_disjoint(splits: dict[str, list[str]], source: str) -> None:
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = sorted(set(splits[first]) & set(splits[second]))
            if shared:
                raise ValueError(
                    f"{source}: {len(shared)} image(s) in both {first} and {second}, "
                    f"e.g. {shared[:3]}"
                )


# ---------------------------------------------------------------- download

FLICKR8K_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
# Checksums of the release files as published by the mlverse/torchvision R package.
FLICKR8K_FILES = {
    "Flickr8k_Dataset.zip": ("Flicker8k_Dataset", "md5:f18a1e2920de5bd84dae7cf08ec78978"),
    "Flickr8k_text.zip": ("Flickr8k_text", "md5:bf6c1abcb8e4a833b7f922104de18627"),
}


def file_checksum(path: Path, algorithm: str) -> str:
    """Hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, destination: Path, checksum: str, retries: int = 3) -> Path:
    """Download with resume (HTTP Range) into `<destination>.part`, verify, rename.

    `checksum` is "sha256:<hex>" or "md5:<hex>". A partial file survives an
    interruption and the next call continues it; a corrupt file is deleted.
    """
    from tqdm.auto import tqdm

    algorithm, expected = checksum.split(":", 1)
    destination = Path(destination)
    if destination.exists():
        return destination
    partial = destination.with_name(destination.name + ".part")
    for attempt in range(retries + 1):
        offset = partial.stat().st_size if partial.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                if response.status != 206:  # The server ignored the range: start over.
                    offset = 0
                total = offset + int(response.headers.get("Content-Length", 0))
                with (
                    open(partial, "ab" if offset else "wb") as file,
                    tqdm(
                        total=total,
                        initial=offset,
                        unit="B",
                        unit_scale=True,
                        desc=destination.name,
                    ) as bar,
                ):
                    while chunk := response.read(1 << 16):
                        file.write(chunk)
                        bar.update(len(chunk))
            if partial.stat().st_size < total:
                raise http.client.IncompleteRead(b"", total - partial.stat().st_size)
            break
        except urllib.error.HTTPError as error:
            if error.code == 416:  # Range beyond the end: the part file is complete.
                break
            raise RuntimeError(f"{url}: HTTP {error.code} {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:
            if attempt == retries:
                raise RuntimeError(
                    f"{url}: download interrupted ({error!r}); {partial} keeps the "
                    f"{partial.stat().st_size if partial.exists() else 0} bytes received, "
                    "run the same command again to resume"
                ) from None
    actual = file_checksum(partial, algorithm)
    if actual != expected:
        partial.unlink()
        raise ValueError(
            f"{destination.name}: {algorithm} is {actual}, expected {expected}; the corrupt "
            "download was deleted, run the command again"
        )
    partial.replace(destination)
    return destination


def extract_zip(archive: Path, target: Path) -> Path:
    """Extract `archive` so that `target` appears complete or not at all."""
    if target.exists():
        return target
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            broken = bundle.testzip()
            if broken:
                raise ValueError(f"{archive}: member {broken} is corrupt")
            bundle.extractall(staging)
        shutil.rmtree(staging / "__MACOSX", ignore_errors=True)
        entries = list(staging.iterdir())
        # An archive holding one folder gives that folder; loose files go into target.
        source = entries[0] if len(entries) == 1 and entries[0].is_dir() else staging
        source.replace(target)
    except zipfile.BadZipFile as error:
        raise ValueError(f"{archive}: not a valid zip file ({error})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def download_flickr8k(
    to: str | Path, base_url: str = FLICKR8K_URL, files: dict | None = None
) -> Path:
    """Download and extract Flickr8k (Layout A) into `<to>/flickr8k/`."""
    folder = Path(to) / "flickr8k"
    folder.mkdir(parents=True, exist_ok=True)
    for name, (target, checksum) in (files or FLICKR8K_FILES).items():
        archive = download_file(base_url + name, folder / name, checksum)
        extract_zip(archive, folder / target)
    return folder


# ---------------------------------------------------------------- command line


def summary(report: dict) -> str:
    """The inspect report as readable lines."""
    splits = ", ".join(f"{name} {count}" for name, count in report["splits"].items())
    lines = [
        f"{report['root']}: {report['layout']}",
        f"  {report['images']} images with {report['captions']} captions",
        f"  splits ({report['split_source']}): {splits}",
        f"  vocabulary: {report['vocabulary']} normalised words",
        f"  missing images: {len(report['missing_images'])}, images without captions: "
        f"{len(report['images_without_captions'])}, images in no split: "
        f"{report['unsplit_images']}",
    ]
    return "\n".join(lines + [f"  note: {note}" for note in report["notes"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="count images, captions and quirks")
    inspect.add_argument("data_dir", type=Path)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    download = commands.add_parser("download", help="download and extract a dataset")
    download.add_argument("dataset", choices=["flickr8k"])
    download.add_argument("--to", type=Path, default=Path("data"), help="parent folder")
    download.add_argument("--base-url", default=FLICKR8K_URL, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            report = load_dataset(args.data_dir).report()
            print(json.dumps(report, indent=2) if args.json else summary(report))
        else:
            print(f"Flickr8k is in {download_flickr8k(args.to, args.base_url)}")
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
