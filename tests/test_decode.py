"""Decoding: beam k=1 is greedy, beam beats greedy where it should, stops at <end>."""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import model as models
from helpers.config import get_config
from helpers.decode import Decoder, beam_trace, best_beam
from helpers.text import Vocabulary

WORDS = ("<pad>", "<start>", "<end>", "<unk>", "a", "b", "c")


class Chain:
    """A stand-in model whose next word depends only on the last word."""

    grid, feature_dim = 3, 2

    def __init__(self, table: dict):
        probabilities = np.full((len(WORDS), len(WORDS)), 1e-12)
        for (word, following), p in table.items():
            probabilities[WORDS.index(word), WORDS.index(following)] = p
        self.vocabulary_size = len(WORDS)
        self.log_table = tf.constant(np.log(probabilities), tf.float32)

    def initial_state(self, features):
        return {"unused": features[:, 0, 0]}

    def step(self, words, state):
        alpha = tf.fill([tf.shape(words)[0], self.grid], 1.0 / self.grid)
        return tf.gather(self.log_table, words), alpha, state


VOCABULARY = Vocabulary(WORDS, max_length=5, min_count=1)
# Greedy takes "a" (0.55) and then can only go on weakly; "b <end>" is more likely.
TRAP = Chain(
    {
        ("<start>", "a"): 0.55,
        ("<start>", "b"): 0.45,
        ("a", "c"): 0.34,
        ("a", "<end>"): 0.33,
        ("a", "b"): 0.33,
        ("b", "<end>"): 0.95,
        ("b", "c"): 0.05,
        ("c", "<end>"): 1.0,
    }
)
FEATURES = np.zeros((2, 3, 2), np.float32)


def test_beam_finds_the_better_caption_that_greedy_misses():
    decoder = Decoder(TRAP, VOCABULARY)
    greedy, beam = decoder(FEATURES, 1)[0], decoder(FEATURES, 3)[0]
    assert greedy["text"] == "a c" and beam["text"] == "b"
    assert greedy["score"] == pytest.approx(np.log(0.55 * 0.34 * 1.0) / 3, abs=1e-5)
    assert beam["score"] == pytest.approx(np.log(0.45 * 0.95) / 2, abs=1e-5)
    assert beam["score"] >= greedy["score"]


