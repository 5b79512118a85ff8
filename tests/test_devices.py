"""Devices: GPU checks on this CPU, XLA against no XLA, two devices against one."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_train import CFG, corpus_of, tiny_corpus

from helpers import corpus as corpora
from helpers import devices, train
from helpers import model as models
from helpers.config import get_config
from helpers.decode import Decoder

no_gpu = pytest.mark.skipif(bool(devices.gpus()), reason="this machine has a GPU")


@no_gpu
def test_profiles_sized_for_a_gpu_stop_at_once_and_say_why(monkeypatch):
    monkeypatch.delenv(devices.ALLOW_CPU, raising=False)
    for profile in ("gpu", "flickr8k", "flickr30k", "coco"):
        cfg = get_config(profile)
        with pytest.raises(
            RuntimeError, match="sized for a GPU and TensorFlow sees none"
        ):
            devices.prepare(cfg)
    for profile in ("flickr8k-cpu", "sample", "ci"):
        line = devices.prepare(get_config(profile))
        assert line.startswith("Device: CPU") and "precision float32" in line
    assert "install the gpu extra" in devices.device_problem(get_config("gpu"))
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: name)
    assert "CUDA libraries are installed" in devices.device_problem(get_config("gpu"))
    monkeypatch.setenv(devices.ALLOW_CPU, "1")
    assert devices.prepare(get_config("gpu")).startswith("Device: CPU")


def attention_model(seed=0):
    keras.utils.set_random_seed(seed)
    features, names, captions, splits, vocabulary = tiny_corpus()
    cfg = dataclasses.replace(CFG, dropout=0.0)  # random masks differ under XLA
    model = models.build(
        "attention", cfg, len(vocabulary), features.shape[1:], np.zeros(6), np.ones(6)
    )
    corpus = corpus_of(features, names, captions, {"train": names}, vocabulary)
    rows, tokens = corpus.table("train")
    return model, features[rows].astype(np.float32), tokens, vocabulary


def test_xla_gives_the_same_loss_weights_and_captions():
    losses, weights = [], []
    for jit_compile in (False, True):
        model, features, tokens, _ = attention_model()
        model.compile(  # SGD: Adam would blow float noise of zero gradients up to lr
            optimizer=keras.optimizers.SGD(0.5),
            loss=train.masked_loss(),
            jit_compile=jit_compile,
        )
        inputs, targets, sample_weights = corpora.teacher_forcing(features, tokens)
        losses.append(
            [
                float(model.train_on_batch(inputs, targets, sample_weights))
                for _ in range(3)
            ]
        )
        weights.append(model.get_weights())
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
    assert losses[0][2] < losses[0][0]  # it trained: the steps are not no-ops
    for off, on in zip(*weights):
        np.testing.assert_allclose(off, on, rtol=1e-4, atol=1e-5)
    model, features, _, vocabulary = attention_model()
    for width in (1, 3):
        plain = Decoder(model, vocabulary, jit_compile=False)(features, width)
        fused = Decoder(model, vocabulary, jit_compile=True)(features, width)
        assert [c["tokens"] for c in plain] == [c["tokens"] for c in fused]
        np.testing.assert_allclose(
            [c["score"] for c in plain], [c["score"] for c in fused], rtol=1e-5
        )


TWO_DEVICES = """
import dataclasses
import sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
from helpers import cache, devices, features, sample, train
from helpers import model as models
from helpers.corpus import make_dataset
from test_train import CFG, corpus_of, tiny_corpus

out = sys.argv[2]
two = devices.distribution_strategy(["/cpu:0", "/cpu:1"])
one = devices.distribution_strategy(["/cpu:0"])
assert two.num_replicas_in_sync == 2 and one.num_replicas_in_sync == 1
corpus = corpus_of(*tiny_corpus())
features_, vocabulary = corpus.features, corpus.vocabulary
table = {split: corpus.table(split) for split in ("train", "dev")}


def datasets(batch_size):  # in order: tf.data's shuffle differs once distributed
    return [make_dataset(features_, *table[s], batch_size) for s in table]


results = {}
for name, strategy, batch in [("one", one, 16), ("two", two, 8)]:
    # Every caption has three words, so both replicas' losses weigh the same.
    cfg = dataclasses.replace(CFG, batch_size=batch, dropout=0.0)

    def build():
        return models.build(
            "attention", cfg, len(vocabulary), features_.shape[1:], np.zeros(6), np.ones(6)
        )

    job = train.Job({"run": name}, build, datasets, cfg.epochs, cfg.learning_rate)
    model, log = train.fit(job, cfg, f"{out}/{name}", strategy=strategy)
    results[f"{name}_loss"] = [row["loss"] for row in log]
    for i, weight in enumerate(model.get_weights()):
        results[f"{name}_w{i}"] = weight
