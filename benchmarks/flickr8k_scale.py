"""What the whole series costs at Flickr8k's size on this machine, profile by profile.

    python benchmarks/flickr8k_scale.py [--profiles flickr8k flickr8k-cpu] [--steps 10]

Synthetic data of Flickr8k's real sizes: 8,091 images of 196x512 float16 features in a
memmap, 6,000 training images with five captions each (lengths drawn like Flickr8k's:
mean 11.8 words, at most 38), a vocabulary of 2,540 words (Flickr8k's training words
seen at least five times). Each profile runs in its own process (its own peak memory)
and measures: training steps of the attention and merge decoders through the real
input pipeline (plus the validation pass over 5,000 dev captions, per epoch), batched beam-3 decoding (an untrained model runs to the maximum
length, 21 words: slower than a trained one), and the encoder's forward pass (random
weights cost the same as ImageNet's). The projection adds up what the notebooks do:
features for every image, three training runs for the profile's `epochs` (attention,
merge, shuffled-feature control; early stopping may end them sooner), and nine
decodings of the 1,000 test images (notebooks 04-06).
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGES, TRAIN_IMAGES, DEV_IMAGES, TEST_IMAGES = 8091, 6000, 1000, 1000
CAPTIONS_PER_IMAGE = 5
GRID, DIM, VOCABULARY, MAX_LENGTH = 196, 512, 2540, 38
# benchmarks/features.py on this machine: the JPEG pipeline ran at 0.68 of the bare
# forward pass (0.93 on a faster 2-core machine); the projection uses the slower one.
PIPELINE_SHARE = 0.68


def synthetic(folder: Path, max_length_percentile: float):
    """The feature memmap and the training caption table (rows, padded token ids).

    Captions are cut at the profile's length percentile, as `Vocabulary.fit` does;
    at 100 the table is as wide as Flickr8k's longest caption (38 words).
    """
    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / "features.npy"
    if not path.exists():
        array = np.lib.format.open_memmap(path, "w+", np.float16, (IMAGES, GRID, DIM))
        for start in range(0, IMAGES, 500):
            chunk = rng.normal(size=(min(500, IMAGES - start), GRID, DIM))
            array[start : start + 500] = np.abs(chunk).astype(np.float16)  # ReLU-like
        array.flush()
        del array
    captions = TRAIN_IMAGES * CAPTIONS_PER_IMAGE
    lengths = np.clip(rng.normal(11.8, 3.8, captions).round().astype(int), 1, MAX_LENGTH)
    if max_length_percentile < 100:
        cap = int(np.percentile(lengths, max_length_percentile, method="inverted_cdf"))
        lengths = np.minimum(lengths, cap)
    width = lengths.max() if max_length_percentile < 100 else MAX_LENGTH
    tokens = np.zeros((captions, width + 2), np.int32)
    for row, length in enumerate(lengths):
        tokens[row, 0], tokens[row, length + 1] = 1, 2  # <start> ... <end>
        tokens[row, 1 : length + 1] = rng.integers(4, VOCABULARY, length)
    rows = np.repeat(np.arange(TRAIN_IMAGES), CAPTIONS_PER_IMAGE)
    return np.load(path, mmap_mode="r"), rows, tokens


def measure(profile: str, folder: Path, steps: int) -> dict:
    """Seconds per epoch of each decoder, beam-3 captions/s and encoder images/s."""
    import keras
    import numpy as np

    from helpers import features as encoders
    from helpers import model as models
    from helpers import train
    from helpers.config import get_config
    from helpers.decode import Decoder
    from helpers.text import SPECIAL, Vocabulary

    cfg = get_config(profile)
    array, rows, tokens = synthetic(folder, cfg.max_length_percentile)
    data = train.make_dataset(array, rows, tokens, cfg.batch_size, shuffle=True)
    steps_per_epoch = int(np.ceil(len(rows) / cfg.batch_size))
    result = {
        "profile": profile,
        "epochs": cfg.epochs,
        "units": cfg.units,
        "words": tokens.shape[1] - 2,
    }
    models_built = {}
    for kind in ("attention", "merge"):
        model = models_built[kind] = models.build(
            kind, cfg, VOCABULARY, (GRID, DIM), np.zeros(DIM), np.ones(DIM)
        )
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=cfg.clip_norm),
            loss=train.masked_loss(),
            jit_compile=False,  # as train.fit on a CPU
        )
        model.fit(data.take(2), verbose=0)  # build and trace outside the timing
        start = time.perf_counter()
        model.fit(data.take(steps), verbose=0)
        epoch = (time.perf_counter() - start) / steps * steps_per_epoch
        model.evaluate(data.take(2), verbose=0)
        start = time.perf_counter()
        model.evaluate(data.take(steps), verbose=0)
        dev_steps = np.ceil(DEV_IMAGES * CAPTIONS_PER_IMAGE / cfg.batch_size)
        result[f"{kind}_epoch_s"] = (
            epoch + (time.perf_counter() - start) / steps * dev_steps
        )
    words = [*SPECIAL, *(f"w{i}" for i in range(VOCABULARY - len(SPECIAL)))]
    vocabulary = Vocabulary(tuple(words), max_length=20, min_count=cfg.min_word_count)
    decoder = Decoder(models_built["attention"], vocabulary)
    batch = np.asarray(array[:128], np.float32)
    decoder(batch[:8], 3)  # compile
    start = time.perf_counter()
    decoder(batch, 3)
    result["beam3_captions_per_s"] = len(batch) / (time.perf_counter() - start)
    encoder = encoders.build_encoder(cfg.encoder, None, cfg.image_size, cfg.seed)
    pictures = np.random.default_rng(0).uniform(0, 255, (16, 224, 224, 3))
    encoder.predict(pictures[:4], verbose=0)
    start = time.perf_counter()
    encoder.predict(pictures, batch_size=16, verbose=0)
    result["encoder_images_per_s"] = len(pictures) / (time.perf_counter() - start)
    result["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def projected_minutes(r: dict) -> dict:
    """Minutes for each stage of the series and in all, from one profile's measures."""
    stages = {
        "features": IMAGES / (r["encoder_images_per_s"] * PIPELINE_SHARE) / 60,
        "training": r["epochs"] * (2 * r["attention_epoch_s"] + r["merge_epoch_s"]) / 60,
        "decoding": 9 * TEST_IMAGES / r["beam3_captions_per_s"] / 60,
    }
    return {**stages, "total": sum(stages.values())}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profiles", nargs="+", default=["flickr8k", "flickr8k-cpu"])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        print(json.dumps(measure(args.run, args.folder, args.steps)))
        return
    print(
        "| profile | LSTM units | words per caption | s/epoch attention | s/epoch merge | epochs | "
        "beam-3 captions/s | encoder images/s | peak GiB | projected minutes: "
        "features + training + decoding = total |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for profile in args.profiles:
            command = [
                sys.executable,
                __file__,
                "--run",
                profile,
                "--folder",
                folder,
                "--steps",
                str(args.steps),
            ]
            output = subprocess.run(command, capture_output=True, text=True, check=True)
            r = json.loads(output.stdout.strip().splitlines()[-1])
            m = projected_minutes(r)
            print(
                f"| {profile} | {r['units']} | {r['words']} | {r['attention_epoch_s']:.0f} | "
                f"{r['merge_epoch_s']:.0f} | {r['epochs']} | "
                f"{r['beam3_captions_per_s']:.0f} | {r['encoder_images_per_s']:.1f} | "
                f"{r['peak_gib']:.1f} | {m['features']:.0f} + {m['training']:.0f} + "
                f"{m['decoding']:.0f} = **{m['total']:.0f}** |",
                flush=True,
            )


if __name__ == "__main__":
    main()
