"""The embedded sample dataset: pictures of coloured shapes whose captions need the
picture (kind, colour, size, count and where things are), generated from a seed and
written in the original Flickr8k layout so that the real loader is what runs.

    python -m helpers.sample OUT_DIR --images 300 [--seed 1234]
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

from helpers.files import read_json, staged
from helpers.formats import SPLIT_FILES, split_in_order

COLOURS = {
    "red": (210, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "yellow": (235, 205, 40),
    "purple": (140, 60, 170),
    "black": (25, 25, 25),
}
SHAPES = {  # kind -> words a person might use for it
    "circle": ["circle", "circle", "ball", "disc"],
    "square": ["square", "square", "box", "block"],
    "triangle": ["triangle", "triangle", "triangle", "pyramid"],
    "star": ["star", "star", "star", "star shape"],
}
SIZES = {"small": 15, "large": 28}  # radius in pixels
SIZE_WORDS = {"small": ["small", "little", "tiny"], "large": ["large", "big", "huge"]}
BACKGROUNDS = {
    "grey": (200, 200, 200),
    "white": (245, 245, 240),
    "beige": (225, 210, 180),
    "light blue": (190, 215, 235),
}
RELATIONS = {  # relation -> (dx, dy) direction of the first object from the second
    "left of": (-1, 0),
    "right of": (1, 0),
    "above": (0, -1),
    "below": (0, 1),
}
INVERSE = {
    "left of": "right of",
    "right of": "left of",
    "above": "below",
    "below": "above",
}
PHRASES = {  # relation -> ways to say it
    "left of": ["to the left of", "left of", "next to"],
    "right of": ["to the right of", "right of", "beside"],
    "above": ["above", "over", "on top of"],
    "below": ["below", "under", "underneath"],
}
NUMBERS = {1: "one", 2: "two", 3: "three"}


def _describe(thing: dict, rng: random.Random, article: str = "a") -> str:
    """'a big red ball' or 'a red circle': size is said most of the time."""
    words = [article]
    if rng.random() < 0.7:
        words.append(rng.choice(SIZE_WORDS[thing["size"]]))
    words += [thing["colour"], rng.choice(SHAPES[thing["kind"]])]
    return " ".join(words)


def captions_for(
    things: list[dict], relation: str | None, background: str, rng: random.Random
) -> list[str]:
    """Five different captions, from varied templates, synonyms and word orders."""
    d = lambda thing, article="a": _describe(thing, rng, article)  # noqa: E731
    if len(things) == 1:
        (a,) = things
        templates = [
            lambda: d(a),
            lambda: f"{d(a)} on a {background} background",
            lambda: f"there is {d(a)} in the picture",
            lambda: f"a picture of {d(a)}",
            lambda: f"{d(a, 'one')} alone",
            lambda: f"{d(a)} in front of a plain {background} wall",
            lambda: f"a single {a['colour']} {rng.choice(SHAPES[a['kind']])}",
        ]
    else:
        a, b = things[0], things[1]
        phrase = lambda rel: rng.choice(PHRASES[rel])  # noqa: E731
        rest = f" and {d(things[2])}" if len(things) == 3 else ""
        templates = [
            lambda: f"{d(a)} {phrase(relation)} {d(b)}{rest}",
            lambda: f"{d(b)} {phrase(INVERSE[relation])} {d(a)}{rest}",
            lambda: f"{d(a)} is {phrase(relation)} {d(b)}{rest}",
            lambda: f"{NUMBERS[len(things)]} shapes: {d(a)} and {d(b)}{rest}",
            lambda: f"there is {d(a)} {phrase(relation)} {d(b)}",
            lambda: f"{d(a, 'the')} is {phrase(relation)} {d(b, 'the')}",
            lambda: f"{d(b)} with {d(a)} {phrase(relation)} it",
        ]
    chosen = rng.sample(templates, 5)
    # Raw like the real files: a capital letter and a spaced full stop.
    return [(text := make())[0].upper() + text[1:] + " ." for make in chosen]


def _draw_thing(draw: ImageDraw.ImageDraw, thing: dict) -> None:
    x, y, r, fill = thing["x"], thing["y"], SIZES[thing["size"]], COLOURS[thing["colour"]]
    if thing["kind"] == "circle":
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)
    elif thing["kind"] == "square":
        draw.rectangle([x - r, y - r, x + r, y + r], fill=fill)
    elif thing["kind"] == "triangle":
        draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=fill)
    else:
        draw.polygon(_star_points(x, y, r), fill=fill)


def _star_points(x: float, y: float, r: float) -> list[tuple[float, float]]:
    return [
        (
            x + (r if i % 2 == 0 else r * 0.45) * math.sin(i * math.pi / 5),
            y - (r if i % 2 == 0 else r * 0.45) * math.cos(i * math.pi / 5),
        )
        for i in range(10)
    ]


def make_picture(rng: random.Random) -> tuple[Image.Image, list[str], dict]:
    """One picture with one to three shapes, some clutter, its five captions and what
    it shows (the shapes' kinds and colours, and where the first is from the second)."""
    width, height = rng.randint(240, 320), rng.randint(220, 300)
    background = rng.choice(list(BACKGROUNDS))
    image = Image.new("RGB", (width, height), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 12)):  # clutter: faint lines and specks
        shade = tuple(max(0, c - rng.randint(20, 60)) for c in BACKGROUNDS[background])
        x, y = rng.randint(0, width), rng.randint(0, height)
        if rng.random() < 0.5:
            draw.line(
                [x, y, x + rng.randint(-60, 60), y + rng.randint(-60, 60)], fill=shade
            )
        else:
            draw.ellipse([x, y, x + 3, y + 3], fill=shade)
    count = rng.choice([1, 2, 2, 3])
    kinds = rng.sample(
        list(SHAPES), count
    )  # distinct kinds keep the captions unambiguous
    things = [
        {
            "kind": kind,
            "colour": rng.choice(list(COLOURS)),
            "size": rng.choice(list(SIZES)),
        }
        for kind in kinds
    ]
    relation = rng.choice(list(RELATIONS)) if count > 1 else None
    margin = 40
    if relation is None:
        things[0].update(
            x=rng.randint(margin, width - margin), y=rng.randint(margin, height - margin)
        )
    else:
        dx, dy = RELATIONS[relation]
        cx, cy = width / 2 + rng.randint(-15, 15), height / 2 + rng.randint(-15, 15)
        gap = rng.randint(40, 60)
        things[0].update(
            x=cx + dx * gap, y=cy + dy * gap
        )  # the first is `relation` of ...
        things[1].update(x=cx - dx * gap, y=cy - dy * gap)  # ... the second
        if count == 3:  # the third sits across the other axis, out of the way
            things[2].update(x=cx + dy * 0.8 * gap + 10, y=cy + dx * 0.8 * gap + 10)
            things[2]["size"] = "small"
    for thing in things:
        _draw_thing(draw, thing)
    truth = {
        "things": [{k: t[k] for k in ("kind", "colour", "size")} for t in things],
        "relation": relation,
    }
    return image, captions_for(things, relation, background, rng), truth


