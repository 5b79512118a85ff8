"""The sentences that depend on the run say what its config and results say."""

from helpers import prose
from helpers.config import get_config


def test_the_grid_sentence_follows_the_profile():
    lite0 = prose.grid(get_config("flickr8k-cpu"), (8091, 49, 1280))
    assert "$L = 49$ cells (a 7x7 grid) of $D = 1280$ channels" in lite0
    assert "`efficientnet_lite0` at 224x224 with ImageNet weights" in lite0
    assert "projected to 128 channels" in lite0
    vgg = prose.grid(get_config("ci"), (400, 196, 512))
    assert "14x14 grid" in vgg and "`vgg16`" in vgg and "random weights" in vgg
    assert "projected to 128 channels" in vgg
    assert "projected" not in prose.grid(get_config("ci", context_dim=0), (400, 196, 512))
    assert "grid)" not in prose.grid(get_config("ci"), (400, 6, 512))


def test_a_number_that_moved_is_said_to_move_its_way():
    assert prose.moved("validation loss", 3.039, 3.052) == (
        "validation loss rose from 3.039 to 3.052"
    )
    assert prose.moved("CIDEr-D", 0.5, 0.41, 2) == "CIDEr-D fell from 0.50 to 0.41"
    assert prose.moved("loss", 1.0, 1.0001) == "loss stayed at 1.000"


def test_a_comparison_names_which_side_scored_higher():
    assert prose.versus("attention", 0.129, "merge", 0.123) == (
        "attention scored above merge (0.129 against 0.123)"
    )
    assert " below " in prose.versus("a", 0.1, "b", 0.2)
    assert " level with " in prose.versus("a", 0.1, "b", 0.1)


def test_published_rows_are_called_comparable_only_for_flickr8k_sized_training():
    sample = prose.comparable(get_config("sample"), 560)
    assert "generated pictures" in sample and "not a bar for this run" in sample
    subset = prose.comparable(get_config("flickr8k-cpu"), 753)
    assert "753 photos, not Flickr8k's 6,000" in subset and "not comparable" in subset
    assert "the human row" in subset
    full = prose.comparable(get_config("flickr8k"), 6000)
    assert "comparable, not identical" in full


def test_the_end_word_demonstration_says_what_it_showed():
    shown = prose.end_word(0.10, 0.35)
    assert "moves by -0.35 with `<end>` in the reward and by -0.10 without" in shown
    assert "costs more." in shown
    not_shown = prose.end_word(0.30, 0.20)
    assert "does not make the fragment cost more" in not_shown
    assert "costs more." not in not_shown
    # a real photo's: the whole caption loops, and its fragment scores higher both ways
    flawed = prose.end_word(-0.28, -0.17)
    assert "moves by +0.17 with `<end>`" in flawed and "by +0.28 without" in flawed
    assert "the fragment scores higher even with `<end>`" in flawed
    assert "costs more." not in flawed


def test_the_failures_named_are_the_ones_the_captions_show_beyond_peoples():
    people = {"repeated_pairs": 0.05, "repeated_colours": 0.01, "mean_words": 11.0}
    looping = {"repeated_pairs": 0.19, "repeated_colours": 0.08, "mean_words": 8.0}
    said = prose.failures(looping, people, "no repeated trigram")
    assert "(no repeated trigram), 19% (people: 5%) of the beam-3 captions" in said
    assert "8% (people: 1%) name a colour twice" in said
    assert "pairs and colour loops more than twice as often as people's" in said
    assert "and run shorter by over a fifth." in said
    assert "a repeated pair" in said and "looks at word pairs or colours." in said
    blocked = prose.failures(
        {**looping, "repeated_pairs": 0.0}, people, "no repeated pair"
    )
    assert "The pair guard bans a word pair said twice" in blocked
    assert "looks at colours." in blocked and "repeated word pairs" not in blocked
    fine = {"repeated_pairs": 0.06, "repeated_colours": 0.01, "mean_words": 10.0}
    said = prose.failures(fine, people, "per-word score, no guard")
    assert "about as often as people's." in said and "show repeated" not in said
    assert "no guard looks at word pairs or colours" in said


def test_the_relation_check_counts_wrong_relations_or_lists_them_for_the_reader():
    truth = {
        n: {"things": [{"kind": "triangle"}, {"kind": "star"}], "relation": "right of"}
        for n in "abc"
    }
    captions = {
        "a": "a triangle to the left of a star",  # wrong
        "b": "a star to the left of a triangle",  # right
        "c": "a triangle and a star",  # no relation
    }
    scores = {"a": 0.9, "b": 0.5, "c": 0.1}
    references = {n: [f"reference of {n}"] for n in "abc"}
    check = prose.relation_check(captions, scores, references, truth)
    assert "2 of 3 captions" in check.summary and "**1 get it wrong**" in check.summary
    assert "of the wrong ones 0.90" in check.summary and "right ones 0.50" in check.recap
    assert check.shown == ["a"]
    assert check.beside == {"a": "truth: the triangle is right of the star"}
    photos = prose.relation_check(captions, scores, references)
    assert photos.summary.startswith("2 of 3 captions say where something is")
    assert (
        photos.shown == ["a", "b"] and photos.beside["b"] == "a reference: reference of b"
    )
    assert "cannot tell" in photos.recap


def test_the_real_photos_sentence_says_which_decoder_won_by_the_medians():
    def row(cider):
        return {"cider": cider}

    table = {
        "transformer (seed 1), beam 3": row(0.9),
        "transformer (median of 3 seeds), beam 3": row(0.25),
        "transformer, shuffled features (median of 3 seeds), beam 3": row(0.1),
        "attention (median of 3 seeds), beam 3": row(0.3),
        "attention (median of 3 seeds), no repeated trigram, beam 3": row(0.9),
        "attention, shuffled features (median of 3 seeds), beam 3": row(0.12),
        "attention (median of 3 seeds), beam 1": row(0.9),
    }
    data = {"photos": {"train": 678, "dev": 113}, "seeds": [1234, 1, 2], "table": table}
    text = prose.real_photos(data)
    assert "median of 3 seeds" in text and "113 dev photos" in text
    assert (
        "the Transformer scored below the soft-attention LSTM (0.250 against 0.300)"
        in text
    )
    assert "it scored above its shuffled control (0.250 against 0.100)" in text
    assert "the LSTM scored above its shuffled control (0.300 against 0.120)" in text
    del table["transformer (median of 3 seeds), beam 3"]
    assert "no Transformer rows" in prose.real_photos(data)
