"""Sentences of the notebooks that depend on the run, written from its config and
results: which encoder and grid, which way a number moved, which model did better,
and how far a score can be compared with published ones. A markdown cell states only
what holds for every profile (tests/test_notebooks.py checks it)."""

from __future__ import annotations

import dataclasses

from helpers.config import Config
from helpers.metrics import SPATIAL_PHRASES, with_spatial_relations
from helpers.report import seed_medians
from helpers.sample import relation_is_wrong

FLICKR8K_TRAINING_PHOTOS = 6000  # the split the published Flickr8k numbers trained on


def weights_name(weights: str | None) -> str:
    """The encoder's weights in words."""
    if weights is None:
        return "random weights"
    return "ImageNet weights" if weights == "imagenet" else f"the weights of {weights}"


def grid(cfg: Config, shape: tuple[int, ...]) -> str:
    """What the decoder reads, from the feature cache's shape (pictures, L, D)."""
    cells, channels = shape[-2], shape[-1]
    side = round(cells**0.5)
    square = f" (a {side}x{side} grid)" if side * side == cells else ""
    projected = (
        f", projected to {cfg.context_dim} channels once per picture (`context_dim`)"
        if cfg.context_dim
        else ""
    )
    return (
        f"Here: $L = {cells}$ cells{square} of $D = {channels}$ channels, from "
        f"`{cfg.encoder}` at {cfg.image_size}x{cfg.image_size} with "
        f"{weights_name(cfg.weights)}{projected}."
    )


def moved(what: str, before: float, after: float, digits: int = 3) -> str:
    """'validation loss rose from 3.039 to 3.052' (or fell, or stayed)."""
    b, a = round(before, digits), round(after, digits)
    verb = "rose" if a > b else "fell" if a < b else "stayed at"
    if verb == "stayed at":
        return f"{what} stayed at {b:.{digits}f}"
    return f"{what} {verb} from {b:.{digits}f} to {a:.{digits}f}"


def versus(first: str, a: float, second: str, b: float, digits: int = 3) -> str:
    """'attention scored above merge (0.129 against 0.123)', or below, or level."""
    x, y = round(a, digits), round(b, digits)
    where = "above" if x > y else "below" if x < y else "level with"
    return f"{first} scored {where} {second} ({x:.{digits}f} against {y:.{digits}f})"


def comparable(cfg: Config, training_pictures: int) -> str:
    """One line on whether this run's scores can sit beside published Flickr8k ones."""
    if cfg.sample_images:
        return (
            f"These are generated pictures ({training_pictures} to train on), not "
            "photographs: the published Flickr8k rows are a reference for the "
            "`flickr8k` profiles, not a bar for this run."
        )
    if training_pictures < FLICKR8K_TRAINING_PHOTOS:
        return (
            f"This run trained on {training_pictures} photos, not Flickr8k's "
            f"{FLICKR8K_TRAINING_PHOTOS:,} training photos: the published rows are not "
            "comparable with it; the human row (one reference against the other four, "
            "on the same pictures) is."
        )
    return (
        "This run trained on Flickr8k's training photos and scored its test split as "
        "the published rows did, with another encoder: comparable, not identical."
    )


def real_photos(data: dict) -> str:
    """What `benchmarks/real_photos.py` measured (its JSON), in words: the Transformer
    against the LSTM and each against its shuffled control, by median CIDEr-D at beam 3."""
    rows = seed_medians(data["table"])
    names = ("transformer", "attention", "transformer, shuffled features")
    if not all(name in rows for name in (*names, "attention, shuffled features")):
        return "These results hold no Transformer rows yet: run the benchmark."
    transformer, lstm, control = (rows[name]["cider"] for name in names)
    lstm_control = rows["attention, shuffled features"]["cider"]
    photos = data["photos"]
    return (
        f"Trained on {photos['train']} photos and scored on the {photos['dev']} dev "
        f"photos (CIDEr-D at beam 3, median of {len(data['seeds'])} seeds), "
        f"{versus('the Transformer', transformer, 'the soft-attention LSTM', lstm)}; "
        f"{versus('it', transformer, 'its shuffled control', control)}, and "
        f"{versus('the LSTM', lstm, 'its shuffled control', lstm_control)}."
    )


def end_word(loss_without: float, loss_with: float) -> str:
    """What notebook 08's demonstration showed: how much CIDEr-D a caption cut short
    loses without `<end>` in the reward and with it (negative: the fragment gains)."""
    said = (
        f"Cut by two words, the caption's CIDEr-D moves by {-loss_with:+.2f} with "
        f"`<end>` in the reward and by {-loss_without:+.2f} without it"
    )
    draw = (
        "One picture is one draw: the share of captions that end on a fragment, "
        "counted below over the test split, is the measure."
    )
    if loss_with > max(loss_without, 0):
        return f"{said}: with `<end>`, stopping in the middle of a phrase costs more."
    if loss_with <= 0:
        return (
            f"{said}: here the fragment scores higher even with `<end>`, because the "
            f"whole caption is itself flawed (look at its last words). {draw}"
        )
    return f"{said}: on this picture `<end>` does not make the fragment cost more. {draw}"


