"""The Transformer decoder: cached decoding equals recomputing the prefix, beam width 1
is greedy, its cross-attention draws like the LSTM's, and its bundle round-trips or is
refused. (Causality, saving and mixed precision: tests/test_model.py, every kind.)"""

import json
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from helpers import bundle, maps
from helpers import model as models
from helpers.config import get_config
from helpers.decode import NEG_INF, Decoder
from helpers.text import END_ID, PAD_ID, START_ID, UNK_ID, Vocabulary
from helpers.transformer import TransformerCaptioner

CFG = get_config(
    "ci",
    transformer_dim=8,
    transformer_ff=16,
    transformer_dropout=0.0,
    transformer_max_length=8,
)
WORDS = ("<pad>", "<start>", "<end>", "<unk>", "a", "b", "c", "d", "e")
VOCABULARY = Vocabulary(WORDS, max_length=6, min_count=1)  # decodes up to 7 words
GRID, DIM = 4, 6


def build(seed=0):
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    mean, variance = rng.normal(size=DIM), rng.uniform(0.5, 2, DIM)
    model = models.build("transformer", CFG, len(WORDS), (GRID, DIM), mean, variance)
    model((features(1), np.ones((1, 2), "int32")))  # built, as a trained one is
    return model


def features(count=6, seed=1):
    return np.random.default_rng(seed).normal(size=(count, GRID, DIM)).astype("float32")


def test_stepping_with_the_cache_gives_the_whole_captions_logits_and_attention():
    model, batch = build(), features(3)
    words = np.random.default_rng(2).integers(4, len(WORDS), size=(3, 7)).astype("int32")
    words[:, 0] = START_ID
    logits, alphas = model.unroll(model.initial_state(batch), words)
    state, steps = model.initial_state(batch), []
    for t in range(words.shape[1]):
        step_logits, alpha, state = model.step(words[:, t], state)
        steps.append((step_logits.numpy(), alpha.numpy()))
    np.testing.assert_allclose(
        np.stack([s[0] for s in steps], 1), logits, rtol=1e-4, atol=1e-5
    )
    stepped = np.stack([s[1] for s in steps], 1)  # (batch, time, grid)
    np.testing.assert_allclose(stepped, alphas, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stepped.sum(-1), 1.0, rtol=1e-5)  # over the grid cells


@pytest.mark.parametrize("beam_width", [1, 3])
def test_decoding_with_the_cache_equals_recomputing_the_prefix(beam_width):
    model, batch = build(), features()
    options = {"block_repeated_trigrams": True, "jit_compile": False}
    cached = Decoder(model, VOCABULARY, **options)(batch, beam_width)
    model.kv_cache = False
    recomputed = Decoder(model, VOCABULARY, **options)(batch, beam_width)
    assert [r["tokens"] for r in cached] == [r["tokens"] for r in recomputed]
    assert len({len(r["tokens"]) for r in cached}) > 1  # captions of several lengths
    for a, b in zip(cached, recomputed):
        assert a["score"] == pytest.approx(b["score"], abs=1e-4)
        np.testing.assert_allclose(a["attention"], b["attention"], atol=1e-5)


def test_beam_width_one_is_greedy_over_the_whole_caption_model():
    """Greedy by hand: the parallel model on the prefix, the best allowed next word."""
    model, batch = build(), features()
    words = np.full((len(batch), 1), START_ID, "int32")
    for _ in range(VOCABULARY.max_length + 1):
        logits = model((batch, words)).numpy()[:, -1]  # (batch, vocabulary)
        logits[:, [PAD_ID, START_ID, UNK_ID]] = NEG_INF
        ended = (words == END_ID).any(1) | (words == PAD_ID).any(1)
        chosen = np.where(ended, PAD_ID, logits.argmax(-1))
        words = np.concatenate([words, chosen[:, None].astype("int32")], 1)
    expected = [[w for w in row[1:] if w not in (END_ID, PAD_ID)] for row in words]
    greedy = Decoder(model, VOCABULARY, jit_compile=False)(batch, 1)
    assert [r["tokens"] for r in greedy] == expected


