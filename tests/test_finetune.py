"""Fine-tuning end to end for a few steps on the sample, at a small size."""

import keras
import numpy as np

from helpers import data, features, finetune, sample
from helpers import model as models
from helpers.config import get_config
from helpers.text import Vocabulary

SIZE = 32  # VGG16 block5_conv3 is 2x2 here: 4 grid cells


def test_only_block5_and_the_decoder_learn(tmp_path):
    folder = sample.write_sample(tmp_path / "data", 24, seed=8)
    dataset = data.load_dataset(folder)
    cfg = get_config(
        "ci", embedding_dim=8, units=16, attention_dim=8, batch_size=4, learning_rate=1e-1
    )
    vocabulary = Vocabulary.fit(
        [c for n in dataset.splits["train"] for c in dataset.captions[n]], 1
    )
    decoder = models.build(
        "attention", cfg, len(vocabulary), (4, 512), np.zeros(512), np.ones(512)
    )
    identity = {
        "encoder": "vgg16",
        "image_size": SIZE,
        "layer": "block5_conv3",
        "weights": "random-he-normal(seed=5)",
    }
    before = features.build_encoder("vgg16", None, SIZE, seed=5)
    model, log = finetune.fine_tune(
        decoder,
        identity,
        cfg,
        dataset.image_paths,
        dataset.captions,
        dataset.splits,
        vocabulary,
        tmp_path / "run",
        epochs=1,
        max_steps=2,
        verbose=0,
    )
    assert len(log) == 1 and np.isfinite(log[0]["loss"])
    after = {layer.name: layer for layer in model.encoder.layers}
    for layer in before.layers:
        if not layer.weights:
            continue
        same = np.array_equal(layer.get_weights()[0], after[layer.name].get_weights()[0])
        assert same != layer.name.startswith("block5"), layer.name
    reloaded = keras.saving.load_model(tmp_path / "run" / "best.keras")
    assert isinstance(reloaded, finetune.EndToEnd)
    images = features.preprocess("vgg16")(
        np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    )
    words = np.ones((2, 3), np.int32)
    np.testing.assert_allclose(
        reloaded((images, words)), model((images, words)), atol=1e-5
    )
