"""XLA on the device at hand: training steps and decoding with and without jit_compile.

    python benchmarks/xla.py [--profile flickr8k-cpu] [--steps 20]

Side by side in one process, on the same synthetic batch (the profile's batch size,
196x512 features, captions of 20 words, a 2,540-word vocabulary): training steps per
second of the attention decoder compiled with `jit_compile=False` and `True`, and
greedy and beam-3 captions per second of the compiled decoder with and without XLA,
and the seconds its first call takes (tracing and compiling, paid once per process).
`helpers.devices.XLA_BY_DEVICE` records the choice these numbers justify per device.
"""

import argparse
import time

import keras
import numpy as np

from helpers import corpus as corpora
from helpers import devices, train
from helpers import model as models
from helpers.config import get_config
from helpers.decode import Decoder
from helpers.text import SPECIAL, Vocabulary

GRID, DIM, VOCABULARY, WORDS = 196, 512, 2540, 20


def steps_per_second(cfg, jit_compile: bool, steps: int) -> float:
    rng = np.random.default_rng(0)
    features = rng.random((cfg.batch_size, GRID, DIM), np.float32)
    tokens = rng.integers(4, VOCABULARY, (cfg.batch_size, WORDS + 2)).astype(np.int32)
    inputs, targets, weights = corpora.teacher_forcing(features, tokens)
    keras.utils.set_random_seed(0)
    model = models.build(
        "attention", cfg, VOCABULARY, (GRID, DIM), np.zeros(DIM), np.ones(DIM)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.learning_rate),
        loss=train.masked_loss(),
        jit_compile=jit_compile,
    )
    for _ in range(3):  # build, trace and compile outside the timing
        model.train_on_batch(inputs, targets, weights)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(inputs, targets, weights)
    return steps / (time.perf_counter() - start), model


def captions_per_second(model, jit_compile: bool, beam_width: int):
    """(captions/s once compiled, seconds of the first call: tracing and compiling)."""
    words = [*SPECIAL, *(f"w{i}" for i in range(VOCABULARY - len(SPECIAL)))]
    vocabulary = Vocabulary(tuple(words), max_length=WORDS, min_count=1)
    decoder = Decoder(model, vocabulary, jit_compile=jit_compile)
    batch = np.random.default_rng(1).random((64, GRID, DIM), np.float32)
    start = time.perf_counter()
    decoder(batch, beam_width)  # trace and compile
    first = time.perf_counter() - start
    start = time.perf_counter()
    decoder(batch, beam_width)
    return len(batch) / (time.perf_counter() - start), first


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="flickr8k-cpu")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    args = parser.parse_args()
    cfg = get_config(args.profile)
    device = "GPU" if devices.gpus() else "CPU"
    print(
        f"{device}, profile {args.profile}: batch {cfg.batch_size}, {cfg.units} LSTM "
        f"units, {WORDS} words per caption; now chosen: XLA for training "
        f"{devices.use_xla('training')}, for decoding {devices.use_xla('decoding')}"
    )
    print("| measure | without XLA | with XLA | ratio with/without |")
    print("|---|---|---|---|")
    rates = {}
    for jit in (False, True):
        rates[("training steps/s", jit)], model = steps_per_second(cfg, jit, args.steps)
        for width in (1, 3):
            rate, first = captions_per_second(model, jit, width)
            rates[(f"beam-{width} captions/s", jit)] = rate
            rates[(f"beam-{width} first call, s (compiling)", jit)] = first
    for measure in dict.fromkeys(m for m, _ in rates):
        off, on = rates[(measure, False)], rates[(measure, True)]
        print(f"| {measure} | {off:.2f} | {on:.2f} | {on / off:.2f} |", flush=True)


if __name__ == "__main__":
    main()
