"""Caption datasets as users have them: Flickr8k (original and Kaggle), Flickr30k,
COCO 2014 and Karpathy split files, with every known quirk reported, never hidden.

    python -m helpers.data inspect DATA_DIR [--json]
    python -m helpers.data download {flickr8k,coco} --to data/
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import random
import sys
from pathlib import Path

from helpers import download, hosts, sample
from helpers.config import Config
from helpers.files import file_problem, printable_output
from helpers.formats import (
    SPLIT_FILES,  # noqa: F401 (data.SPLIT_FILES: the names, for callers)
    read_coco,
    read_flickr30k_csv,
    read_kaggle_csv,
    read_karpathy,
    read_split_lists,
    read_token_file,
    split_in_order,
)
from helpers.paths import data_dir
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
KARPATHY_FAMILIES = ("flickr8k", "flickr30k", "coco")  # dataset_<family>.json
# Flickr8k's official split lists as its release names them (Flickr8k_text.zip), shipped
# with the package for the folders without them, such as Kaggle's copy of Flickr8k.
SHIPPED_SPLITS = Path(__file__).parent / "splits"
OFFICIAL_TEST = "official Flickr8k test split"


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

    @property
    def official_split(self) -> bool:
        """Whether the splits are Flickr8k's official ones, those of published scores."""
        return self.layout.startswith("flickr8k-") and self.split_source.startswith(
            "official lists"
        )

    def split_line(self) -> str:
        """One line naming the test split, and whether it is Flickr8k's official one."""
        if self.official_split:
            return f"Split: {OFFICIAL_TEST} ({self.split_source})"
        return f"Split: {self.split_source} (not the {OFFICIAL_TEST})"

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


# ---------------------------------------------------------------- layouts


def _find(root: Path, *names: str) -> Path | None:
    """The first of `names` found in `root` or one folder below it."""
    for name in names:
        for candidate in [root / name, *sorted(root.glob(f"*/{name}"))]:
            if candidate.exists():
                return candidate
    return None


def _image_files(root: Path, layout: str, notes: list[str]) -> dict[str, Path]:
    """Image name -> path for every image file of the layout: a regular file that is
    not empty (a folder, pipe, device or link loop named *.jpg is left out, noted)."""
    if layout == "coco2014":
        folders = [f for f in (root / "train2014", root / "val2014") if f.is_dir()]
    else:
        folder = _find(root, *IMAGE_FOLDERS)
        folders = [folder] if folder and folder.is_dir() else []
    if not folders:
        raise FileNotFoundError(
            f"{root}: found captions but no image folder (looked for {IMAGE_FOLDERS})"
        )
    files, refused = {}, []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
                problem = file_problem(path)
                if problem:
                    refused.append(problem)
                else:
                    files[path.name] = path
    if refused:
        notes.append(f"{len(refused)} image file(s) left out: " + "; ".join(refused[:5]))
    return files


def read_captions(root: Path, notes: list[str]):
    """(layout, captions, split lists, split source) of the caption files under `root`.

    The split lists are the official Flickr8k ones or a Karpathy file's, else empty.
    """
    # Karpathy's zip holds the split files of all three datasets: take the one of
    # the layout found (any, if the split file is the only caption file).
    karpathy = {
        family: _find(root, f"dataset_{family}.json") for family in KARPATHY_FAMILIES
    }
    split_lists: dict[str, list[str]] = {}
    split_source = ""
    if source := _find(root, "Flickr8k.token.txt"):
        layout, captions = "flickr8k-original", read_token_file(source, notes)
        if split_lists := read_split_lists(source.parent):
            split_source = f"official lists in {source.parent.name}/"
            if (root / sample.MARKER).exists():  # the same files, not the same split
                split_source = f"the generated sample's lists in {source.parent.name}/"
    elif source := _find(root, "captions.txt"):
        layout, captions = "flickr8k-kaggle", read_kaggle_csv(source, notes)
    elif source := _find(root, "results_20130124.token"):
        layout, captions = "flickr30k", read_token_file(source, notes)
    elif source := _find(root, "results.csv"):
        layout, captions = "flickr30k-kaggle", read_flickr30k_csv(source, notes)
    elif coco := sorted(root.glob("annotations/captions_*2014.json")):
        source, layout, captions = coco[0].parent, "coco2014", read_coco(coco)
    elif source := next(filter(None, karpathy.values()), None):
        layout = source.stem.removeprefix("dataset_") + "-karpathy"
        captions, split_lists = read_karpathy(source)
        split_source = f"Karpathy {source.name}"
    else:
        raise ValueError(
            f"{root}: no known caption file (Flickr8k.token.txt, captions.txt, "
            "results_20130124.token, results.csv, annotations/captions_*2014.json "
            "or dataset_*.json)"
        )
    if not captions:
        raise ValueError(f"{source}: holds no captions")
    family = next(f for f in KARPATHY_FAMILIES if layout.startswith(f))
    if not split_lists and (split_file := karpathy[family]):
        split_lists = read_karpathy(split_file)[1]
        split_source = f"Karpathy {split_file.name}"
    return layout, captions, split_lists, split_source


