"""Training: whole captions with teacher forcing, streamed from the feature memmap.

No per-prefix X1/X2/y arrays and no one-hot targets: one training example is one
caption (its token ids) plus the row of its image in the memmap; the batch's features
are read from disk when the batch is formed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from helpers import devices
from helpers import model as models
from helpers.config import Config
from helpers.features import rows_of
from helpers.io import claim_folder, read_json, remove_folder, write_json_atomic
from helpers.text import PAD_ID, Vocabulary


def caption_table(
    captions: dict[str, list[str]],
    names: list[str],
    vocabulary: Vocabulary,
    feature_names: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, tokens): the memmap row of each caption's image and its padded ids."""
    image_rows = rows_of(names, feature_names)
    rows = np.repeat(image_rows, [len(captions[name]) for name in names])
    return rows, vocabulary.encode_batch([c for name in names for c in captions[name]])


def fingerprint(*parts) -> str:
    """A short sha256 of arrays (by their bytes) and JSON-able values."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(f"{part.dtype}{part.shape}".encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def features_fingerprint(names: list[str], array: np.ndarray) -> str:
    """`fingerprint` of a feature cache: its names, shape and 16 evenly spaced rows
    (hashing the whole memmap would read every feature from disk)."""
    probe = np.linspace(0, len(array) - 1, num=min(16, len(array)), dtype=int)
    return fingerprint(names, list(array.shape), array[probe])


def feature_statistics(
    features: np.ndarray, rows: np.ndarray, floor: float = 1e-6, chunk: int = 256
):
    """Per-channel mean and variance (at least `floor`) over the given rows, in chunks."""
    rows = np.unique(rows)
    total = np.zeros(features.shape[-1])
    squares = np.zeros(features.shape[-1])
    for start in range(0, len(rows), chunk):
        block = np.asarray(features[rows[start : start + chunk]], np.float64)
        total += block.sum(axis=(0, 1))
        squares += (block**2).sum(axis=(0, 1))
    count = len(rows) * features.shape[1]
    mean = total / count
    return mean.astype(np.float32), np.maximum(squares / count - mean**2, floor).astype(
        np.float32
    )


def teacher_forcing(images_or_features, tokens):
    """((inputs, words so far), next words, weights): every position predicts the next.

    The weights are 0 on padding, so padding never contributes to the loss.
    """
    inputs, targets = tokens[..., :-1], tokens[..., 1:]  # (batch, [captions,] time)
    weights = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)
    return (images_or_features, inputs), targets, weights


def make_dataset(
    features: np.ndarray,
    rows: np.ndarray,
    tokens: np.ndarray,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    pack=teacher_forcing,
) -> tf.data.Dataset:
    """Batches of `pack(features, tokens)`: by default ((features, input words),
    target words, target weights), with weights 0 on padding, so padding never
    contributes to the loss. `tokens` may be anything with one row per example."""
    grid, dim = features.shape[1:]

    def gather(batch_rows):
        return np.asarray(features[batch_rows], dtype=np.float32)  # (batch, grid, dim)

    def load(batch_rows, batch_tokens):
        batch_features = tf.numpy_function(gather, [batch_rows], tf.float32)
        batch_features.set_shape((None, grid, dim))
        return pack(batch_features, batch_tokens)

    data = tf.data.Dataset.from_tensor_slices((rows, tokens))
    if shuffle:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    return (
        data.batch(batch_size)
        .map(load, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


@keras.saving.register_keras_serializable(package=models.PACKAGE)
class ScaledAdam(keras.optimizers.Adam):
    """Adam whose learning rate is multiplied by `scales[variable.path]` for some
    variables: fine-tuning moves the CNN in smaller steps than the decoder.

    (Scaling those gradients instead would change nothing: Adam divides them out.)
    """

    def __init__(self, *args, scales: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.scales = dict(scales or {})

    def update_step(self, gradient, variable, learning_rate):
        # As Adam finds the variable's moments (the backend may pass its tf.Variable).
        path = self._trainable_variables[self._get_variable_index(variable)].path
        scale = self.scales.get(path, 1.0)
        super().update_step(gradient, variable, learning_rate * scale)

    def get_config(self):
        return {**super().get_config(), "scales": self.scales}


class EpochLine(keras.callbacks.Callback):
    """One line per run that every epoch rewrites: the epoch, the logged values and
    the time per epoch. In Jupyter it updates in place (a saved notebook keeps its
    last state); elsewhere it prints a line per epoch."""

    def __init__(self, label: str):
        super().__init__()
        self.label, self.handle, self.began, self.first = label, None, 0.0, None

    def on_train_begin(self, logs=None):
        from IPython import get_ipython
        from IPython.display import Pretty, display

        self.began = time.perf_counter()
        if get_ipython() is not None:
            self.handle = display(Pretty(f"{self.label}: starting"), display_id=True)

    def on_epoch_end(self, epoch, logs=None):
        from IPython.display import Pretty

        values = ", ".join(f"{k} {v:.3f}" for k, v in (logs or {}).items())
        seconds = (time.perf_counter() - self.began) / (epoch + 1 - self.first)
        line = f"{self.label}: epoch {epoch + 1}, {values} ({seconds:.0f} s per epoch)"
        if self.handle is None:
            print(line, flush=True)
        else:
            self.handle.update(Pretty(line))

    def on_epoch_begin(self, epoch, logs=None):
        if self.first is None:  # a resumed run starts after its last finished epoch
            self.first = epoch


def masked_loss() -> keras.losses.Loss:
    """Cross-entropy averaged over real words only (weights are 0 on padding)."""
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="mean_with_sample_weight"
    )


def best_so_far(log: Path, monitor: str = "val_loss", mode: str = "min") -> float | None:
    """Best value in a CSVLogger file, so a resumed run does not forget it."""
    if not log.exists():
        return None
    with open(log) as file:
        values = [float(row[monitor]) for row in csv.DictReader(file) if row.get(monitor)]
    return (min if mode == "min" else max)(values) if values else None


def train(
    kind: str,
    cfg: Config,
    features: np.ndarray,
    feature_names: list[str],
    captions: dict[str, list[str]],
    splits: dict[str, list[str]],
    vocabulary: Vocabulary,
    out: str | Path,
    *,
    shuffle_features: bool = False,
    epochs: int | None = None,
    extra_callbacks=(),
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
):
    """Train a `kind` model ("attention" or "merge") and return (model, history rows).

    Everything goes to `out`: `best.keras` (best validation loss), `log.csv`,
    `tensorboard/`, and `backup/` from which a killed run resumes at its last
    finished epoch. `shuffle_features` pairs each caption with a random other image,
    the control that shows how much the model really uses the picture.
    """
    train_rows, train_tokens = caption_table(
        captions, splits["train"], vocabulary, feature_names
    )
    dev_rows, dev_tokens = caption_table(
        captions, splits["dev"], vocabulary, feature_names
    )
    # What the run learns from, by content: other captions, splits, vocabulary or a
    # re-extracted feature cache make it another run, never a resumed one.
    settings = {
        "kind": kind,
        "shuffle_features": shuffle_features,
        "epochs": epochs,
        "config": json.loads(cfg.to_json()),
        "vocabulary": fingerprint(vocabulary.words),
        "splits": fingerprint(splits),
        "captions": fingerprint(train_rows, train_tokens, dev_rows, dev_tokens),
        "features": features_fingerprint(feature_names, features),
    }
    if shuffle_features:
        permutation = np.random.default_rng(cfg.seed).permutation(len(feature_names))
        train_rows, dev_rows = permutation[train_rows], permutation[dev_rows]

    def datasets(batch_size):
        return (
            make_dataset(features, train_rows, train_tokens, batch_size, True, cfg.seed),
            make_dataset(features, dev_rows, dev_tokens, batch_size),
        )

    def build():
        mean, variance = feature_statistics(features, train_rows, cfg.variance_floor)
        return models.build(
            kind, cfg, len(vocabulary), features.shape[1:], mean, variance
        )

    return fit(
        out,
        settings,
        build,
        datasets,
        cfg,
        epochs or cfg.epochs,
        cfg.learning_rate,
        extra_callbacks,
        verbose,
        strategy,
    )


def fit(
    out: str | Path,
    settings: dict,
    build,
    datasets,
    cfg: Config,
    epochs: int,
    learning_rate: float,
    extra_callbacks=(),
    verbose: int = 2,
    strategy: tf.distribute.Strategy | None = None,
    monitor: tuple[str, str] = ("val_loss", "min"),
):
    """The training loop shared by `train`, `fine_tune` and `scst.train`.

    `build()` makes the model and `datasets(batch_size)` the (train, dev) data; the
    model is built under `strategy` (default: every GPU, see `devices`), and each
    step takes `cfg.batch_size` captions per replica. A model with a
    `learning_rate_scales` attribute ({variable path: factor}) trains those variables
    at a scaled learning rate. A finished run with the same `settings` is reused; a
    killed one resumes from its backup. The best epoch is the best `monitor` (a
    logged value and "min" or "max"); a model with its own `train_step` (self-critical
    training) computes its own loss and is compiled with the optimiser only.
    """
    out = Path(out)
    saved = read_json(out / "settings.json") if (out / "settings.json").exists() else {}
    if saved == settings and (out / "summary.json").exists():  # Finished: reuse it.
        return keras.saving.load_model(out / "best.keras"), read_log(out / "log.csv")
    if saved and saved != settings:
        changed = sorted(
            k for k in {*saved, *settings} if saved.get(k) != settings.get(k)
        )
        remove_folder(out, f"the run trained with other {', '.join(changed)}")
    claim_folder(out)
    write_json_atomic(out / "settings.json", settings)
    devices.set_determinism(cfg)  # for the whole process: it cannot be switched off
    keras.utils.set_random_seed(cfg.seed)
    devices.set_precision()  # mixed_float16 on GPUs with tensor cores
    strategy = strategy or devices.distribution_strategy()
    batch_size = cfg.batch_size * strategy.num_replicas_in_sync
    train_data, dev_data = datasets(batch_size)
    steps = int(train_data.cardinality())  # per epoch
    with strategy.scope():
        model = build()
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=steps * epochs, alpha=cfg.final_learning_rate
        )
        scales = getattr(model, "learning_rate_scales", None)
        optimizer = (
            ScaledAdam(schedule, scales=scales, clipnorm=cfg.clip_norm)
            if scales
            else keras.optimizers.Adam(schedule, clipnorm=cfg.clip_norm)
        )
        if type(model).train_step is keras.Model.train_step:
            model.compile(
                optimizer=optimizer,
                loss=masked_loss(),
                weighted_metrics=[
                    keras.metrics.SparseCategoricalAccuracy(name="accuracy")
                ],
                jit_compile=devices.use_xla("training"),
            )
        else:  # its step calls numpy (the reward): no XLA
            model.compile(optimizer=optimizer, jit_compile=False)
        # Build the weights now: BackupAndRestore needs a built model.
        model(next(iter(dev_data))[0])
    log = out / "log.csv"
    began = time.perf_counter()

    def write_summary(logs=None):
        write_json_atomic(
            out / "summary.json",
            {
                **{k: v for k, v in settings.items() if k != "config"},
                "epochs_run": len(read_log(log)),
                f"best_{monitor[0]}": best_so_far(log, *monitor),
                "parameters": int(model.count_params()),
                "fit_seconds": round(time.perf_counter() - began),  # of the last part
            },
        )

    callbacks = [
        # First, so the summary is written before BackupAndRestore deletes the backup
        # at the end of training: a kill between the two leaves a finished run, not
        # one without a summary that would be trained again from the start.
        keras.callbacks.LambdaCallback(on_train_end=write_summary),
        # Two checkpoints: a kill while one is written leaves the other to resume from.
        keras.callbacks.BackupAndRestore(str(out / "backup"), double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(
            str(out / "best.keras"),
            monitor=monitor[0],
            mode=monitor[1],
            save_best_only=True,
            initial_value_threshold=best_so_far(log, *monitor),
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor[0], mode=monitor[1], patience=cfg.patience
        ),
        keras.callbacks.CSVLogger(str(log), append=True),
        keras.callbacks.TensorBoard(
            str(out / "tensorboard"), write_graph=False, profile_batch=0
        ),
        *extra_callbacks,
    ]
    model.fit(
        train_data,
        validation_data=dev_data,
        epochs=epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )  # train_data shuffles itself
    best = keras.saving.load_model(out / "best.keras")
    return best, read_log(log)


def read_log(log: str | Path) -> list[dict]:
    """The CSVLogger rows as dictionaries of floats."""
    with open(log) as file:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(file)]
