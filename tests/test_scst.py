"""Self-critical training: sampling, the reward, the direction of a step, resume."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_decode import FEATURES, VOCABULARY, Chain
from test_train import corpus_of, tiny_corpus

from helpers import metrics, scst
from helpers import model as models
from helpers.cider import CiderD
from helpers.config import get_config
from helpers.decode import Decoder, sample
from helpers.text import Vocabulary

CFG = get_config(
    "ci",
    embedding_dim=8,
    units=16,
    attention_dim=8,
    batch_size=8,
    scst_epochs=3,
    scst_samples=3,
    patience=5,
    transformer_dim=8,
    transformer_ff=16,
)


@pytest.mark.parametrize("temperature, expected", [(1.0, 0.7), (0.5, 0.49 / 0.58)])
def test_samples_follow_the_model_at_its_temperature_and_never_emit_specials(
    temperature, expected
):
    # <unk> takes a fifth of the mass; sampling renormalises the rest: a 0.7, b 0.3.
    chain = Chain(
        {
            ("<start>", "a"): 0.56,
            ("<start>", "b"): 0.24,
            ("<start>", "<unk>"): 0.2,
            ("a", "<end>"): 1.0,
            ("b", "b"): 0.5,
            ("b", "<end>"): 0.5,
        }
    )
    tf.random.set_seed(0)
    tokens = sample(chain, np.zeros((400, 3, 2), np.float32), 5, 6, temperature)
    tokens = tokens.numpy()
    assert tokens.shape == (2000, 6)
    assert abs((tokens[:, 0] == 4).mean() - expected) < 0.04  # "a"
    assert set(np.unique(tokens)) <= {0, 2, 4, 5}  # no <start>, no <unk>
    ended = np.cumsum(tokens == 2, axis=1) > 0  # <end>
    after_end = np.concatenate([np.zeros((len(tokens), 1), bool), ended[:, :-1]], 1)
    assert (tokens[after_end] == 0).all() and (tokens[~after_end] != 0).all()


def test_seeded_samples_repeat_even_where_decoding_uses_xla():
    chain = Chain(
        {
            ("<start>", "a"): 0.5,
            ("<start>", "b"): 0.5,
            ("a", "<end>"): 1.0,
            ("b", "a"): 0.5,
            ("b", "<end>"): 0.5,
        }
    )
    decoder = Decoder(chain, VOCABULARY, jit_compile=True)
    draws = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        draws.append(decoder.sample(np.repeat(FEATURES, 8, axis=0), samples=4))
    assert draws[0] == draws[1]
    assert len({text for image in draws[0] for text in image}) > 1


def tiny_decoder(vocabulary, grid=4, dim=6, kind="attention"):
    decoder = models.build(
        kind, CFG, len(vocabulary), (grid, dim), np.zeros(dim), np.ones(dim)
    )
    decoder((np.zeros((1, grid, dim), "float32"), np.ones((1, 2), "int32")))
    return decoder


def test_the_reward_is_cider_d_of_the_words_and_the_end_with_training_frequencies():
    _, _, captions, splits, vocabulary = tiny_corpus()
    names = splits["train"] + splits["dev"]
    reward = scst.Reward(captions, splits["train"], names, vocabulary)
    texts = ["a red thing", "one blue shape", "a green", "red red red"]
    images = np.array([0, 17, 2, 3])
    tokens = vocabulary.encode_batch(texts)[:, 1:]  # without <start>: <end>, then <pad>
    ended = [[c + " <end>" for c in captions[n]] for n in splits["train"]]
    expected = CiderD(ended)(
        [[c + " <end>" for c in captions[names[i]]] for i in images],
        [t + " <end>" for t in texts],
    )
    np.testing.assert_allclose(reward(tokens, images), expected, rtol=1e-6)
    np.testing.assert_allclose(reward.texts(texts, images), expected, rtol=1e-6)
    assert reward(tokens, images)[0] > reward(tokens, images)[2] > 0
    assert metrics.tokens("<unk>") == ["unk"] and reward.lookup[vocabulary.ids["<end>"]]


def test_a_caption_cut_short_earns_less_than_the_whole_one():
    """Without <end> in the reward, a fragment holding the reference's words scores
    as well as the sentence (Rennie et al., appendix E); with it, it loses."""
    captions = {
        f"p{i}": [f"a {c} dog runs on the grass"] * 5
        for i, c in enumerate(["red", "blue", "green", "black"])
    }
    captions["p4"] = ["a cat sits on a mat"] * 5
    names = sorted(captions)
    vocabulary = Vocabulary.fit([c for n in names for c in captions[n]], 1)
    reward = scst.Reward(captions, names, names, vocabulary)
    whole, cut = reward.texts(
        ["a red dog runs on the grass", "a red dog runs on the"], [0, 0]
    )
    assert whole > cut
    plain = CiderD([captions[n] for n in names])
    old_whole, old_cut = plain(
        [captions["p0"]] * 2, ["a red dog runs on the grass", "a red dog runs on the"]
    )
    assert whole - cut > old_whole - old_cut  # the end widens the gap


@pytest.mark.parametrize(
    "kind, baseline",
    [("attention", "greedy"), ("attention", "mean"), ("transformer", "mean")],
)
def test_a_self_critical_step_makes_rewarded_captions_more_likely(kind, baseline):
    features, _, _, _, vocabulary = tiny_corpus()
    decoder = tiny_decoder(vocabulary, kind=kind)
    blue = vocabulary.ids["blue"]

    def first_word_blue(tokens, images):  # a reward the test can reason about
        return (tokens[:, 0] == blue).astype(np.float32)

    def p_blue():
        logits = decoder((features[:8].astype("float32"), np.ones((8, 1), "int32")))
        return float(keras.ops.softmax(logits[:, 0]).numpy()[:, blue].mean())

    model = scst.SelfCritical(decoder, max_length=6, samples=4, baseline=baseline)
    model.reward = first_word_blue
    model.compile(optimizer=keras.optimizers.Adam(0.02), jit_compile=False)
    data = tf.data.Dataset.from_tensor_slices(
        (features[:8].astype("float32"), np.arange(8, dtype=np.int32))
    ).batch(8)
    before = p_blue()
    model.fit(data.repeat(15), verbose=0, shuffle=False)
    assert p_blue() > max(0.5, 3 * before)


def test_the_baseline_and_samples_are_checked():
    _, _, _, _, vocabulary = tiny_corpus()
    decoder = tiny_decoder(vocabulary)
    with pytest.raises(ValueError, match="scst_baseline must be one of"):
        scst.SelfCritical(decoder, max_length=6, baseline="best")
    with pytest.raises(ValueError, match="more samples"):
        scst.SelfCritical(decoder, max_length=6, samples=1, baseline="mean")


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")


def test_self_critical_training_resumes_logs_rewards_and_is_reused(tmp_path):
    features, names, captions, splits, vocabulary = tiny_corpus()
    decoder = tiny_decoder(vocabulary)
    weights = [w.copy() for w in decoder.get_weights()]
    args = (decoder, corpus_of(*tiny_corpus()), CFG, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        scst.train_scst(*args, callbacks=[Interrupt()])
    assert (tmp_path / "backup").exists() and not (tmp_path / "summary.json").exists()
    model, log = scst.train_scst(*args)
    assert [row["epoch"] for row in log] == [0, 1, 2], "epochs 0-1 are not run again"
    assert all(0 <= row["reward"] <= 10 and 0 <= row["val_cider"] <= 10 for row in log)
    assert (tmp_path / "summary.json").exists() and not (tmp_path / "backup").exists()
    summary = json.loads((tmp_path / "summary.json").read_text())
    best = summary["best_val_cider"]
    assert best == max([summary["start_val_cider"]] + [r["val_cider"] for r in log])
    # The best by dev CIDEr-D is kept (an epoch, or the start if none beats it): its
    # greedy captions score that again.
    reward = scst.Reward(captions, splits["train"], splits["dev"], vocabulary)
    dev = features[16:20].astype("float32")
    assert reward(model(dev).numpy(), np.arange(4)).mean() == pytest.approx(best, 1e-5)
    for mine, given in zip(decoder.get_weights(), weights):  # the input is left alone
        np.testing.assert_array_equal(mine, given)
    again, log_again = scst.train_scst(*args)
    assert log_again == log
