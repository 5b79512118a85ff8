"""Caption your own pictures with a trained bundle.

    python -m helpers caption IMAGE [IMAGE ...] --model BUNDLE [--beam 3]
                              [--attention OUT.png [--force]] [--json] [--weights PATH]

A missing, unreadable or corrupt file (or a folder, pipe, device or empty file) gets
one line naming it and exit status 2; the other images are still captioned.
--attention never replaces an input picture, refuses an existing file unless --force
and writes only into an existing folder. Pictures are read, encoded and captioned a few
at a time, so memory does not grow with how many are given. A model trained on the
generated sample says so on stderr: it only knows shapes.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from helpers import bundle, encoders, images, maps, viz
from helpers.config import MAX_BEAM, sample_model_note
from helpers.decode import Decoder
from helpers.files import open_regular
from helpers.model import KINDS

CHUNK = 8  # pictures decoded, encoded and captioned together


class Captioner:
    """Encoder + decoder from one bundle: picture files in, captions out."""

    def __init__(
        self,
        folder: str | Path,
        kind: str = "attention",
        weights: str | None = None,
        encoder=None,
    ):
        """`encoder`: one already built for this bundle (another kind's `.encoder`)."""
        self.kind, self.bundle = kind, bundle.load_bundle(folder, kind)
        self.encoder_name = self.bundle.encoder["encoder"]
        self.image_size = self.bundle.encoder["image_size"]
        # The bundle's encoder, with its fine-tuned layers if any.
        self.encoder = encoder or self.bundle.build_encoder(weights)
        self.decoder = Decoder.from_config(
            self.bundle.model, self.bundle.vocabulary, self.bundle.config
        )
        # Said wherever the model is used: a sample model cannot describe photographs.
        self.note = sample_model_note(self.bundle.config)

    def encode(self, pictures: list[np.ndarray]) -> np.ndarray:
        """(n, size, size, 3) uint8 pictures -> (n, grid, feature_dim) features."""
        prepare = encoders.preprocess(self.encoder_name)
        grids = [
            self.encoder.predict_on_batch(
                prepare(np.stack(pictures[i : i + CHUNK]).astype("float32"))
            )
            for i in range(0, len(pictures), CHUNK)
        ]
        grid = np.concatenate(grids)
        return grid.reshape(len(pictures), -1, grid.shape[-1])

    def caption_pictures(
        self, pictures: list[np.ndarray], beam_width: int = 3
    ) -> list[dict]:
        """Captions (text, tokens, words, score, attention) for decoded pictures."""
        results = self.decoder(self.encode(pictures), beam_width)
        for result in results:
            result["words"] = [self.bundle.vocabulary.words[i] for i in result["tokens"]]
        return results

    def caption_file(self, path: str | Path, beam_width: int = 3) -> dict:
        """The caption of one picture file, as the caption command makes it."""
        return self.caption_pictures([self.load(path)], beam_width)[0]

    def caption_files(
        self, paths: list[Path], beam_width: int = 3
    ) -> Iterator[tuple[Path, dict | ValueError]]:
        """(path, result) for each file in order, or (path, the error) for one that is
        not a readable picture; CHUNK pictures at a time. A result also holds the
        decoded picture (at most twice the encoder's size a side, its aspect kept)."""
        for start in range(0, len(paths), CHUNK):
            chunk = paths[start : start + CHUNK]
            opened = {}
            for path in chunk:
                try:
                    opened[path] = self.open(path)
                except ValueError as error:
                    opened[path] = error
            good = [p for p in chunk if not isinstance(opened[p], ValueError)]
            pictures = [images.encoder_input(opened[p], self.image_size) for p in good]
            results = self.caption_pictures(pictures, beam_width) if good else []
            done = {p: {**r, "picture": opened[p]} for p, r in zip(good, results)}
            for path in chunk:
                yield path, done.get(path, opened[path])

    def open(self, path: str | Path) -> Image.Image:
        """One picture file, decoded small (`images.open_image`); ValueError naming the
        file if it is missing, not a regular file, empty or not a readable picture."""
        with open_regular(path, empty=False) as file:
            try:
                return images.open_image(file, self.image_size)
            except ValueError as error:
                raise ValueError(f"{path}: not a readable image ({error})") from None

    def load(self, path: str | Path) -> np.ndarray:
        """Decode one file for the encoder; ValueError naming the file if it is bad."""
        return images.encoder_input(self.open(path), self.image_size)


def captioners(
    folder: str | Path, kinds: list[str] | None = None, weights: str | None = None
) -> list[Captioner]:
    """A Captioner for each decoder `kinds` (default: every one in the bundle, best
    first), all sharing one encoder."""
    held = bundle.read_manifest(Path(folder))["models"]
    kinds = kinds or [k for k in KINDS if k in held]
    first = Captioner(folder, kinds[0], weights)
    return [first] + [Captioner(folder, k, encoder=first.encoder) for k in kinds[1:]]


def attention_path(base: Path, image: Path, number: int, several: bool) -> Path:
    """OUT.png for one image; OUT_<number>_<image>.png for each of several (numbered,
    so that two pictures called photo.jpg in different folders keep their figures)."""
    suffix = base.suffix or ".png"
    return (
        base.with_name(f"{base.stem}_{number}_{image.stem}{suffix}") if several else base
    )


def attention_problem(args: argparse.Namespace) -> str | None:
    """Why the --attention figures cannot be written where asked (one line naming
    the file), or None: checked before any work. An input picture is never
    replaced; another existing file only with --force; the folder must exist."""
    several = len(args.images) > 1
    for number, image in enumerate(args.images, start=1):
        target = attention_path(args.attention, image, number, several)
        if target.is_dir():
            return f"--attention {target}: a folder; give a file name (.png)"
        if not target.parent.is_dir():
            return f"--attention {target}: the folder {target.parent} does not exist"
        if not target.exists():
            continue
        if any(p.exists() and target.samefile(p) for p in args.images):
            return f"--attention {target}: is one of the input pictures; refused"
        if not args.force:
            return f"--attention {target}: already exists (--force replaces it)"
    return None


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m helpers caption",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("images", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="bundle folder")
    parser.add_argument("--kind", default="attention", choices=list(KINDS))
    parser.add_argument(
        "--beam", type=int, help="beam width, 1 = greedy (default: the bundle's)"
    )
    parser.add_argument(
        "--attention",
        type=Path,
        help="save word-by-word attention PNG (OUT_<n>_<image>.png for several); "
        "its folder must exist, an existing file is refused unless --force, an "
        "input picture always",
    )
    parser.add_argument(
        "--force", action="store_true", help="--attention may replace existing files"
    )
    parser.add_argument("--json", action="store_true", help="print JSON lines")
    parser.add_argument("--weights", help="the encoder's weights file, if it used one")
    args = parser.parse_args(argv)
    if args.beam is not None and not 1 <= args.beam <= MAX_BEAM:
        parser.error(f"--beam must be from 1 to {MAX_BEAM}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    problem = args.attention and attention_problem(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        captioner = Captioner(args.model, args.kind, args.weights)
    except (OSError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if captioner.note:
        print(captioner.note, file=sys.stderr)
    beam_width = args.beam or captioner.bundle.config.beam_width
    failed, several = 0, len(args.images) > 1
    for number, (path, result) in enumerate(
        captioner.caption_files(args.images, beam_width), start=1
    ):
        if isinstance(result, ValueError):
            print(f"error: {result}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            line = {"image": str(path), "caption": result["text"]}
            print(json.dumps({**line, "score": round(result["score"], 4)}), flush=True)
        else:
            print(f"{path}: {result['text']}", flush=True)
        if args.attention:
            target = attention_path(args.attention, path, number, several)
            try:
                figure = maps.attention_figure(
                    result["picture"], result["words"], result["attention"]
                )
                viz.save_figure_to(figure, target)
            except (OSError, ValueError) as error:
                reason = getattr(error, "strerror", None) or error
                print(f"error: {target}: cannot write ({reason})", file=sys.stderr)
                failed += 1
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