MARKER = "sample.json"  # the settings a generated sample was written with


def write_sample(out: str | Path, images: int, seed: int = 1234) -> Path:
    """Write the sample dataset into `out` in Layout A; the same seed gives the same bytes.

    Like the real release it has one caption key without an image file and a few
    images in no split. The folder appears complete or not at all.
    """
    out = Path(out)
    marker = out / MARKER
    settings = {"images": images, "seed": seed, "version": 2}  # 2: with truth.json
    if marker.exists() and read_json(marker) == settings:
        return out
    with staged(out) as staging:
        (staging / "Flicker8k_Dataset").mkdir()
        (staging / "Flickr8k_text").mkdir()
        rng = random.Random(seed)
        names, token_lines, truths = [], [], {}
        for index in range(images):
            name = f"{index + 1:05d}_{rng.getrandbits(40):010x}.jpg"
            picture, captions, truths[name] = make_picture(rng)
            picture.save(staging / "Flicker8k_Dataset" / name, quality=90)
            names.append(name)
            token_lines += [
                f"{name}#{k}\t{caption}" for k, caption in enumerate(captions)
            ]
        # The real token file has captions for a '<name>.jpg.1' key that has no image.
        token_lines += [line.replace(".jpg#", ".jpg.1#", 1) for line in token_lines[:5]]
        (staging / "Flickr8k_text" / "Flickr8k.token.txt").write_text(
            "\n".join(token_lines) + "\n"
        )
        order = rng.sample(names, len(names))
        splits = split_in_order(order)
        # Like the real lists, a few images (the last of the order) are in no split.
        unsplit = set(order[len(order) - max(1, images // 100) :])
        splits["train"] = [name for name in splits["train"] if name not in unsplit]
        for split, file in SPLIT_FILES.items():
            (staging / "Flickr8k_text" / file).write_text(
                "\n".join(sorted(splits[split])) + "\n"
            )
        (staging / TRUTH).write_text(json.dumps(truths, indent=0))
        (staging / MARKER).write_text(json.dumps(settings))
    return out


TRUTH = "truth.json"  # what each picture shows, beside the dataset
# Words a caption may use for a relation, and the relation they state ("next to" and
# "beside" only say that the shapes are side by side).
STATED = sorted(
    {phrase: rel for rel, phrases in PHRASES.items() for phrase in phrases}.items(),
    key=lambda item: -len(item[0]),
)
SIDE_BY_SIDE = ("left of", "right of")


def stated_relation(caption: str) -> tuple[str, str, str] | None:
    """(first kind, relation, second kind) when a caption says where one shape is
    from another ("a red ball to the left of a blue box"), else None."""
    words = f" {caption.lower()} "
    for phrase, relation in STATED:
        if f" {phrase} " in words:
            before, after = words.split(f" {phrase} ", 1)
            first, second = _last_kind(before), _first_kind(after)
            if after.startswith("it "):  # "a box with a ball above it"
                second = _first_kind(before)
            if first and second and phrase in ("next to", "beside"):
                return first, "side by side", second
            if first and second:
                return first, relation, second
    return None


def _kinds_in(text: str) -> list[tuple[int, str]]:
    found = []
    for kind, names in SHAPES.items():
        for name in set(names):
            start = f" {text} ".find(f" {name} ")
            while start >= 0:
                found.append((start, kind))
                start = f" {text} ".find(f" {name} ", start + 1)
    return sorted(found)


def _last_kind(text: str) -> str | None:
    kinds = _kinds_in(text)
    return kinds[-1][1] if kinds else None


def _first_kind(text: str) -> str | None:
    kinds = _kinds_in(text)
    return kinds[0][1] if kinds else None


def relation_is_wrong(caption: str, truth: dict) -> bool | None:
    """Whether a caption states where the shapes are and gets it wrong (True), right
    (False), or states no relation between two of the picture's shapes (None)."""
    stated = stated_relation(caption)
    kinds = [thing["kind"] for thing in truth["things"][:2]]
    if (
        stated is None
        or truth["relation"] is None
        or {stated[0], stated[2]} != set(kinds)
    ):
        return None
    first, relation, _ = stated
    actual = truth["relation"] if first == kinds[0] else INVERSE[truth["relation"]]
    if relation == "side by side":
        return actual not in SIDE_BY_SIDE
    return relation != actual


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.sample", description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    if args.images < 8:
        parser.error("--images must be at least 8")
    print(write_sample(args.out, args.images, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
