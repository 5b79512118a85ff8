"""What `deterministic=True` costs and buys: time per epoch and repeatability.

    python benchmarks/determinism.py [--profile sample] [--kind attention] [--epochs 3]

Trains the same decoder on the profile's cached features (run `make demo` first) four
times, each in a fresh process (determinism holds for a whole process): twice with the
profile's settings and twice with `deterministic=True` (TensorFlow's op determinism and
one op at a time, `helpers.devices.set_determinism`). Prints each mode's seconds per
epoch (building the model and data included), how many weights differ between its two
runs, and the ratio of the times. Runs go to a temporary folder and are removed.
"""

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

RUN = """
import sys, time
import numpy as np
from helpers import data, devices, paths, train
from helpers.config import get_config
from helpers.corpus import Corpus
profile, kind, epochs, deterministic, out = sys.argv[1:]
cfg = get_config(profile, deterministic=deterministic == "1")
devices.prepare(cfg)
corpus = Corpus.load(paths.artifacts_dir(cfg), data.load_profile_dataset(cfg))
start = time.perf_counter()
model, log = train.train(corpus, cfg, kind, out, epochs=int(epochs))
seconds = (time.perf_counter() - start) / len(log)
np.savez(out + ".npz", *model.get_weights(), seconds=seconds)
"""


def run(args, deterministic: bool, folder: Path, name: str) -> tuple[float, dict]:
    out = folder / name
    command = [sys.executable, "-c", RUN, args.profile, args.kind, str(args.epochs)]
    subprocess.run([*command, str(int(deterministic)), str(out)], check=True)
    weights = dict(np.load(f"{out}.npz"))
    return float(weights.pop("seconds")), weights


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="sample")
    parser.add_argument("--kind", default="attention", choices=["attention", "merge"])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for deterministic in (False, True):  # a then b for each mode
            results[deterministic] = [
                run(args, deterministic, Path(folder), f"{int(deterministic)}{run_}")
                for run_ in "ab"
            ]
    print(f"{args.kind}, {args.epochs} epochs   s/epoch   weights differing, run a vs b")
    for deterministic, ((time_a, a), (time_b, b)) in results.items():
        differing = sum(int((a[k] != b[k]).sum()) for k in a)
        label = "deterministic" if deterministic else "profile's settings"
        total = sum(v.size for v in a.values())
        print(f"{label:24s}{(time_a + time_b) / 2:8.1f}   {differing:,} of {total:,}")
    plain, fixed = (sum(t for t, _ in results[d]) for d in (False, True))
    print(f"deterministic / profile's settings, time per epoch: {fixed / plain:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
