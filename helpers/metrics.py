"""Caption metrics measured the way published Flickr8k numbers are.

Corpus-level BLEU-1..4 (nltk, uniform weights) against all references of each image,
with lowercase, punctuation removed and <start>/<end>/<pad>/<unk> stripped on both
sides; CIDEr-D and ROUGE-L from pycocoevalcap; METEOR when Java is present.

    python -m helpers.metrics --refs refs.json --hyps hyps.json
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import warnings
from pathlib import Path

from nltk.translate.bleu_score import corpus_bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge

from helpers.text import END, PAD, START, normalize_caption


def tokens(text: str) -> list[str]:
    """Normalised words with <pad>, <start> and <end> removed.

    They are removed before normalising, which would turn "<end>" into the word "end".
    An "<unk>" stays (as "unk"): it is a wrong word, not a missing one.
    """
    for token in (PAD, START, END):
        text = text.replace(token, " ")
    return normalize_caption(text).split()


SPATIAL_PHRASES = (
    "left of",
    "right of",
    "above",
    "below",
    "under",
    "over",
    "on top of",
    "beside",
    "next to",
    "in front of",
    "behind",
)


def with_spatial_relations(references: dict[str, list[str]]) -> list[str]:
    """Images whose references mostly (3 of 5) describe where things are."""

    def spatial(caption: str) -> bool:
        text = f" {' '.join(tokens(caption))} "
        return any(f" {phrase} " in text for phrase in SPATIAL_PHRASES)

    return sorted(
        name
        for name, refs in references.items()
        if sum(map(spatial, refs)) * 2 > len(refs)
    )


# Words a sentence does not end on: Luo's list for self-critical training (articles,
# prepositions, "is"/"are"/"am"; ruotianluo/self-critical.pytorch), with conjunctions
# and possessives added. A caption ending on one is a fragment ("a dog runs on a").
BAD_ENDINGS = frozenset(
    "a an the in for at of with before after on upon near to is are am "
    "and or but his her their its from by into onto".split()
)


# Colour words: a caption that names one twice often loops ("a black and black dog").
COLOURS = frozenset(
    "black white red blue green yellow orange pink purple brown grey gray".split()
)


def caption_quality(captions: list[str]) -> dict[str, float]:
    """What n-gram metrics do not see: the share of captions that end on a word a
    sentence does not end on, that repeat a word pair or a word trigram, that name a
    colour twice, their mean length in words, and how many different captions there
    are."""

    def repeats(words: list[str], n: int) -> bool:
        grams = list(zip(*(words[i:] for i in range(n))))
        return len(set(grams)) < len(grams)

    split = [tokens(caption) for caption in captions]
    count = max(len(split), 1)
    return {
        "bad_endings": sum(bool(w) and w[-1] in BAD_ENDINGS for w in split) / count,
        "repeated_pairs": sum(repeats(w, 2) for w in split) / count,
        "repeated_trigrams": sum(repeats(w, 3) for w in split) / count,
        "repeated_colours": sum(
            any(w.count(colour) > 1 for colour in COLOURS & set(w)) for w in split
        )
        / count,
        "mean_words": sum(map(len, split)) / count,
        "distinct": len({" ".join(w) for w in split}),
    }


def _pairs(references: dict[str, list[str]], hypotheses: dict[str, str]):
    if not references or not hypotheses:
        raise ValueError(
            "empty input: need at least one image with references and a hypothesis"
        )
    missing_hypotheses = sorted(set(references) - set(hypotheses))
    missing_references = sorted(set(hypotheses) - set(references))
    if missing_hypotheses or missing_references:
        raise ValueError(
            f"images must match: {len(missing_hypotheses)} without a hypothesis "
            f"{missing_hypotheses[:3]}, {len(missing_references)} without references "
            f"{missing_references[:3]}"
        )
    names = sorted(references)
    for name in names:
        if not references[name]:
            raise ValueError(f"{name}: no reference captions")
    return names


def bleu(
    references: dict[str, list[str]], hypotheses: dict[str, str]
) -> dict[str, float]:
    """Corpus BLEU-1..4 with uniform weights: {"bleu1": ..., "bleu4": ...}.

    Unsmoothed, as published scores are: captions with no n-gram in common with
    their references score BLEU-n 0 (nltk's warning that says so is not shown).
    """
    names = _pairs(references, hypotheses)
    refs = [[tokens(r) for r in references[name]] for name in names]
    hyps = [tokens(hypotheses[name]) for name in names]
    weights = [(1.0,), (0.5, 0.5), (1 / 3, 1 / 3, 1 / 3), (0.25, 0.25, 0.25, 0.25)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"\s*The hypothesis contains 0 counts")
        scores = corpus_bleu(refs, hyps, weights=weights)
    return {f"bleu{n}": float(score) for n, score in enumerate(scores, start=1)}


def evaluate(
    references: dict[str, list[str]],
    hypotheses: dict[str, str],
    meteor: bool | None = None,
) -> dict[str, float]:
    """BLEU-1..4, CIDEr-D, ROUGE-L (and METEOR if Java is found or asked for)."""
    gts, res = coco_format(references, hypotheses)
    result = bleu(references, hypotheses)
    result["cider"] = float(Cider().compute_score(gts, res)[0])
    result["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    if meteor is None:
        meteor = shutil.which("java") is not None
    if meteor:
        result["meteor"] = float(_meteor().compute_score(gts, res)[0])
    return result


HUMAN = "people: one reference against the other four"  # human_agreement's row


def human_agreement(references: dict[str, list[str]]) -> dict[str, float]:
    """The metrics of one person's caption against the other people's: round k
    scores every image's k-th reference against the rest, and the rounds are
    averaged (a ceiling for a model, which `evaluate` scores against all of them)."""
    rounds = min(len(refs) for refs in references.values())
    if rounds < 2:
        raise ValueError("human agreement needs at least two references per image")
    results = [
        evaluate(
            {n: refs[:k] + refs[k + 1 :] for n, refs in references.items()},
            {n: refs[k] for n, refs in references.items()},
            meteor=False,
        )
        for k in range(rounds)
    ]
    return {key: sum(r[key] for r in results) / rounds for key in results[0]}


@functools.cache
def _meteor():
    """One METEOR scorer per process: each one starts a Java VM (seconds)."""
    return Meteor()


def cider_per_image(references: dict[str, list[str]], hypotheses: dict[str, str]):
    """CIDEr-D of each image, to find the best and worst captions."""
    gts, res = coco_format(references, hypotheses)
    return dict(zip(gts, map(float, Cider().compute_score(gts, res)[1])))


def coco_format(references, hypotheses):
    """pycocoevalcap's input: {image: [normalised strings]} for both sides, same order."""
    names = _pairs(references, hypotheses)
    gts = {n: [" ".join(tokens(r)) for r in references[n]] for n in names}
    res = {n: [" ".join(tokens(hypotheses[n]))] for n in names}
    return gts, res


def _load(path: Path, kind: str):
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read {kind} JSON ({error})") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: {kind} must be a JSON object keyed by image name")
    return content


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m helpers.metrics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--refs", type=Path, required=True, help='JSON {"image": ["reference", ...]}'
    )
    parser.add_argument(
        "--hyps", type=Path, required=True, help='JSON {"image": "caption"}'
    )
    parser.add_argument(
        "--no-meteor", action="store_true", help="skip METEOR even with Java"
    )
    args = parser.parse_args(argv)
    try:
        references, hypotheses = (
            _load(args.refs, "references"),
            _load(args.hyps, "hypotheses"),
        )
        meteor = False if args.no_meteor else None
        if meteor is None and shutil.which("java") is None:
            print("METEOR skipped: no Java found", file=sys.stderr)
        result = evaluate(references, hypotheses, meteor=meteor)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: round(v, 4) for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