def test_cross_attention_is_drawn_by_the_attention_figures():
    model = build()
    result = Decoder(model, VOCABULARY, jit_compile=False)(features(1), 2)[0]
    words = [VOCABULARY.words[i] for i in result["tokens"]]
    attention = result["attention"]  # (words, grid), as the LSTM's
    assert words and attention.shape == (len(words), GRID)
    np.testing.assert_allclose(attention.sum(-1), 1.0, rtol=1e-5)
    picture = Image.new("RGB", (40, 30), (90, 120, 200))
    figure = maps.attention_figure(picture, words, attention)
    assert sum(len(axis.images) == 2 for axis in figure.axes) == len(words)
    step = maps.attention_step(picture, words, attention, len(words) - 1)
    assert any(len(axis.images) == 2 for axis in step.axes)


def test_captions_longer_than_the_positions_are_refused():
    model = build()
    with pytest.raises(ValueError, match="9 steps: beyond the model's positions"):
        Decoder(model, VOCABULARY, max_length=9)
    with pytest.raises(ValueError, match="longer than the 8 positions"):
        model((features(1), np.ones((1, 9), "int32")))


def save(folder, model):
    index = {
        "encoder": "vgg16",
        "layer": "block5_conv3",
        "image_size": 32,
        "weights": "imagenet",
        "shape": [1, GRID, DIM],
    }
    return bundle.save_bundle(folder, {"transformer": model}, VOCABULARY, CFG, index)


def test_a_bundle_with_a_transformer_round_trips(tmp_path):
    model, batch = build(), features()
    words = np.ones((len(batch), 3), "int32")
    folder = save(tmp_path / "bundle", model)
    loaded = bundle.load_bundle(folder, "transformer").model
    assert isinstance(loaded, TransformerCaptioner)
    np.testing.assert_array_equal(loaded((batch, words)), model((batch, words)))
    decoders = [Decoder(m, VOCABULARY, jit_compile=False) for m in (loaded, model)]
    captions = [[r["text"] for r in decode(batch, 3)] for decode in decoders]
    assert captions[0] == captions[1]


@pytest.mark.parametrize(
    "sizes", [{"blocks": 1}, {"blocks": 3}, {"heads": 2}, {"feed_forward": 8}]
)
def test_a_bundle_whose_sizes_do_not_fit_its_weights_is_refused(tmp_path, sizes):
    folder = save(tmp_path / "bundle", build())
    path = folder / "transformer.keras"
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(parts["config.json"])
    config["config"].update(sizes)
    parts["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    manifest = json.loads((folder / "bundle.json").read_text())
    manifest["files"][path.name] = bundle._sha256(path)  # a consistent, wrong bundle
    (folder / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="transformer.keras") as error:
        bundle.load_bundle(folder, "transformer")
    assert "\n" not in str(error.value)


def test_adding_a_transformer_to_a_bundle_keeps_its_other_decoders(tiny_bundle, tmp_path):
    import shutil

    folder = tmp_path / "bundle"
    shutil.copytree(tiny_bundle[0], folder)
    before = bundle.load_bundle(folder, "merge").model
    keras.utils.set_random_seed(5)
    grid, dim = before.grid, before.feature_dim
    vocabulary_size = before.vocabulary_size
    model = models.build(
        "transformer", CFG, vocabulary_size, (grid, dim), np.zeros(dim), np.ones(dim)
    )
    probe = np.ones((1, grid, dim), "float32"), np.ones((1, 3), "int32")
    model(probe)
    bundle.add_decoders(folder, {"transformer": model})
    assert bundle.read_manifest(folder)["models"] == [
        "attention",
        "merge",
        "scst",
        "transformer",
    ]
    after = bundle.load_bundle(folder, "transformer").model
    np.testing.assert_array_equal(after(probe), model(probe))
    merge = bundle.load_bundle(folder, "merge").model
    np.testing.assert_array_equal(merge(probe), before(probe))