folder = sample.write_sample(f"{out}/pictures", 5, seed=3)
pictures = {p.name: p for p in sorted((folder / "Flicker8k_Dataset").iterdir())}
for name, strategy in [("one", one), ("two", two)]:
    features.extract(
        pictures, f"{out}/features-{name}", weights=None, image_size=32,
        batch_size=2, progress=False, strategy=strategy,
    )
    results[f"{name}_features"] = cache.load_features(f"{out}/features-{name}")[0]
np.savez(f"{out}/results.npz", **results)
"""


def test_two_devices_train_and_extract_like_one(tmp_path):
    """MirroredStrategy on a CPU split in two logical devices: the multi-GPU path.

    Training goes through `train.fit`, the loop of `train` and `fine_tune`, with the
    batches in order: tf.data's seeded shuffle draws another order once distributed.
    """
    # Without oneDNN's graph rewrites: on some CPUs (an AMD EPYC among them) they wire the second logical CPU's first convolution to the wrong input ("input
    # depth must be evenly divisible by filter depth: 3 vs 64"). GPUs do not use them.
    subprocess.run(
        [sys.executable, "-c", TWO_DEVICES, str(Path(__file__).parent), str(tmp_path)],
        check=True,
        timeout=600,
        env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"},
    )
    results = np.load(tmp_path / "results.npz")
    # Two replicas of 8 captions take the same steps as one device with 16.
    np.testing.assert_allclose(results["one_loss"], results["two_loss"], rtol=1e-5)
    weights = sorted(k for k in results.files if k.startswith("one_w"))
    assert len(weights) > 5
    # atol: Adam turns float noise in a gradient that is zero in exact arithmetic
    # (the attention score's bias) into steps of up to lr = 2e-3; 1e-4 is 1% of the
    # distance 6 such steps can move a weight.
    for key in weights:
        np.testing.assert_allclose(
            results[key], results[key.replace("one", "two")], rtol=1e-4, atol=1e-4
        )
    one, two = results["one_features"], results["two_features"]
    assert one.shape == two.shape == (5, 4, 512) and np.count_nonzero(one) > 0
    eps = np.finfo(np.float16).eps
    np.testing.assert_allclose(two, one, rtol=2 * eps, atol=eps)


def test_one_device_is_the_default_strategy():
    assert devices.distribution_strategy(["/cpu:0"]) is tf.distribute.get_strategy()


@pytest.fixture
def fake_gpus(monkeypatch):
    """GPUs as TensorFlow would list them: set `fake_gpus[:]` to (name, capability)
    pairs. The precision policy goes back to float32 afterwards."""
    found = []
    monkeypatch.setattr(
        devices,
        "gpus",
        lambda: [SimpleNamespace(name=f"/GPU:{i}") for i in range(len(found))],
    )
    monkeypatch.setattr(
        devices,
        "_details",
        lambda gpu: dict(
            zip(("device_name", "compute_capability"), found[int(gpu.name[-1])])
        ),
    )
    yield found
    keras.mixed_precision.set_global_policy("float32")


def test_a_gpu_without_float16_tensor_cores_runs_a_gpu_profile_in_float32(fake_gpus):
    fake_gpus[:] = [("Tesla P100-PCIE-16GB", (6, 0))]
    cfg = get_config("flickr8k")
    assert devices.device_problem(cfg) is None
    line = devices.prepare(cfg)
    assert line.startswith(
        "Device: 1 GPU: Tesla P100-PCIE-16GB; precision float32 (compute capability "
        "6.0: no float16 tensor cores below 7.0, so mixed precision is off);"
    ), line
    assert keras.mixed_precision.global_policy().name == "float32"
    assert "\n" not in line


def test_several_gpus_are_named_in_the_device_line_with_their_strategy(fake_gpus):
    fake_gpus[:] = [("Tesla T4", (7, 5)), ("Tesla T4", (7, 5))]
    line = devices.prepare(get_config("flickr8k"))
    assert line.startswith(
        "Device: 2 GPUs (MirroredStrategy): Tesla T4 x2; precision mixed_float16;"
    ), line
    fake_gpus[:] = [("Tesla T4", (7, 5)), ("Tesla K80", (3, 7))]  # the slowest decides
    line = devices.prepare(get_config("flickr8k"))
    assert "2 GPUs (MirroredStrategy): Tesla T4, Tesla K80; precision float32" in line
    assert "compute capability 3.7" in line
    fake_gpus[:] = [("NVIDIA A100-SXM4-40GB", (8, 0))]
    line = devices.prepare(get_config("flickr8k"))
    assert "1 GPU: NVIDIA A100-SXM4-40GB; precision mixed_float16; XLA for" in line
