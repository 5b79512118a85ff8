import json
import subprocess
import sys

import pytest
import sacrebleu
from pycocoevalcap.bleu.bleu import Bleu

from helpers import metrics
from helpers.paths import ROOT

REFERENCES = {
    "1.jpg": [
        "A dog runs on the grass .",
        "A brown dog is running .",
        "The dog runs outside .",
        "A dog running in a field .",
        "Dog on grass .",
    ],
    "2.jpg": [
        "Two children play in the water .",
        "Kids splash in a pool .",
        "Two kids are swimming .",
        "Children playing in water .",
        "Two boys swim .",
    ],
    "3.jpg": [
        "A man rides a bike on a road .",
        "A cyclist on the street .",
        "A man is riding a bicycle .",
        "Someone rides a bike .",
        "A biker on a road .",
    ],
}
HYPOTHESES = {
    "1.jpg": "<start> a dog runs on grass <end>",
    "2.jpg": "two children play in the pool <end> <pad>",
    "3.jpg": "a man is riding a red bike on the road",
}


def test_bleu_matches_independent_implementations():
    ours = metrics.bleu(REFERENCES, HYPOTHESES)
    names = sorted(REFERENCES)
    hyps = [" ".join(metrics.tokens(HYPOTHESES[n])) for n in names]
    refs = [[" ".join(metrics.tokens(REFERENCES[n][k])) for n in names] for k in range(5)]
    sacre = sacrebleu.corpus_bleu(hyps, refs, tokenize="none", smooth_method="none")
    assert ours["bleu4"] == pytest.approx(sacre.score / 100, abs=1e-4)
    coco, _ = Bleu(4).compute_score(
        {n: [" ".join(metrics.tokens(r)) for r in REFERENCES[n]] for n in names},
        {n: [h] for n, h in zip(names, hyps)},
        verbose=0,
    )
    for n in range(4):
        assert ours[f"bleu{n + 1}"] == pytest.approx(coco[n], abs=1e-4)
    assert 0 < ours["bleu4"] < ours["bleu3"] < ours["bleu2"] < ours["bleu1"] < 1


def test_no_four_gram_in_common_scores_zero_without_a_warning(recwarn):
    scores = metrics.bleu(REFERENCES, {n: "dog grass" for n in REFERENCES})
    assert scores["bleu1"] > 0 and scores["bleu4"] == pytest.approx(0, abs=1e-12)
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_special_tokens_are_stripped_but_unknown_words_count():
    assert metrics.tokens("<start> A dog, <unk> runs! <end> <pad>") == [
        "a",
        "dog",
        "unk",
        "runs",
    ]
    clean = metrics.bleu(
        REFERENCES, {n: " ".join(metrics.tokens(h)) for n, h in HYPOTHESES.items()}
    )
    assert clean == metrics.bleu(REFERENCES, HYPOTHESES)


def test_all_references_are_used():
    one = {n: refs[:1] for n, refs in REFERENCES.items()}
    assert (
        metrics.bleu(REFERENCES, HYPOTHESES)["bleu4"]
        > metrics.bleu(one, HYPOTHESES)["bleu4"]
    )


def test_mismatched_or_empty_input_is_a_clear_error():
    with pytest.raises(ValueError, match="1 without a hypothesis"):
        metrics.bleu(REFERENCES, {k: v for k, v in HYPOTHESES.items() if k != "2.jpg"})
    with pytest.raises(ValueError, match="1 without references"):
        metrics.bleu(REFERENCES, {**HYPOTHESES, "9.jpg": "a cat"})
    with pytest.raises(ValueError, match="empty input"):
        metrics.bleu({}, {})


def test_evaluate_adds_cider_and_rouge():
    result = metrics.evaluate(REFERENCES, HYPOTHESES, meteor=False)
    assert set(result) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider", "rouge_l"}
    perfect = metrics.evaluate(
        REFERENCES, {n: r[0] for n, r in REFERENCES.items()}, meteor=False
    )
    assert perfect["rouge_l"] > result["rouge_l"] and perfect["bleu4"] > result["bleu4"]


def cli(tmp_path, refs, hyps):
    (tmp_path / "refs.json").write_text(json.dumps(refs))
    (tmp_path / "hyps.json").write_text(json.dumps(hyps))
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.metrics",
            "--refs",
            tmp_path / "refs.json",
            "--hyps",
            tmp_path / "hyps.json",
            "--no-meteor",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_prints_one_flat_json_object(tmp_path):
    result = cli(tmp_path, REFERENCES, HYPOTHESES)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"bleu1", "bleu2", "bleu3", "bleu4", "cider", "rouge_l"}
    assert printed["bleu4"] == pytest.approx(
        metrics.bleu(REFERENCES, HYPOTHESES)["bleu4"], abs=1e-4
    )


def test_cli_errors(tmp_path):
    missing = cli(tmp_path, REFERENCES, {"1.jpg": "a dog"})
    assert missing.returncode == 2 and "without a hypothesis" in missing.stderr
    empty = cli(tmp_path, {}, {})
    assert empty.returncode == 2 and "empty input" in empty.stderr
    (tmp_path / "refs.json").write_text("[not json")
    broken = subprocess.run(
        [
            sys.executable,
            "-m",
            "helpers.metrics",
            "--refs",
            tmp_path / "refs.json",
            "--hyps",
            tmp_path / "hyps.json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert broken.returncode == 2 and "refs.json" in broken.stderr


def test_caption_quality_counts_what_n_gram_metrics_do_not_see():
    quality = metrics.caption_quality(
        [
            "a little girl in a blue shirt and black and black shirt",  # pair, colour
            "a dog runs on the",  # a fragment
            "a dog on a dog on a dog",  # pairs and trigrams
            "a dog runs on the grass",
        ]
    )
    assert quality["bad_endings"] == 0.25
    assert quality["repeated_pairs"] == 0.5  # "and black" twice; "a dog", "on a"
    assert quality["repeated_trigrams"] == 0.25
    assert quality["repeated_colours"] == 0.25  # black twice; blue once is fine
    assert quality["mean_words"] == (12 + 5 + 8 + 6) / 4
    assert quality["distinct"] == 4
    assert metrics.caption_quality(["a red and a red"])["repeated_colours"] == 1