def test_parallel_first_calls_compile_the_decoder_once(monkeypatch):
    import threading
    import time

    from helpers import decode

    compiled, real = [], decode.tf.function

    def slow_function(*args, **kwargs):  # widens any race between check and store
        compiled.append(1)
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(decode.tf, "function", slow_function)
    decoder, results = Decoder(TRAP, VOCABULARY), []
    threads = [
        threading.Thread(target=lambda: results.append(decoder(FEATURES, 2)[0]["text"]))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == ["b"] * 4 and len(compiled) == 1


def test_stops_at_end_and_never_emits_pad_or_start():
    chain = Chain(
        {
            ("<start>", "<pad>"): 0.5,
            ("<start>", "<start>"): 0.3,
            ("<start>", "c"): 0.2,
            ("c", "<end>"): 0.9,
            ("c", "c"): 0.1,
        }
    )
    for width in (1, 2, 3):
        result = Decoder(chain, VOCABULARY)(FEATURES, width)[0]
        assert result["tokens"] == [WORDS.index("c")]
        assert result["text"] == "c" and result["attention"].shape == (1, 3)


def test_unk_is_never_emitted_even_when_the_model_prefers_it():
    chain = Chain(
        {
            ("<start>", "<unk>"): 0.7,
            ("<start>", "a"): 0.3,
            ("<unk>", "<end>"): 1.0,
            ("a", "<unk>"): 0.8,
            ("a", "<end>"): 0.2,
        }
    )
    for width in (1, 2, 3):
        assert Decoder(chain, VOCABULARY)(FEATURES, width)[0]["text"] == "a"
        trace = beam_trace(chain, VOCABULARY, FEATURES[0], beam_width=width)
        assert all("<unk>" not in b["words"] for step in trace for b in step)


LOOP = Chain(
    {
        ("<start>", "a"): 1.0,
        ("a", "b"): 0.9,
        ("a", "<end>"): 0.1,
        ("b", "a"): 0.9,
        ("b", "<end>"): 0.1,
    }
)


# "a b a b" + "a" would repeat the trigram "a b a"; "a b a" + "b" the pair "a b".
@pytest.mark.parametrize(
    "guard, expected",
    [("block_repeated_trigrams", "a b a b"), ("block_repeated_pairs", "a b a")],
)
def test_repeats_are_blocked_only_when_asked(guard, expected):
    assert Decoder(LOOP, VOCABULARY, max_length=8)(FEATURES, 2)[0]["text"] == (
        "a b a b a b a b"
    )
    guards = {"block_repeated_trigrams": False, "block_repeated_pairs": False}
    cfg = types.SimpleNamespace(length_penalty=1.0, **{**guards, guard: True})
    blocked = Decoder.from_config(LOOP, VOCABULARY, cfg)
    for width in (1, 2, 3):
        # Then <end> is the best word left.
        assert [r["text"] for r in blocked(FEATURES, width)] == [expected] * 2
        trace = beam_trace(LOOP, VOCABULARY, FEATURES[0], width, 8, **{guard: True})
        assert best_beam(trace[-1])["words"] == [*expected.split(), "<end>"]


def test_length_penalty_chooses_between_a_short_and_a_long_caption():
    # Final beams: "b c" (p 0.36, 3 words with <end>), "a" (0.30, 2), "a b c" (0.27, 4).
    chain = Chain(
        {
            ("<start>", "a"): 0.6,
            ("<start>", "b"): 0.4,
            ("a", "<end>"): 0.5,
            ("a", "b"): 0.5,
            ("b", "c"): 0.9,
            ("b", "<end>"): 0.1,
            ("c", "<end>"): 1.0,
        }
    )
    for penalty, expected in ((0.0, "b c"), (0.5, "b c"), (1.0, "a b c")):
        result = Decoder(chain, VOCABULARY, length_penalty=penalty)(FEATURES, 3)[0]
        assert result["text"] == expected, penalty
        trace = beam_trace(chain, VOCABULARY, FEATURES[0], beam_width=3)
        assert " ".join(best_beam(trace[-1], penalty)["words"][:-1]) == expected
    assert result["score"] == pytest.approx(np.log(0.27) / 4, abs=1e-5)


def test_maximum_length_caps_a_caption_without_end():
    chain = Chain({("<start>", "a"): 1.0, ("a", "a"): 1.0})
    result = Decoder(chain, VOCABULARY, max_length=4)(FEATURES, 2)[0]
    assert result["text"] == "a a a a"


def small_attention_model():
    keras.utils.set_random_seed(3)
    cfg = get_config("ci", embedding_dim=8, units=16, attention_dim=8, dropout=0.0)
    return models.build("attention", cfg, len(WORDS), (5, 4), np.zeros(4), np.ones(4))


def reference_greedy(model, features, max_length):
    """An independent, plain eager greedy loop (one image at a time)."""
    out = []
    for image in features:
        state = model.initial_state(image[None])
        word, ids = 1, []
        for _ in range(max_length):
            logits, _, state = model.step(tf.constant([word]), state)
            logits = logits.numpy()[0]
            logits[[0, 1, 3]] = -np.inf  # never <pad>, <start> or <unk>
            word = int(np.argmax(logits))
            if word == 2:
                break
            ids.append(word)
        out.append(ids)
    return out


def test_beam_width_one_is_greedy_and_attention_sums_to_one():
    model = small_attention_model()
    features = np.random.default_rng(0).normal(size=(6, 5, 4)).astype("float32")
    decoder = Decoder(model, VOCABULARY, batch_size=4)  # two batches: 4 + 2
    results = decoder(features, 1)
    assert [r["tokens"] for r in results] == reference_greedy(model, features, 6)
    for result in results:
        np.testing.assert_allclose(result["attention"].sum(-1), 1.0, rtol=1e-5)
    beams = decoder(features, 3)
    assert all(b["score"] >= g["score"] - 1e-6 for b, g in zip(beams, results))


def test_decoder_refuses_a_vocabulary_of_another_size():
    with pytest.raises(ValueError, match="does not match"):
        Decoder(small_attention_model(), Vocabulary(WORDS[:5], 5, 1))


def test_beam_scores_match_a_rescoring_of_the_returned_caption():
    """If beams' states were mixed up, the caption would not have the score reported."""
    model = small_attention_model()
    features = np.random.default_rng(1).normal(size=(4, 5, 4)).astype("float32")
    for result, image in zip(Decoder(model, VOCABULARY)(features, 3), features):
        ids = [1, *result["tokens"], 2][: 1 + 6]  # <start> words <end>, capped
        logits = model((image[None], np.array([ids[:-1]], np.int32))).numpy()[0]
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        total = sum(log_probs[t, ids[t + 1]] for t in range(len(ids) - 1))
        assert result["score"] == pytest.approx(total / (len(ids) - 1), abs=1e-4)


def test_beam_trace_shows_each_step_and_ends_where_the_decoder_does():
    steps = beam_trace(TRAP, VOCABULARY, FEATURES[0], beam_width=2)
    assert [b["words"] for b in steps[0]] == [["a"], ["b"]]
    assert steps[0][0]["score"] == pytest.approx(np.log(0.55), abs=1e-5)
    assert best_beam(steps[-1])["words"] == ["b", "<end>"]
    model = small_attention_model()
    features = np.random.default_rng(2).normal(size=(4, 5, 4)).astype("float32")
    for result, image in zip(Decoder(model, VOCABULARY)(features, 3), features):
        best = best_beam(beam_trace(model, VOCABULARY, image, beam_width=3)[-1])
        words = [w for w in best["words"] if w != "<end>"]
        assert words == [VOCABULARY.words[i] for i in result["tokens"]]
        assert best["score"] / len(best["words"]) == pytest.approx(
            result["score"], abs=1e-4
        )


def test_the_guard_table_marks_the_row_the_profile_decodes_with():
    from helpers.config import get_config, guard_settings

    rows, mine = guard_settings(get_config("sample"))
    assert mine == "per-word score, no guard" and len(rows) == 5
    rows, mine = guard_settings(get_config("flickr8k-cpu"))  # blocks pairs
    assert mine == "no repeated pair" and rows[mine]["block_repeated_pairs"]
    rows, mine = guard_settings(get_config("ci", length_penalty=2.0))
    assert mine == "this profile's guards" and len(rows) == 6
    assert rows[mine] == {
        "length_penalty": 2.0,
        "block_repeated_trigrams": False,
        "block_repeated_pairs": False,
    }
