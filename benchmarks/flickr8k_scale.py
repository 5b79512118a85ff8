"""What the whole series costs at Flickr8k's size on this machine, profile by profile.

    python benchmarks/flickr8k_scale.py [--profiles flickr8k flickr8k-cpu] [--steps 10]

Synthetic data of Flickr8k's real sizes: 8,091 images of the profile's feature grid
(VGG16 196x512, EfficientNet-Lite0 49x1280) in a float16 memmap, 6,000 training images
with five captions each (lengths drawn like Flickr8k's: mean 11.8 words, at most 38),
a vocabulary of 2,540 words (Flickr8k's training words seen at least five times).
Each profile runs in its own process (its own peak memory) and measures, with the
profile's sizes: training steps of the attention and merge decoders through the real
input pipeline (plus the validation pass over 5,000 dev captions, per epoch), a
fine-tuning step (the encoder's tuned part on its cached input, under the decoder), a
self-critical step (sampling, the CIDEr-D reward, the gradient pass), batched beam-3
decoding (an untrained model runs to the maximum length: slower than a trained one)
and feature extraction from JPEG files of Flickr8k's size through the pipeline of
notebook 02 (random weights cost the same as ImageNet's). The
projection adds up what the eight notebooks do: features for every image, three
training runs for the profile's `epochs` (attention, merge, shuffled-feature control;
early stopping may end them sooner), `finetune_epochs` of fine-tuning and
`scst_epochs` of self-critical training (each with a dev pass), and the decodings of
the 1,000 test images in notebooks 04 to 08.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers import paths
from helpers.files import write_json_atomic

IMAGES, TRAIN_IMAGES, DEV_IMAGES, TEST_IMAGES = 8091, 6000, 1000, 1000
CAPTIONS_PER_IMAGE = 5
VOCABULARY, MAX_LENGTH = 2540, 38
# Beam-3-sized decodings of the test split: notebook 04 three greedy, 05 eight (beam
# 1, 3, 5 and four guard settings), 06 six, 07 two, 08 four and a greedy dev pass.
DECODINGS = 24


def synthetic(folder: Path, grid: int, dim: int, max_length_percentile: float):
    """The feature memmap and the training caption table (rows, padded token ids).

    Captions are cut at the profile's length percentile, as `Vocabulary.fit` does;
    at 100 the table is as wide as Flickr8k's longest caption (38 words).
    """
    import numpy as np

    rng = np.random.default_rng(0)
    path = folder / f"features-{grid}x{dim}.npy"
    if not path.exists():
        array = np.lib.format.open_memmap(path, "w+", np.float16, (IMAGES, grid, dim))
        for start in range(0, IMAGES, 500):
            chunk = rng.normal(size=(min(500, IMAGES - start), grid, dim))
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


def synthetic_photos(folder: Path, count: int) -> list[Path]:
    """`count` JPEG files like Flickr8k's (500x375, about 130 KB): smooth colours and
    grain, so that decoding costs what a photograph's does."""
    import numpy as np
    from PIL import Image

    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    files = []
    for i in range(count):
        path = folder / f"{i:05d}.jpg"
        if not path.exists():
            coarse = Image.fromarray(rng.uniform(0, 255, (12, 16, 3)).astype(np.uint8))
            pixels = np.asarray(coarse.resize((500, 375), Image.BICUBIC), np.float32)
            pixels += rng.normal(0, 16, pixels.shape)
            picture = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
            picture.save(path, "JPEG", quality=95)
        files.append(path)
    return files


