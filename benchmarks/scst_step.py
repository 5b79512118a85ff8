"""Self-critical training's gradient pass: one start per picture against one per sample.

    python benchmarks/scst_step.py [--profile sample] [--repeats 20]

Each step scores `scst_samples` captions of each of `scst_pictures` pictures with one
teacher-forced pass. The samples of a picture share its features, so its decoder start
(the normalised features and their attention projection) can be made once and
repeated (`decode.repeat_state`, what `SelfCritical.train_step` does) instead of
repeating the features and making the same start once per sample. This times the
forward and backward pass both ways on the same batch, side by side, checks that the
gradients agree, and prints the ratio. Uses notebook 04's attention decoder from
`artifacts/<profile>/bundle/` (run the notebooks first).
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from helpers import bundle, cache, paths
from helpers.config import get_config
from helpers.decode import repeat_state


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="sample")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    cfg = get_config(args.profile)
    out = paths.artifacts_dir(cfg)
    array, index = cache.load_features(out / "features")
    decoder = bundle.load_bundle(
        out / "bundle", "attention", bundle.encoder_identity(index)
    ).model
    k, pictures = cfg.scst_samples, cfg.scst_pictures
    rng = np.random.default_rng(0)
    batch = tf.constant(np.asarray(array[:pictures], np.float32))
    words = tf.constant(rng.integers(3, decoder.vocabulary_size, (pictures * k, 20)))
    variables = decoder.trainable_variables

    def gradients(logits_of):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.log_softmax(logits_of())[..., 4])
        return [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    def per_sample():  # the features repeated, a start for every sample
        return decoder((tf.repeat(batch, k, axis=0), words))

    def per_picture():  # one start per picture, repeated
        return decoder.unroll(repeat_state(decoder.initial_state(batch), k), words)[0]

    ways = {
        "a start per sample": tf.function(lambda: gradients(per_sample)),
        "a start per picture": tf.function(lambda: gradients(per_picture)),
    }
    results = {name: way() for name, way in ways.items()}  # traced, and compared
    for a, b in zip(*results.values()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-6)
    seconds = {name: [] for name in ways}
    for _ in range(args.repeats):  # interleaved, so both see the same machine
        for name, way in ways.items():
            started = time.perf_counter()
            way()
            seconds[name].append(time.perf_counter() - started)
    median = {name: float(np.median(times)) for name, times in seconds.items()}
    print(f"{pictures} pictures x {k} samples, 20 words, forward and backward:")
    for name, value in median.items():
        print(f"  {name:20s} {value * 1000:7.1f} ms (median of {args.repeats})")
    first, second = median.values()
    print(f"a start per picture is {first / second:.2f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
