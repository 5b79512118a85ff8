"""Self-critical training's gain across training seeds, side by side with cross-entropy.

    python benchmarks/scst_seeds.py [--profile sample] [--seeds 1234 1 2 3 4]

One dev and one test split of 100 pictures judge a training run: how much of a gain
is the method and how much the seed? This trains notebook 08's self-critical decoder
once per seed (the seed orders the pictures and draws the samples; data, splits and
the cross-entropy decoder stay those of notebooks 02 and 04, so run `make demo` first)
and prints, for every seed, CIDEr-D and BLEU-4 at beam 3 on dev and test beside the
cross-entropy decoder's, then the test gain's mean and range. Runs go to
`artifacts/<profile>/scst-seeds/<seed>/` (the profile's own seed: notebook 08's
`scst/`): a finished one is reused, a killed one resumes. About 6 min per seed on the sample on a 2-core CPU.
"""

import argparse
import dataclasses

import numpy as np

from helpers import bundle, data, metrics, paths, scst
from helpers.config import get_config
from helpers.corpus import Corpus
from helpers.decode import Decoder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="sample")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 1, 2, 3, 4])
    args = parser.parse_args()
    cfg = get_config(args.profile)
    out = paths.artifacts_dir(cfg)
    dataset = data.load_profile_dataset(cfg)
    corpus = Corpus.load(out, dataset)
    array, index = corpus.features, corpus.index
    cross_entropy = bundle.load_bundle(
        out / "bundle", "attention", bundle.encoder_identity(index)
    )
    vocabulary = cross_entropy.vocabulary

    def scores(decoder):  # {split: (CIDEr-D, BLEU-4)} at beam 3
        decode = Decoder.from_config(decoder, vocabulary, cfg)
        result = {}
        for split in ("dev", "test"):
            names = dataset.splits[split]
            texts = decode.caption(array, index["names"], names, 3)
            table = metrics.evaluate(
                {n: dataset.captions[n] for n in names},
                {n: r["text"] for n, r in texts.items()},
                meteor=False,
            )
            result[split] = table["cider"], table["bleu4"]
        return result

    base = scores(cross_entropy.model)
    header = "dev CIDEr-D  BLEU-4   test CIDEr-D  BLEU-4   test gain"
    print(f"{'beam 3':16s}{header}")

    def line(label, result, gain=""):
        (dc, db), (tc, tb) = result["dev"], result["test"]
        print(f"{label:16s}{dc:11.3f}{db:8.3f}{tc:15.3f}{tb:8.3f}   {gain}")

    line("cross-entropy", base)
    gains = []
    for seed in args.seeds:
        model, _ = scst.train_scst(
            cross_entropy.model,
            corpus,
            dataclasses.replace(cfg, seed=seed),
            out / "scst" if seed == cfg.seed else out / "scst-seeds" / str(seed),
        )
        result = scores(model.decoder)
        gains.append(result["test"][0] / base["test"][0] - 1)
        line(f"SCST, seed {seed}", result, f"{gains[-1]:+.1%}")
    print(
        f"test CIDEr-D gain over {len(gains)} seeds: mean {np.mean(gains):+.1%}, "
        f"from {min(gains):+.1%} to {max(gains):+.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
