"""Models: shapes, causality, masking, attention, save and reload."""

import dataclasses

import keras
import numpy as np
import pytest

from helpers import model as models
from helpers import train
from helpers.config import get_config
from helpers.decode import repeat_state

CFG = get_config(
    "ci",
    embedding_dim=8,
    units=16,
    attention_dim=8,
    dropout=0.0,
    transformer_dim=8,
    transformer_ff=16,
    transformer_dropout=0.0,
)
# Every decoder kind, and the attention decoder over features projected to 3 channels.
KINDS = ["attention", "merge", "transformer", "attention-projected"]
VOCABULARY, GRID, DIM, TIME = 11, 4, 6, 7


def build(kind, penalty=1.0):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    kind, projected, _ = kind.partition("-")
    cfg = dataclasses.replace(
        CFG, attention_penalty=penalty, context_dim=3 if projected else 0
    )
    return models.build(
        kind, cfg, VOCABULARY, (GRID, DIM), rng.normal(size=DIM), rng.uniform(0.5, 2, DIM)
    )


def batch(seed=1):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(3, GRID, DIM)).astype("float32")
    words = rng.integers(3, VOCABULARY, size=(3, TIME)).astype("int32")
    words[:, 0] = 1
    words[0, 4:] = 0  # a short caption, padded
    return features, words


@pytest.mark.parametrize("kind", KINDS)
def test_logits_at_a_step_never_see_later_words(kind):
    model = build(kind)
    features, words = batch()
    logits = model((features, words)).numpy()
    assert logits.shape == (3, TIME, VOCABULARY)
    changed = words.copy()
    changed[:, 4:] = 5
    again = model((features, changed)).numpy()
    np.testing.assert_allclose(logits[:, :4], again[:, :4], rtol=1e-5, atol=1e-6)
    assert not np.allclose(logits[:, 4:], again[:, 4:])


@pytest.mark.parametrize("kind", KINDS)
def test_a_start_repeated_per_sample_unrolls_like_repeated_features(kind):
    # Self-critical training and decoding start each image once, then repeat its state.
    model = build(kind)
    features, words = batch()
    words = np.repeat(words, 2, axis=0)[::-1].copy()  # two different captions per image
    expected = model((np.repeat(features, 2, axis=0), words)).numpy()
    state = repeat_state(model.initial_state(features), 2)
    logits, alphas = model.unroll(state, words)
    assert alphas.shape == (6, TIME, GRID)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-6)


def test_padding_never_contributes_to_the_loss():
    model = build("attention", penalty=0.0)
    features, tokens = batch()
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    weights = (targets != 0).astype("float32")
    logits = model((features, inputs)).numpy()
    loss = train.masked_loss()
    base = float(loss(targets, logits, sample_weight=weights))
    noisy = logits.copy()
    noisy[targets == 0] = (
        np.random.default_rng(2).normal(size=noisy[targets == 0].shape) * 50
    )
    assert float(loss(targets, noisy, sample_weight=weights)) == pytest.approx(
        base, rel=1e-6
    )
    real = logits.copy()
    real[0, 0, 3] += 10.0  # a real position: the loss must move
    assert float(loss(targets, real, sample_weight=weights)) != pytest.approx(
        base, rel=1e-6
    )
    # The value is the mean over real words only.
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
    assert base == pytest.approx(-(picked * weights).sum() / weights.sum(), rel=1e-5)


def test_attention_weights_sum_to_one_and_penalty_is_added():
    model = build("attention")
    features, words = batch()
    state = model.initial_state(features)
    _, alpha, _ = model.step(words[:, 1], state)
    np.testing.assert_allclose(alpha.numpy().sum(-1), 1.0, rtol=1e-5)
    model((features, words))
    assert len(model.losses) == 1 and float(model.losses[0]) >= 0
    quiet = build("attention", penalty=0.0)
    quiet((features, words))
    assert not quiet.losses


@pytest.mark.parametrize("kind", KINDS)
def test_saved_model_reloads_with_identical_outputs(kind, tmp_path):
    model = build(kind)
    features, words = batch()
    expected = model((features, words)).numpy()
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")  # safe_mode is on
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded((features, words)).numpy(), expected)
    np.testing.assert_array_equal(loaded.feature_mean, model.feature_mean)


def test_projected_features_feed_attention_lstm_and_output_at_the_context_size():
    plain, projected = build("attention"), build("attention-projected")
    features, words = batch()
    state = projected.initial_state(features)
    assert state["features"].shape == (3, GRID, 3)  # attended over: 3 channels, not 6
    _, context = projected.attend(state)
    assert context.shape == (3, 3)
    plain((features, words)), projected((features, words))
    lstm_inputs = {m.cell.kernel.shape[0] for m in (plain, projected)}
    assert lstm_inputs == {CFG.embedding_dim + DIM, CFG.embedding_dim + 3}
    assert projected.output_layer.kernel.shape[0] == CFG.units + 3 + CFG.embedding_dim


def test_unknown_kind():
    with pytest.raises(ValueError, match="Unknown model kind"):
        models.build("rnn", CFG, VOCABULARY, (GRID, DIM), np.zeros(DIM), np.ones(DIM))


@pytest.mark.parametrize("kind", ["attention", "merge", "transformer"])
def test_mixed_precision_trains_and_decodes(kind):
    """The GPU path (mixed_float16) checked on the CPU: no dtype clashes anywhere."""
    from helpers.decode import beam_search

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build(kind)
        features, words = batch()
        model.compile(optimizer="adam", loss=train.masked_loss())
        targets = words[:, 1:]
        model.fit(
            (features, words[:, :-1]),
            targets,
            sample_weight=(targets != 0) * 1.0,
            epochs=1,
            verbose=0,
        )
        assert model((features, words)).dtype == "float32"
        tokens, scores, lengths, alphas = beam_search(model, features, 2, 4)
        assert tokens.shape == (3, 4) and np.isfinite(scores.numpy()).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")
