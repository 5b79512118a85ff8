"""Training data pipeline, resume after an interrupted fit, reuse of a finished run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from helpers import corpus as corpora
from helpers import model as models
from helpers import train
from helpers.config import get_config
from helpers.corpus import Corpus
from helpers.text import Vocabulary

CFG = get_config(
    "ci", embedding_dim=8, units=16, attention_dim=8, batch_size=8, epochs=3, patience=5
)


def tiny_corpus(images=24, grid=4, dim=6):
    rng = np.random.default_rng(0)
    names = [f"{i}.jpg" for i in range(images)]
    colours = ["red", "blue", "green"]
    captions = {
        n: [f"a {colours[i % 3]} thing", f"one {colours[i % 3]} shape"]
        for i, n in enumerate(names)
    }
    features = rng.normal(size=(images, grid, dim)).astype(np.float16)
    features[:, :, 0] += np.array([i % 3 for i in range(images)])[:, None] * 3
    splits = {"train": names[:16], "dev": names[16:20], "test": names[20:]}
    vocabulary = Vocabulary.fit([c for n in splits["train"] for c in captions[n]], 1)
    return features, names, captions, splits, vocabulary


def corpus_of(features, names, captions, splits, vocabulary, **index) -> Corpus:
    """A Corpus of a tiny corpus's parts (`index`: more of the cache's index)."""
    return Corpus(features, {"names": names, **index}, captions, splits, vocabulary)


def test_caption_table_and_batches_never_copy_features_per_prefix():
    corpus = corpus_of(*tiny_corpus())
    features, vocabulary = corpus.features, corpus.vocabulary
    rows, tokens = corpus.table("train")
    assert rows.shape == (32,) and tokens.shape == (32, vocabulary.max_length + 2)
    assert rows[:2].tolist() == [0, 0], "one row per caption, pointing at its image"
    data = corpora.make_dataset(features, rows, tokens, batch_size=5)
    (batch_features, inputs), targets, weights = next(iter(data))
    # Autotuning stalls the start of about half the epochs (benchmarks/epochs.py).
    assert not data.options().autotune.enabled
    assert batch_features.shape == (5, 4, 6) and batch_features.dtype == "float32"
    np.testing.assert_array_equal(batch_features[0], features[0].astype(np.float32))
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])
    np.testing.assert_array_equal(weights, (targets.numpy() != 0).astype(np.float32))
    with pytest.raises(ValueError, match="no feature row"):
        corpus.rows(["ghost.jpg"])


def test_feature_statistics_match_numpy():
    features = np.random.default_rng(1).normal(3, 2, size=(50, 4, 3)).astype(np.float16)
    rows = np.array([0, 0, 5, 7, 9, 9, 20])
    mean, variance = corpora.feature_statistics(features, rows, chunk=2)
    chosen = features[np.unique(rows)].astype(np.float64).reshape(-1, 3)
    np.testing.assert_allclose(mean, chosen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(variance, chosen.var(0), rtol=1e-4)


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt("simulated kill after epoch 1")


@pytest.mark.parametrize("kind", ["attention", "merge"])
def test_interrupted_fit_resumes_where_it_stopped(kind, tmp_path):
    args = (corpus_of(*tiny_corpus()), CFG, kind, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        train.train(*args, callbacks=[Interrupt()])
    assert (tmp_path / "backup").exists() and not (tmp_path / "summary.json").exists()
    model, log = train.train(*args)
    assert [row["epoch"] for row in log] == [0, 1, 2], "epochs 0-1 are not run again"
    assert not (tmp_path / "backup").exists() and (tmp_path / "summary.json").exists()
    # A finished run is reused as it is; other settings start afresh.
    again, log_again = train.train(*args)
    assert log_again == log
    np.testing.assert_array_equal(again.get_weights()[0], model.get_weights()[0])
    _, shuffled_log = train.train(*args, shuffle_features=True, epochs=1)
    assert len(shuffled_log) == 1


def test_a_folder_with_other_files_is_refused_and_left_alone(tmp_path):
    (tmp_path / "thesis.tex").write_text("mine")
    args = (corpus_of(*tiny_corpus()), CFG, "merge", tmp_path)
    with pytest.raises(ValueError, match="not written by this project"):
        train.train(*args, epochs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_a_stale_run_is_replaced_out_loud(tmp_path, capsys):
    args = (corpus_of(*tiny_corpus()), CFG, "merge", tmp_path)
    train.train(*args, epochs=1)
    train.train(*args, epochs=2)
    assert "removing the run trained with other epochs" in capsys.readouterr().err


def test_other_captions_or_features_make_another_run():
    features, names, captions, splits, vocabulary = tiny_corpus()
    seen = set()

    def settings(**changes):
        """The settings `fit` receives for these inputs."""
        given = dict(features=features, captions=captions, splits=splits) | changes
        captured = {}

        def fit(job, *rest, **options):
            captured.update(job.settings)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(train, "fit", fit)
            corpus = corpus_of(
                given["features"], names, given["captions"], given["splits"], vocabulary
            )
            train.train(corpus, CFG, "merge", "unused")
        key = json.dumps(captured, sort_keys=True)
        assert key not in seen, f"{list(changes)} did not change the run's identity"
        seen.add(key)

    settings()
    settings(captions={**captions, "0.jpg": ["a blue thing", "one blue shape"]})
    settings(splits={**splits, "dev": splits["dev"][1:]})
    reextracted = features.copy()
    reextracted[-1] += 1  # same names and shape, other values
    settings(features=reextracted)


def kill_during_second_backup():
    """A `save_weights` that writes half a file on the second backup, then 'dies'."""
    original, saves = keras.Model.save_weights, []

    def save_weights(model, filepath, *args, **kwargs):
        original(model, filepath, *args, **kwargs)
        saves.append(filepath)
        if len(saves) == 2 and str(filepath).endswith("latest.weights.h5"):
            data = open(filepath, "rb").read()
            open(filepath, "wb").write(data[: len(data) // 2])
            raise KeyboardInterrupt("simulated kill in the middle of a save")

    return save_weights


def test_a_kill_in_the_middle_of_a_backup_still_resumes(tmp_path, monkeypatch):
    args = (corpus_of(*tiny_corpus()), CFG, "merge", tmp_path)
    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "save_weights", kill_during_second_backup())
        with pytest.raises(KeyboardInterrupt):
            train.train(*args)
    _, log = train.train(*args)
    assert [row["epoch"] for row in log] == [0, 1, 2], "resumed from the first backup"


def test_a_kill_as_training_ends_leaves_a_finished_run(tmp_path, monkeypatch):
    # Killed after the last epoch, while the backup is being removed: the run is done.
    args = (corpus_of(*tiny_corpus()), CFG, "merge", tmp_path)

    def killed(callback, logs=None):
        raise KeyboardInterrupt("simulated kill as training ends")

    with monkeypatch.context() as patch:
        patch.setattr(keras.callbacks.BackupAndRestore, "on_train_end", killed)
        with pytest.raises(KeyboardInterrupt):
            train.train(*args)
    assert json.loads((tmp_path / "summary.json").read_text())["epochs_run"] == 3
    _, log = train.train(*args)
    assert [row["epoch"] for row in log] == [0, 1, 2], "reused, not trained again"


def test_training_lowers_the_loss_and_uses_the_features(tmp_path):
    features, names, captions, splits, vocabulary = tiny_corpus(images=60)
    cfg = get_config(
        "ci",
        embedding_dim=16,
        units=32,
        attention_dim=16,
        batch_size=16,
        epochs=30,
        patience=30,
        learning_rate=1e-2,
        dropout=0.0,
    )
    corpus = corpus_of(features, names, captions, splits, vocabulary)
    real, log = train.train(corpus, cfg, "attention", tmp_path / "real")
    _, blind = train.train(
        corpus, cfg, "attention", tmp_path / "blind", shuffle_features=True
    )
    assert log[-1]["loss"] < log[0]["loss"]
    # Colour is only in the features: the real model must beat the blind one on dev.
    assert min(r["val_loss"] for r in log) < min(r["val_loss"] for r in blind) - 0.1


def test_a_trained_start_is_kept_when_no_epoch_beats_it(tmp_path):
    """`keep_start` (self-critical training starts from a trained decoder): when every
    epoch is worse than the start on dev, the start comes back unchanged."""
    corpus = corpus_of(*tiny_corpus())
    trained, _ = train.train(corpus, CFG, "merge", tmp_path / "trained")
    tables = corpus.table("train"), corpus.table("dev")

    def datasets(batch_size):
        return [corpora.make_dataset(corpus.features, *t, batch_size) for t in tables]

    wrecking = train.Job(
        {"wrecking": True},
        lambda: models.copy_decoder(trained),
        datasets,
        epochs=2,
        learning_rate=50.0,  # every step makes it worse
        keep_start=True,
    )
    kept, log = train.fit(wrecking, CFG, tmp_path / "wrecked")
    summary = json.loads((tmp_path / "wrecked" / "summary.json").read_text())
    assert min(row["val_loss"] for row in log) > summary["start_val_loss"]
    assert summary["best_val_loss"] == summary["start_val_loss"]
    for mine, start in zip(kept.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(mine, start)


REPRODUCE = """
import sys
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import config  # is_op_determinism_enabled is not public
sys.path.insert(0, sys.argv[1])
from test_train import CFG, corpus_of, tiny_corpus
from helpers import train
cfg = CFG.__class__(**{**CFG.__dict__, "deterministic": True, "epochs": 2})
model, _ = train.train(corpus_of(*tiny_corpus()), cfg, "merge", sys.argv[2])
assert config.is_op_determinism_enabled()
assert tf.config.threading.get_inter_op_parallelism_threads() == 1
np.savez(sys.argv[3], *model.get_weights())
"""


def test_deterministic_runs_give_identical_weights(tmp_path):
    """Without one op at a time, 8 of 17 repeat runs on a busy CPU differed."""
    runs = []
    for run in ("a", "b"):  # separate processes: nothing shared but the code and seed
        weights = tmp_path / f"{run}.npz"
        subprocess.run(
            [
                sys.executable,
                "-c",
                REPRODUCE,
                str(Path(__file__).parent),
                str(tmp_path / run),
                str(weights),
            ],
            check=True,
            timeout=300,
        )
        runs.append(np.load(weights))
    assert len(runs[0].files) > 5
    for name in runs[0].files:
        np.testing.assert_array_equal(runs[0][name], runs[1][name])


LATE = """
import tensorflow as tf
from helpers import devices
from helpers.config import get_config
tf.constant(1.0) + 1.0  # TensorFlow starts with its own thread count
devices.set_determinism(get_config("ci", deterministic=True))
"""


def test_determinism_asked_for_too_late_says_how_to_get_it():
    run = subprocess.run(
        [sys.executable, "-c", LATE], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1
    assert "TF_NUM_INTEROP_THREADS=1" in run.stderr
    assert "devices.prepare(cfg) first" in run.stderr
    run = subprocess.run(
        [sys.executable, "-c", LATE],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_NUM_INTEROP_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr
