"""The vectorised CIDEr-D against pycocoevalcap's, on the sample profile's captions."""

import numpy as np
import pytest
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.cider.cider_scorer import CiderScorer, precook

from helpers import data, metrics, sample
from helpers.cider import CiderD
from helpers.config import get_config


@pytest.fixture(scope="module")
def captions(tmp_path_factory):
    """(training references, test references, test hypotheses) of the sample profile,
    normalised as the metric does; the hypotheses mix right, wrong, short and
    repetitive captions so that the scores spread."""
    cfg = get_config("sample")
    folder = sample.write_sample(
        tmp_path_factory.mktemp("sample"), cfg.sample_images, cfg.seed
    )
    dataset = data.load_dataset(folder, cfg.seed)

    def normalised(split):
        names = dataset.splits[split]
        return [[" ".join(metrics.tokens(c)) for c in dataset.captions[n]] for n in names]

    train, test = normalised("train"), normalised("test")
    kinds = [
        lambda i: test[i][0],  # one of its own references
        lambda i: test[(i + 1) % len(test)][1],  # another picture's
        lambda i: " ".join(test[i][2].split()[:4]),  # too short
        lambda i: " ".join(test[i][3].split()[:3] * 3),  # repeats itself
        lambda i: "",  # nothing at all
    ]
    hypotheses = [kinds[i % len(kinds)](i) for i in range(len(test))]
    return train, test, hypotheses


def test_equals_pycocoevalcap_with_its_own_document_frequencies(captions):
    _, test, hypotheses = captions
    ids = range(len(test))
    expected = Cider().compute_score(
        {i: test[i] for i in ids}, {i: [hypotheses[i]] for i in ids}
    )[1]
    ours = CiderD(test)(test, hypotheses)
    assert np.abs(ours - expected).max() < 1e-6
    assert ours.std() > 0.5 and ours.max() > 2  # the cases differ, so this is a test


def test_equals_pycocoevalcap_with_training_document_frequencies(captions):
    train, test, hypotheses = captions
    ours = CiderD(train)

    class Fixed(CiderScorer):
        """pycocoevalcap's own scoring code with the training document frequencies
        (and log of the training images, which compute_cider would overwrite)."""

        ref_len = property(lambda self: np.log(len(train)), lambda self, value: None)

        def compute_doc_freq(self):
            for refs in train:
                for ngram in {g for ref in refs for g in precook(ref)}:
                    self.document_frequency[ngram] += 1

    scorer = Fixed()
    for hypothesis, refs in zip(hypotheses, test):
        scorer += (hypothesis, refs)
    scorer.compute_doc_freq()  # compute_score would assert df <= the scored images
    expected = np.array(scorer.compute_cider())
    got = ours(test, hypotheses)
    assert np.abs(got - expected).max() < 1e-6
    # Other document frequencies give other scores: the frequencies are really used.
    assert np.abs(got - CiderD(test)(test, hypotheses)).max() > 0.1


def test_scores_word_ids_against_prepared_references_in_any_order(captions):
    train, test, hypotheses = captions
    scorer = CiderD(train)
    prepared = scorer.references(test)
    order = np.random.default_rng(0).permutation(len(test))[:30]
    picked = scorer.score(prepared, scorer.encode([hypotheses[i] for i in order]), order)
    np.testing.assert_allclose(picked, scorer(test, hypotheses)[order], atol=1e-12)
    # Padding after the words changes nothing.
    padded = np.pad(scorer.encode([hypotheses[order[0]]]), ((0, 0), (0, 5)))
    assert scorer.score(prepared, padded, order[:1]) == pytest.approx(picked[0])
    # A batch of empty captions (a sampler that wrote <end> at once) scores 0.
    assert (scorer.score(prepared, np.zeros((3, 4), int), order[:3]) == 0).all()


def test_refuses_what_it_cannot_score():
    with pytest.raises(ValueError, match="at least one image"):
        CiderD([])
    scorer = CiderD([["a dog runs"]])
    with pytest.raises(ValueError, match="at least one reference"):
        scorer.references([["a dog"], []])
    with pytest.raises(ValueError, match="distinct words"):
        scorer.encode([" ".join(f"w{i}" for i in range(2**15))])