def timed(step, steps: int) -> float:
    """Seconds per call of `step()`, after two calls to build and trace it."""
    step()
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def measure(profile: str, folder: Path, steps: int) -> dict:
    """Seconds per epoch of each training job, beam-3 captions/s, encoder images/s."""
    import keras
    import numpy as np

    from helpers import corpus as corpora
    from helpers import encoders, features, finetune, scst, train
    from helpers import model as models
    from helpers.config import get_config
    from helpers.decode import Decoder
    from helpers.text import SPECIAL, Vocabulary

    cfg = get_config(profile)
    encoder = encoders.build_encoder(cfg.encoder, None, cfg.image_size, cfg.seed)
    _, height, width, dim = encoder.output_shape
    grid = height * width
    array, rows, tokens = synthetic(folder, grid, dim, cfg.max_length_percentile)
    data = iter(corpora.make_dataset(array, rows, tokens, cfg.batch_size, shuffle=True))
    steps_per_epoch = int(np.ceil(len(rows) / cfg.batch_size))
    dev_steps = np.ceil(DEV_IMAGES * CAPTIONS_PER_IMAGE / cfg.batch_size)
    result = {
        "profile": profile,
        "encoder": cfg.encoder,
        "grid": f"{grid}x{dim}",
        "units": cfg.units,
        "words": tokens.shape[1] - 2,
        **{k: getattr(cfg, k) for k in ("epochs", "finetune_epochs", "scst_epochs")},
    }

    def compiled(model):
        model.compile(
            optimizer=keras.optimizers.Adam(cfg.learning_rate, clipnorm=cfg.clip_norm),
            loss=train.masked_loss(),
            jit_compile=False,  # as train.fit on a CPU
        )
        return model

    decoders = {}
    for kind in ("attention", "merge"):
        model = decoders[kind] = compiled(
            models.build(kind, cfg, VOCABULARY, (grid, dim), np.zeros(dim), np.ones(dim))
        )
        batch = next(data)
        train_s = timed(lambda: model.train_on_batch(*batch), steps)  # noqa: B023
        dev_s = timed(lambda: model.test_on_batch(*batch), steps)  # noqa: B023
        result[f"{kind}_epoch_s"] = train_s * steps_per_epoch + dev_s * dev_steps

    words = [*SPECIAL, *(f"w{i}" for i in range(VOCABULARY - len(SPECIAL)))]
    vocabulary = Vocabulary(tuple(words), max_length=20, min_count=cfg.min_word_count)
    decoder = Decoder(decoders["attention"], vocabulary)
    batch = np.asarray(array[:128], np.float32)
    decoder(batch[:8], 3)  # compile
    start = time.perf_counter()
    decoder(batch, 3)
    result["beam3_captions_per_s"] = len(batch) / (time.perf_counter() - start)

    # Fine-tuning: whole pictures of five captions, the tuned part on its cached input.
    spec = encoders.ENCODERS[cfg.encoder]
    frozen_shape = encoder.get_layer(spec.frozen).output.shape[1:]
    tuner = compiled(
        finetune.FineTuner(
            encoders.tuned_part(encoder, cfg.encoder), decoders["attention"]
        )
    )
    pictures = max(1, cfg.batch_size // CAPTIONS_PER_IMAGE)
    cache = np.abs(np.random.default_rng(1).normal(size=(pictures, *frozen_shape)))
    cache = cache.reshape(pictures, -1, frozen_shape[-1]).astype(np.float32)
    grouped = tokens[: pictures * CAPTIONS_PER_IMAGE].reshape(pictures, 5, -1)
    batch = corpora.teacher_forcing(cache, grouped)
    tune_s = timed(lambda: tuner.train_on_batch(*batch), steps)
    result["finetune_epoch_s"] = tune_s * np.ceil(TRAIN_IMAGES / pictures) + (
        tune_s / 3 * np.ceil(DEV_IMAGES / pictures)  # a forward pass: about a third
    )

    # Self-critical training: sample, score with CIDEr-D, one gradient pass.
    names = [f"p{i}" for i in range(TRAIN_IMAGES)]
    texts = {
        n: [vocabulary.decode(t) for t in tokens[i * 5 : i * 5 + 5]]
        for i, n in enumerate(names)
    }
    critic = scst.SelfCritical(
        decoders["attention"],
        max_length=vocabulary.max_length + 1,
        samples=cfg.scst_samples,
        baseline=cfg.scst_baseline,
        temperature=cfg.scst_temperature,
    )
    critic.reward = scst.Reward(texts, names, names, vocabulary)
    critic.compile(optimizer=keras.optimizers.Adam(1e-5), jit_compile=False)
    scst_features = np.asarray(array[: cfg.scst_pictures], np.float32)
    images = np.arange(cfg.scst_pictures, dtype=np.int32)
    critic.make_train_function()  # its train_step takes (features, images), no targets
    scst_s = timed(lambda: critic.train_function(iter([(scst_features, images)])), steps)
    greedy_s = 1 / (result["beam3_captions_per_s"] * 2)  # greedy: about twice beam 3
    result["scst_epoch_s"] = (
        scst_s * np.ceil(TRAIN_IMAGES / cfg.scst_pictures) + greedy_s * DEV_IMAGES
    )

    # Feature extraction as notebook 02 runs it, on JPEG files of Flickr8k's size. The
    # difference of two runs leaves out what one run pays once (building, tracing).
    seconds = []
    for count in (cfg.feature_batch_size, 3 * cfg.feature_batch_size):
        photos = {p.name: p for p in synthetic_photos(folder / "photos", count)}
        start = time.perf_counter()
        features.extract(
            photos,
            folder / f"{profile}-{count}",
            encoder=cfg.encoder,
            weights=None,
            image_size=cfg.image_size,
            batch_size=cfg.feature_batch_size,
            progress=False,
            model=encoder,
        )
        seconds.append(time.perf_counter() - start)
    result["encoder_images_per_s"] = (
        2 * cfg.feature_batch_size / (seconds[1] - seconds[0])
    )
    result["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return result


def projected_minutes(r: dict) -> dict:
    """Minutes for each stage of the series and in all, from one profile's measures."""
    stages = {
        "features": IMAGES / r["encoder_images_per_s"] / 60,
        "training": r["epochs"] * (2 * r["attention_epoch_s"] + r["merge_epoch_s"]) / 60,
        "fine-tuning": r["finetune_epochs"] * r["finetune_epoch_s"] / 60,
        "self-critical": r["scst_epochs"] * r["scst_epoch_s"] / 60,
        "decoding": DECODINGS * TEST_IMAGES / r["beam3_captions_per_s"] / 60,
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
        "| profile | encoder grid | LSTM units | words | s/epoch: attention, merge, "
        "fine-tuning, self-critical | epochs: cross-entropy, fine-tuning, self-critical "
        "| beam-3 captions/s | encoder images/s | peak GiB | projected minutes: features "
        "+ training + fine-tuning + self-critical + decoding = total |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    measured = []
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
            measured.append({**r, "grid": f"{r['encoder']} {r['grid']}", "minutes": m})
            print(
                f"| {profile} | {r['encoder']} {r['grid']} | {r['units']} | {r['words']} "
                f"| {r['attention_epoch_s']:.0f}, {r['merge_epoch_s']:.0f}, "
                f"{r['finetune_epoch_s']:.0f}, {r['scst_epoch_s']:.0f} "
                f"| {r['epochs']}, {r['finetune_epochs']}, {r['scst_epochs']} "
                f"| {r['beam3_captions_per_s']:.0f} | {r['encoder_images_per_s']:.1f} "
                f"| {r['peak_gib']:.1f} | "
                + " + ".join(f"{m[k]:.0f}" for k in m if k != "total")
                + f" = **{m['total']:.0f}** |",
                flush=True,
            )
    stages = [k.replace("-", " ") for k in measured[0]["minutes"] if k != "total"]
    path = write_json_atomic(
        paths.ARTIFACTS / "benchmarks" / "flickr8k_scale.json",
        {"stages": stages, "profiles": measured},
    )
    print(f"{path} (python -m helpers.report --collect puts it in docs/results/)")


if __name__ == "__main__":
    main()
