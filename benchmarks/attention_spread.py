"""How much the attention decoder looks on real photographs, and what changes it.

    python benchmarks/attention_spread.py DATA_DIR [--variants NAME ...] [--seeds ...]

DATA_DIR is a folder in the original Flickr8k layout with the official train and dev
split files, e.g. `../shared/flickr8k-subset`. Each variant (a few `flickr8k-cpu`
fields changed, VARIANTS below) trains the attention decoder once per seed on the
official train photos less a tenth held out for early stopping (the split of
`real_photos.official_splits`, the same for every seed), then captions the official
dev photos at beam 3 with the profile's length penalty and no repeated trigram, and
once more also blocking every repeated word pair. It prints, per run and as the
median over the seeds:

- `perplexity`: the median over all dev caption words of the perplexity of a word's
  attention (`maps.perplexity`: L for an even spread over the L cells, 1 for one
  cell), and as a share of L; `peak`: the mean of each word's largest weight;
- dev CIDEr-D and BLEU-4, and the share of captions repeating a word pair, with the
  trigram guard and with repeated pairs blocked too (`+pairs`).

Lite0 features are extracted to (or read from) `--features`; runs and `spread.json`
(every result, reused when a run is finished) go to `--out`. Nothing here is
committed: the photos stay where they are.
"""

import argparse
import statistics
from pathlib import Path

import numpy as np

from benchmarks.real_photos import official_splits
from helpers import cache, data, features, maps, metrics, paths, train
from helpers.config import get_config
from helpers.corpus import Corpus
from helpers.decode import Decoder
from helpers.files import read_json, write_json_atomic
from helpers.text import Vocabulary

VARIANTS = {
    "penalty 1": {"attention_penalty": 1.0},  # the paper's weight
    "penalty 0.1": {"attention_penalty": 0.1},
    "penalty 0": {"attention_penalty": 0.0},
}
COLUMNS = ["perplexity", "share", "peak", "cider", "bleu4", "pairs"]


def score(decoder, array, names, dev, references) -> dict:
    """Beam-3 captions of the dev photos: attention spread, scores, repeats."""
    results = decoder.caption(array, names, dev, 3)
    attention = [r["attention"] for r in results.values() if len(r["attention"])]
    hypotheses = {n: r["text"] for n, r in results.items()}
    row = metrics.evaluate(references, hypotheses, meteor=False)
    quality = metrics.caption_quality(list(hypotheses.values()))
    words = np.concatenate(attention)  # (words, grid)
    return {
        "perplexity": float(np.median(maps.perplexity(words))),
        "share": float(np.median(maps.perplexity(words)) / words.shape[-1]),
        "peak": float(words.max(-1).mean()),
        "cider": row["cider"],
        "bleu4": row["bleu4"],
        "pairs": quality["repeated_pairs"],
        "trigrams": quality["repeated_trigrams"],
        "examples": [hypotheses[n] for n in dev[:: max(1, len(dev) // 5)]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, default=paths.ARTIFACTS / "attention-spread")
    parser.add_argument("--features", type=Path, help="default: OUT/features")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="at most")
    args = parser.parse_args()
    base = get_config("flickr8k-cpu", data_dir=str(args.data_dir.resolve()))
    dataset = data.load_dataset(args.data_dir, base.seed)
    split = official_splits(dataset, base.seed)
    folder = args.features or args.out / "features"
    if not (folder / cache.INDEX).exists():
        features.extract(
            dataset.image_paths,
            folder,
            encoder=base.encoder,
            weights=base.weights,
            image_size=base.image_size,
            batch_size=base.feature_batch_size,
            seed=base.seed,
        )
    array, index = cache.load_features(folder)
    names = index["names"]
    vocabulary = Vocabulary.fit(
        [c for n in split["train"] for c in dataset.captions[n]],
        base.min_word_count,
        base.max_length_percentile,
    )
    splits = {"train": split["train"], "dev": split["val"]}  # what training sees
    corpus = Corpus(array, index, dataset.captions, splits, vocabulary)
    references = {n: dataset.captions[n] for n in split["dev"]}
    print(
        f"train {len(split['train'])}, early stopping {len(split['val'])}, "
        f"scored (official dev) {len(split['dev'])} photos; grid {array.shape[1]}"
    )
    results_path = args.out / "spread.json"
    results = read_json(results_path) if results_path.exists() else {}
    for variant in args.variants:
        for seed in args.seeds:
            key = f"{variant} / {seed}"
            if key in results:
                continue
            cfg = get_config(
                "flickr8k-cpu",
                data_dir=base.data_dir,
                epochs=args.epochs,
                seed=seed,
                **VARIANTS[variant],
            )
            out = args.out / "train" / variant.replace(" ", "_") / str(seed)
            model, log = train.train(corpus, cfg, "attention", out)
            guarded, blocked = (
                Decoder(
                    model,
                    vocabulary,
                    length_penalty=cfg.length_penalty,
                    block_repeated_trigrams=True,
                    block_repeated_pairs=pairs,
                )
                for pairs in (False, True)
            )
            row = score(guarded, array, names, split["dev"], references)
            plus = score(blocked, array, names, split["dev"], references)
            row |= {f"{c} +pairs": plus[c] for c in ("cider", "bleu4", "pairs")}
            row |= {
                "epochs": len(log),
                "val_loss": min(r["val_loss"] for r in log),
                "examples +pairs": plus["examples"],
            }
            # Read again before writing: another process may run other variants.
            results = read_json(results_path) if results_path.exists() else {}
            results[key] = row
            write_json_atomic(results_path, results)
    print_table(results, args.variants, args.seeds)
    print(f"\n{results_path}")
    return 0


def print_table(results: dict, variants: list[str], seeds: list[int]) -> None:
    """One row per run and one per variant (the median over its seeds)."""
    columns = [*COLUMNS, "cider +pairs", "bleu4 +pairs", "pairs +pairs", "val_loss"]
    print("| run | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1))
    for variant in variants:
        runs = {k: results[k] for s in seeds if (k := f"{variant} / {s}") in results}
        if not runs:
            continue
        median = {c: statistics.median(r[c] for r in runs.values()) for c in columns}
        for label, row in [*runs.items(), (f"**{variant}, median**", median)]:
            cells = [
                f"{row[c]:.0%}"
                if c in ("share", "pairs", "pairs +pairs")
                else f"{row[c]:.1f}"
                if c == "perplexity"
                else f"{row[c]:.3f}"
                for c in columns
            ]
            print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
