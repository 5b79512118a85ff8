"""Fine-tuning from the frozen part's cache, and bundles that carry the tuned layers."""

import json

import keras
import numpy as np
import pytest

from helpers import bundle, cache, data, encoders, features, finetune, sample
from helpers import model as models
from helpers.app import create_app
from helpers.caption import Captioner
from helpers.config import get_config
from helpers.corpus import Corpus, make_dataset
from helpers.text import Vocabulary

SIZE = 32  # VGG16 block4_pool and block5_conv3 are 2x2 here


@pytest.mark.parametrize("name", sorted(encoders.ENCODERS))
def test_the_tuned_part_on_the_frozen_output_is_the_whole_encoder(name):
    encoder = encoders.build_encoder(name, None, SIZE, seed=3)
    spec = encoders.ENCODERS[name]
    frozen = keras.Model(encoder.input, encoder.get_layer(spec.frozen).output)
    part = encoders.tuned_part(encoder, name)
    images = np.random.default_rng(0).uniform(-100, 100, (2, SIZE, SIZE, 3))
    whole = encoder.predict_on_batch(images.astype("float32"))
    np.testing.assert_allclose(part(frozen(images)), whole, rtol=1e-4, atol=1e-3)
    trainable = {layer.name for layer in part.layers if layer.trainable_weights}
    assert trainable and all(n.startswith(spec.tuned) for n in trainable)
    assert not any("_bn" in n for n in trainable)  # BatchNorm keeps its statistics
    assert 0 < encoders.conv_flops(part) < encoders.conv_flops(encoder) / 4


def test_conv_flops_counts_two_per_multiply_add():
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    outputs = keras.layers.Conv2D(5, 1, strides=2)(outputs)
    model = keras.Model(inputs, outputs)
    assert encoders.conv_flops(model) == 2 * (8 * 8 * 9 * 3 * 4 + 4 * 4 * 4 * 5)


def test_vgg16_at_224_costs_its_published_15_5_gigamacs():
    table = {row["encoder"]: row for row in encoders.encoder_table()}
    assert abs(table["vgg16"]["gflops"] / 2 - 15.35) < 0.05  # convolutions only
    assert table["resnet50"]["grid"] == "7x7" and table["resnet152"]["channels"] == 2048
    assert table["vgg16"]["cache_gb"] == pytest.approx(8091 * 196 * 512 * 2 / 1e9)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """One epoch of fine-tuning VGG16 block5 and a small decoder on 24 pictures."""
    root = tmp_path_factory.mktemp("finetune")
    dataset = data.load_dataset(sample.write_sample(root / "data", 24, seed=8))
    extract = dict(weights=None, image_size=SIZE, batch_size=8, seed=5, progress=False)
    index = features.extract(dataset.image_paths, root / "features", **extract)
    features.extract(dataset.image_paths, root / "frozen", layer="block4_pool", **extract)
    frozen_cache, cache_index = cache.load_features(root / "frozen")
    cfg = get_config(
        "ci", embedding_dim=8, units=16, attention_dim=8, batch_size=10, learning_rate=0.1
    )
    vocabulary = Vocabulary.fit(
        [c for n in dataset.splits["train"] for c in dataset.captions[n]], 1
    )
    decoder = models.build(
        "attention", cfg, len(vocabulary), (4, 512), np.zeros(512), np.ones(512)
    )
    decoder((np.zeros((1, 4, 512), "float32"), np.ones((1, 2), "int32")))
    before = [w.copy() for w in decoder.get_weights()]
    frozen = Corpus(
        frozen_cache, cache_index, dataset.captions, dataset.splits, vocabulary
    )
    model, log = finetune.fine_tune(decoder, frozen, cfg, root / "run", epochs=1)
    return locals()


def test_fine_tuning_trains_the_last_block_and_a_copy_of_the_decoder(tuned):
    model, log = tuned["model"], tuned["log"]
    assert len(log) == 1 and np.isfinite(log[0]["loss"])
    original = encoders.build_encoder("vgg16", None, SIZE, seed=5)
    for layer in model.tuned.layers:
        if layer.weights:
            start = original.get_layer(layer.name).get_weights()[0]
            assert not np.array_equal(layer.get_weights()[0], start), layer.name
    for old, now in zip(tuned["before"], tuned["decoder"].get_weights()):
        np.testing.assert_array_equal(old, now)  # the decoder handed in is untouched
    new = model.decoder.get_weights()
    assert any(not np.array_equal(old, w) for old, w in zip(tuned["before"], new))


def test_the_starting_model_is_a_candidate_and_the_best_is_kept(tuned):
    summary = json.loads((tuned["root"] / "run" / "summary.json").read_text())
    losses = [summary["start_val_loss"]] + [r["val_loss"] for r in tuned["log"]]
    assert summary["best_val_loss"] == min(losses)
    dev = finetune.caption_groups(tuned["frozen"], "dev")
    kept = tuned["model"].evaluate(
        make_dataset(tuned["frozen"].features, *dev, 2), verbose=0, return_dict=True
    )
    assert kept["loss"] == pytest.approx(min(losses), rel=1e-3)


def test_a_finished_fine_tuning_is_reused_and_reloads_the_same(tuned):
    log = (tuned["root"] / "run" / "log.csv").read_text()
    again, _ = finetune.fine_tune(
        tuned["decoder"], tuned["frozen"], tuned["cfg"], tuned["root"] / "run", epochs=1
    )
    assert (tuned["root"] / "run" / "log.csv").read_text() == log
    assert isinstance(again, finetune.FineTuner)
    rows = np.arange(3)
    np.testing.assert_allclose(
        finetune.tuned_features(again.tuned, tuned["frozen_cache"], rows),
        finetune.tuned_features(tuned["model"].tuned, tuned["frozen_cache"], rows),
        rtol=1e-5,
    )