def failures(model: dict, people: dict, guards: str) -> str:
    """Which failures the captions of one decoding setting show against people's own
    (`metrics.caption_quality` of each), and what the guards do about them."""

    def share(key: str) -> str:
        return f"{model[key]:.0%} (people: {people[key]:.0%})"

    found = [
        name
        for key, name in (
            ("repeated_pairs", "repeated word pairs"),
            ("repeated_colours", "colour loops"),
        )
        if model[key] > 2 * people[key] + 0.02
    ]
    verdict = (
        f"So these captions show {' and '.join(found)} more than twice as often as "
        "people's"
        if found
        else "So these captions repeat themselves about as often as people's"
    )
    pairs = "pair" in guards  # the row "no repeated pair" of config.GUARD_ROWS
    repeats = (
        'The pair guard bans a word pair said twice ("and black and black shirt"), '
        "and so any repeated trigram"
        if pairs
        else "The trigram guard bans only a three-word sequence said twice, so a "
        'repeated pair ("and black and black shirt") passes it'
    )
    ratio = model["mean_words"] / people["mean_words"]
    if abs(ratio - 1) > 0.2:
        verdict += f", and run {'shorter' if ratio < 1 else 'longer'} by over a fifth"
    return (
        f"With this profile's guards ({guards}), {share('repeated_pairs')} of the "
        f"beam-3 captions repeat a word pair, {share('repeated_colours')} name a colour "
        f"twice, and they run {model['mean_words']:.1f} words against people's "
        f"{people['mean_words']:.1f}. {verdict}. {repeats}; the length penalty "
        "changes which finished caption wins, not what a caption says; no guard "
        f"looks at {'colours' if pairs else 'word pairs or colours'}."
    )


@dataclasses.dataclass
class RelationCheck:
    """What captions say about where things are, ready to show."""

    summary: str  # a Markdown paragraph
    recap: str  # a clause for the recap
    shown: list[str]  # the pictures to show
    beside: dict[str, str]  # a line to show beside each of them


def relation_check(
    captions: dict[str, str],
    scores: dict[str, float],
    references: dict[str, list[str]],
    truth: dict[str, dict] | None = None,
) -> RelationCheck:
    """With the sample's truth: how many captions state where one shape is from
    another, how many get it wrong, and the CIDEr-D of each group (the three
    best-scored wrong ones shown). On photos (no truth): the captions that state a
    relation, best-scored first, for the reader to judge."""
    if truth is None:
        said = with_spatial_relations({n: [c] for n, c in captions.items()})
        shown = sorted(said, key=scores.get, reverse=True)[:3]
        summary = (
            f"{len(said)} of {len(captions)} captions say where something is "
            f"({', '.join(SPATIAL_PHRASES[:4])}, ...). Nothing records where things "
            "are in these photos"
            + (": judge the best-scored ones below." if said else ".")
        )
        beside = {n: f"a reference: {references[n][0]}" for n in shown}
        recap = "they cannot tell a right spatial relation from a wrong one"
        return RelationCheck(summary, recap, shown, beside)
    judged = {n: relation_is_wrong(c, truth[n]) for n, c in captions.items()}
    right = [n for n, wrong in judged.items() if wrong is False]
    wrong = [n for n, wrong in judged.items() if wrong]
    mean = {
        k: sum(scores[n] for n in v) / max(len(v), 1)
        for k, v in (("right", right), ("wrong", wrong))
    }
    summary = (
        f"{len(right) + len(wrong)} of {len(captions)} captions say where one shape is "
        f"from another; **{len(wrong)} get it wrong**. Mean CIDEr-D of the right "
        f"ones {mean['right']:.2f}, of the wrong ones {mean['wrong']:.2f}."
    )
    recap = (
        f"here the {len(wrong)} captions with the wrong spatial relation averaged "
        f"CIDEr-D {mean['wrong']:.2f}, the {len(right)} right ones {mean['right']:.2f}"
    )
    shown = sorted(wrong, key=scores.get, reverse=True)[:3] or right[:3]
    beside = {
        n: f"truth: the {truth[n]['things'][0]['kind']} is {truth[n]['relation']} "
        f"the {truth[n]['things'][1]['kind']}"
        for n in shown
    }
    return RelationCheck(summary, recap, shown, beside)
