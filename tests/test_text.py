import numpy as np
import pytest

from helpers.text import END, PAD, START, UNK, Vocabulary

TRAIN = ["A dog runs .", "A dog sits on the grass .", "A cat sits .", "Two dogs run ."]


def test_fit_uses_only_the_given_captions_and_min_count():
    vocabulary = Vocabulary.fit(TRAIN, min_count=2)
    assert vocabulary.words[:4] == (PAD, START, END, UNK)
    assert set(vocabulary.words[4:]) == {"a", "dog", "sits"}
    assert vocabulary.words[4] == "a"  # most frequent first
    assert vocabulary.max_length == 6
    assert "cat" not in vocabulary.ids  # seen once: becomes <unk>


def test_encode_decode_and_padding():
    vocabulary = Vocabulary.fit(TRAIN, min_count=1)
    ids = vocabulary.encode("A zebra runs!")
    assert ids[0] == vocabulary.ids[START] and ids[-1] == vocabulary.ids[END]
    assert ids[2] == vocabulary.ids[UNK]
    assert vocabulary.decode(ids) == "a <unk> runs"
    assert (
        vocabulary.decode([vocabulary.ids[START], vocabulary.ids["dog"], 0, 2, 5])
        == "dog"
    )
    batch = vocabulary.encode_batch(["a dog", "a dog sits on the grass and more words"])
    assert batch.shape == (2, vocabulary.max_length + 2) and batch.dtype == np.int32
    assert batch[0].tolist()[-3:] == [0, 0, 0]
    assert batch[1, -1] == vocabulary.ids[END], "long captions are cut, <end> kept"


def test_percentile_cap():
    captions = ["a b"] * 9 + ["a b c d e f g h i j"]
    assert Vocabulary.fit(captions, 1).max_length == 10
    assert Vocabulary.fit(captions, 1, max_length_percentile=90).max_length == 2


def test_json_round_trip_is_exact(tmp_path):
    vocabulary = Vocabulary.fit(TRAIN, min_count=1)
    loaded = Vocabulary.load(vocabulary.save(tmp_path / "vocabulary.json"))
    assert loaded == vocabulary and loaded.ids == vocabulary.ids
    (tmp_path / "bad.json").write_text(
        '{"words": ["a"], "max_length": 1, "min_count": 1}'
    )
    with pytest.raises(ValueError, match="not a vocabulary file"):
        Vocabulary.load(tmp_path / "bad.json")
