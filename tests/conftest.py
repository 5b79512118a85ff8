"""Shared fixtures: small files and models made by the tests themselves."""

import os
import shutil

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless, driven by Playwright; missing is a skip on a laptop
    but a failure under CI."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        problem = "playwright is not installed"
    if CHROMIUM is None:
        problem = "no chromium binary (apt-get install chromium)"
    if problem and os.environ.get("CI") == "true":
        pytest.fail(f"the browser test must run under CI: {problem}")
    if problem:
        pytest.skip(problem)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A small untrained bundle on 32x32 inputs, with the sample images it was made from.

    Untrained is enough to test loading, compatibility checks, the caption command and
    the web page; whether models learn is checked by notebook 04.
    """
    from helpers import bundle, data, features, sample
    from helpers import model as models
    from helpers.config import get_config
    from helpers.text import Vocabulary

    root = tmp_path_factory.mktemp("bundle")
    dataset = data.load_dataset(sample.write_sample(root / "data", 12, seed=21))
    index = features.extract(
        dataset.image_paths,
        root / "features",
        weights=None,
        image_size=32,
        batch_size=4,
        progress=False,
    )
    cfg = get_config("ci", embedding_dim=8, units=16, attention_dim=8)
    vocabulary = Vocabulary.fit(
        [c for n in dataset.splits["train"] for c in dataset.captions[n]], 1
    )
    decoders = {  # scst: an attention decoder, as notebook 08 trains it
        kind: models.build(
            "attention" if kind == "scst" else kind,
            cfg,
            len(vocabulary),
            (4, 512),
            np.zeros(512),
            np.ones(512),
        )
        for kind in bundle.KINDS
    }
    for decoder in decoders.values():
        decoder((np.zeros((1, 4, 512), "float32"), np.ones((1, 2), "int32")))
    folder = bundle.save_bundle(root / "bundle", decoders, vocabulary, cfg, index)
    return folder, dataset