def shipped_splits(usable: list[str], notes: list[str]) -> tuple[dict, str]:
    """(lists, source): the official lists shipped with the package if they name at
    least half of the `usable` images (a Flickr8k, not other pictures), else ({}, "")."""
    lists = read_split_lists(SHIPPED_SPLITS)
    if not lists:
        return {}, ""
    named = len(set(usable) & set().union(*lists.values()))
    if 2 * named < len(usable):
        notes.append(f"the lists in helpers/splits/ name only {named} of {len(usable)}")
        return {}, ""
    return lists, "official lists shipped with helpers"


def reconcile_splits(
    split_lists: dict[str, list[str]],
    split_source: str,
    usable: list[str],
    seed: int,
    notes: list[str],
) -> tuple[dict[str, list[str]], str]:
    """(splits, source): the given lists cut to usable images, or a seeded split."""
    if not split_lists:
        return seeded_split(usable, seed), f"seeded split by image (seed {seed})"
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
    return splits, split_source


def load_dataset(root: str | Path, seed: int = 1234) -> Dataset:
    """Detect the layout under `root`, parse it and report every quirk."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    notes: list[str] = []
    layout, captions, split_lists, split_source = read_captions(root, notes)
    files = _image_files(root, layout, notes)
    missing = sorted(set(captions) - set(files))
    without = sorted(set(files) - set(captions))
    usable = {name: captions[name] for name in sorted(set(captions) & set(files))}
    if missing:
        notes.append(f"{len(missing)} image(s) with captions but no file: {missing[:5]}")
    if without:
        notes.append(f"{len(without)} image file(s) without captions: {without[:5]}")
    if not split_lists and layout.startswith("flickr8k"):
        split_lists, split_source = shipped_splits(list(usable), notes)
    splits, split_source = reconcile_splits(
        split_lists, split_source, list(usable), seed, notes
    )
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


def load_profile_dataset(cfg: Config) -> Dataset:
    """The dataset a profile names: its folder, with the sample generated on first use
    (`sample_images` > 0); real data never falls back to the sample."""
    folder = data_dir(cfg)
    if cfg.sample_images > 0:
        return load_dataset(
            sample.write_sample(folder, cfg.sample_images, cfg.seed), cfg.seed
        )
    if not folder.is_dir():
        if hosts.host() == "kaggle":
            get = "attach the Kaggle dataset Flickr8k by adityajn105: docs/hosted.md"
        elif folder.name in download.DATASETS:
            get = f"`python -m helpers.data download {folder.name} --to {folder.parent}`"
        else:
            get = "it has no open download: docs/datasets.md says where to get it"
        raise FileNotFoundError(
            f"{folder}: the {cfg.profile!r} profile needs the real dataset there; {get}"
        )
    return load_dataset(folder, seed=cfg.seed)


def seeded_split(
    names: list[str], seed: int, fraction: float = 0.125
) -> dict[str, list[str]]:
    """Split image names (never captions) into train/dev/test, like Flickr8k's 6:1:1."""
    shuffled = sorted(names)
    random.Random(seed).shuffle(shuffled)
    return split_in_order(shuffled, fraction)


def _check_disjoint(splits: dict[str, list[str]], source: str) -> None:
    for first, second in itertools.combinations(splits, 2):
        if shared := sorted(set(splits[first]) & set(splits[second])):
            raise ValueError(
                f"{source}: {len(shared)} image(s) in both {first} and {second}, "
                f"e.g. {shared[:3]}"
            )


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
    fetch = commands.add_parser("download", help="download and extract a dataset")
    fetch.add_argument("dataset", choices=sorted(download.DATASETS))
    fetch.add_argument("--to", type=Path, default=Path("data"), help="parent folder")
    fetch.add_argument("--base-url", help=argparse.SUPPRESS)  # tests: a loopback server
    args = parser.parse_args(argv)
    printable_output()
    try:
        if args.command == "inspect":
            report = load_dataset(args.data_dir).report()
            print(json.dumps(report, indent=2) if args.json else summary(report))
        else:
            folder = download.download_dataset(args.dataset, args.to, args.base_url)
            print(
                f"{args.dataset} is in {folder}; check it: python -m helpers.data "
                f"inspect {folder}"
            )
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
