"""Fine-tuning VGG16 block5: from the frozen part's cache against from the pictures.

    python benchmarks/finetune.py [--profile sample] [--steps 3]

Side by side in one process, on the same synthetic batch at 224x224 (the profile's
decoder and batch size, captions of 12 words, five per picture): seconds per training
step of
- ours: `finetune.FineTuner` on cached `block4_pool` outputs, block5 run once per
  picture for its five captions;
- the naive way: the whole VGG16 on every caption's picture (block5 trainable, the
  rest frozen but still run forward), as fine-tuning from JPEG files does.
Both are projected to one epoch of the profile's training split (its pictures x 5
captions) and their ratio printed. The weights are random: speed does not depend on them.
"""

import argparse
import time

import keras
import numpy as np

from helpers import corpus as corpora
from helpers import data, encoders, finetune, train
from helpers import model as models
from helpers.config import get_config

VOCABULARY, WORDS, PER_IMAGE = 500, 12, 5


def seconds_per_step(model, inputs, targets, weights, steps: int) -> float:
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=train.masked_loss())
    for _ in range(2):  # build and trace outside the timing
        model.train_on_batch(inputs, targets, weights)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(inputs, targets, weights)
    return (time.perf_counter() - start) / steps


class Naive(keras.Model):
    """The whole encoder on every caption's picture, then the decoder."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def call(self, inputs, training=False):
        images, words = inputs
        grid = self.encoder(images, training=False)
        grid = keras.ops.reshape(grid, (-1, grid.shape[1] * grid.shape[2], grid.shape[3]))
        return self.decoder((grid, words), training=training)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="sample")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    cfg = get_config(args.profile)
    train_images = len(data.load_profile_dataset(cfg).splits["train"])
    rng = np.random.default_rng(0)
    images = max(1, cfg.batch_size // PER_IMAGE)  # pictures per step, ours
    tokens = rng.integers(4, VOCABULARY, (images, PER_IMAGE, WORDS + 2)).astype(np.int32)

    encoder = encoders.build_encoder("vgg16", None, 224)
    frozen = keras.Model(encoder.input, encoder.get_layer("block4_pool").output)
    pictures = rng.uniform(-100, 100, (images, 224, 224, 3)).astype(np.float32)
    cache = frozen.predict_on_batch(pictures).reshape(images, 196, 512)

    def decoder():
        keras.utils.set_random_seed(0)
        return models.build(
            "attention", cfg, VOCABULARY, (196, 512), np.zeros(512), np.ones(512)
        )

    ours = finetune.FineTuner(encoders.tuned_part(encoder, "vgg16"), decoder())
    (inputs, words), targets, weights = corpora.teacher_forcing(cache, tokens)
    step_ours = seconds_per_step(ours, (inputs, words), targets, weights, args.steps)

    naive = Naive(encoder, decoder())  # block5 trainable, the rest frozen
    flat = tokens.reshape(-1, WORDS + 2)  # the same captions, one picture each
    repeated = np.repeat(pictures, PER_IMAGE, axis=0)
    (inputs, words), targets, weights = corpora.teacher_forcing(repeated, flat)
    step_naive = seconds_per_step(naive, (inputs, words), targets, weights, args.steps)

    steps = int(np.ceil(train_images / images))
    print(
        f"profile {cfg.profile}: {train_images} training pictures x {PER_IMAGE} "
        f"captions, {images} pictures ({images * PER_IMAGE} captions) per step"
    )
    print(
        f"  ours, from the block4_pool cache: {step_ours:6.2f} s/step, "
        f"{step_ours * steps:7.0f} s/epoch"
    )
    print(
        f"  naive, whole VGG16 per caption:   {step_naive:6.2f} s/step, "
        f"{step_naive * steps:7.0f} s/epoch"
    )
    print(f"  ratio {step_naive / step_ours:.1f}x")


if __name__ == "__main__":
    main()
