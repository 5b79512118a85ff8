"""Feature extraction throughput: the full pipeline against the bare model, side by side.

    python benchmarks/features.py [--images 128] [--batch-size 16]

Both use the same encoder object and batch size. "pipeline" is `features.extract`
from JPEG files on disk (decode, resize, preprocess, forward pass, float16 memmap
write, progress file). "bare" is the forward pass alone on tensors already in memory.
Target: pipeline >= 90% of bare throughput.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from helpers import encoders, features, sample


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass of one image (convolutions only)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            kernel_h, kernel_w = layer.kernel_size
            total += (
                height
                * width
                * channels_out
                * kernel_h
                * kernel_w
                * layer.input.shape[-1]
            )
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    n, batch = args.images, args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        folder = sample.write_sample(Path(tmp) / "data", n, seed=11)
        paths = {p.name: p for p in sorted((folder / "Flicker8k_Dataset").iterdir())}
        model = encoders.build_encoder("vgg16", None, 224)
        images = tf.random.uniform((batch, 224, 224, 3), -120, 120)
        model.predict_on_batch(images)  # trace and warm up once, for both
        start = time.perf_counter()
        for _ in range(n // batch):
            model.predict_on_batch(images)
        bare = (n // batch) * batch / (time.perf_counter() - start)

        start = time.perf_counter()
        features.extract(
            paths,
            Path(tmp) / "out",
            weights=None,
            batch_size=batch,
            progress=False,
            model=model,
        )
        pipeline = n / (time.perf_counter() - start)
    macs = count_macs(model)
    print(
        f"VGG16 to block5_conv3 at 224x224: {macs / 1e9:.2f} GMACs = "
        f"{2 * macs / 1e9:.1f} GFLOPs per image"
    )
    print(
        f"bare model (tensors in memory): {bare:6.2f} images/s, "
        f"{bare * 2 * macs / 1e9:.0f} GFLOP/s"
    )
    print(
        f"pipeline (JPEG files on disk):  {pipeline:6.2f} images/s, "
        f"{pipeline * 2 * macs / 1e9:.0f} GFLOP/s"
    )
    print(
        f"ratio pipeline / bare: {pipeline / bare:.3f} (target >= 0.90), "
        f"{n} images, batch {batch}, {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