def test_fine_tuning_refuses_a_cache_of_another_layer(tuned):
    features_cache, index = cache.load_features(tuned["root"] / "features")
    other = Corpus(features_cache, index, {}, {}, tuned["vocabulary"])
    with pytest.raises(ValueError, match="fine-tuning reads block4_pool"):
        finetune.fine_tune(tuned["decoder"], other, tuned["cfg"], tuned["root"] / "other")


def save_tuned(tuned, folder):
    """The fine-tuned decoder and its tuned layers as a bundle in `folder`."""
    return bundle.save_bundle(
        folder,
        {"attention": tuned["model"].decoder},
        tuned["vocabulary"],
        tuned["cfg"],
        tuned["index"],
        tuned=tuned["model"].tuned,
    )


def test_the_fine_tuned_bundle_captions_with_its_tuned_layers(tuned, tmp_path):
    model, dataset = tuned["model"], tuned["dataset"]
    folder = save_tuned(tuned, tmp_path / "bundle")
    manifest = json.loads((folder / bundle.MANIFEST).read_text())
    assert manifest["encoder"]["tuned_layers"] == [
        "block5_conv1",
        "block5_conv2",
        "block5_conv3",
    ]
    assert bundle.TUNED in manifest["files"]
    captioner = Captioner(folder)
    page = create_app([captioner]).test_client().get("/").get_data(as_text=True)
    assert "random-he-normal(seed=5) weights, fine-tuned" in page
    names = dataset.splits["test"][:2]
    pictures = [captioner.load(dataset.image_paths[n]) for n in names]
    rows = cache.rows_of(names, tuned["cache_index"]["names"])
    expected = finetune.tuned_features(model.tuned, tuned["frozen_cache"], rows)
    scale = np.abs(expected).max()  # the cache rounds to float16
    np.testing.assert_allclose(captioner.encode(pictures), expected, atol=scale * 2e-3)
    frozen = cache.load_features(tuned["root"] / "features")[0][rows]
    assert np.abs(frozen - expected).max() > scale * 0.01  # the tuned layers differ

    with pytest.raises(ValueError, match="trained on other features: tuned_layers"):
        bundle.load_bundle(folder, expect_encoder=bundle.encoder_identity(tuned["index"]))
    manifest["encoder"]["tuned_layers"] = ["block5_conv1"]
    (folder / bundle.MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="not the ones vgg16 fine-tunes"):
        Captioner(folder)
    (folder / bundle.TUNED).write_bytes(b"other weights")
    with pytest.raises(ValueError, match="encoder_tuned.weights.h5 is not the file"):
        Captioner(folder)


def test_tuned_weights_that_do_not_fit_the_manifest_are_refused(tuned, tmp_path):
    model = tuned["model"]
    folder = save_tuned(tuned, tmp_path / "bundle")
    manifest = json.loads((folder / bundle.MANIFEST).read_text())
    emptied = {**manifest, "encoder": {**manifest["encoder"], "tuned_layers": []}}
    (folder / bundle.MANIFEST).write_text(json.dumps(emptied))
    with pytest.raises(ValueError, match="tuned_layers disagree about encoder_tuned"):
        Captioner(folder)  # it would caption with the untuned encoder
    (folder / bundle.MANIFEST).write_text(json.dumps(manifest))
    saved = model.tuned.get_weights()
    model.tuned.set_weights([np.full_like(w, np.nan) for w in saved])
    try:
        folder = save_tuned(tuned, tmp_path / "nan")
    finally:
        model.tuned.set_weights(saved)  # the fixture's model, as it was
    with pytest.raises(ValueError, match="encoder_tuned.weights.h5: holds weights"):
        Captioner(folder)


def test_scaled_adam_moves_the_scaled_variables_in_smaller_steps():
    slow, fast = keras.Variable(np.ones(3), name="slow"), keras.Variable(np.ones(3))
    optimizer = finetune.ScaledAdam(0.01, scales={slow.path: 0.1})
    optimizer.apply([np.full(3, 0.5), np.full(3, 0.5)], [slow, fast])
    np.testing.assert_allclose(1 - slow.numpy(), 0.1 * (1 - fast.numpy()), rtol=1e-5)
    np.testing.assert_allclose(1 - fast.numpy(), 0.01, rtol=1e-4)
    restored = finetune.ScaledAdam.from_config(optimizer.get_config())
    assert restored.scales == {slow.path: 0.1}


def test_features_from_the_frozen_cache_match_the_pictures_and_keep_the_skipped(
    tuned, tmp_path
):
    root, extract = tuned["root"], tuned["extract"]
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    paths = {**tuned["dataset"].image_paths, "broken.jpg": tmp_path / "broken.jpg"}
    features.extract(paths, tmp_path / "frozen", layer="block4_pool", **extract)
    index = features.extract(
        paths, tmp_path / "derived", source=tmp_path / "frozen", **extract
    )
    derived, _ = cache.load_features(tmp_path / "derived")
    direct, direct_index = cache.load_features(root / "features")
    assert index["layer"] == "block5_conv3" and list(index["skipped"]) == ["broken.jpg"]
    assert not derived[-1].any()  # a skipped picture's row stays zero
    scale = np.abs(direct).max()
    np.testing.assert_allclose(derived[:-1].astype(np.float32), direct, atol=scale * 2e-3)
    with pytest.raises(ValueError, match="not the block4_pool output"):
        features.extract(paths, tmp_path / "wrong", source=root / "features", **extract)
