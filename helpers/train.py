"""Training: whole captions with teacher forcing, streamed from the feature memmap.

No per-prefix X1/X2/y arrays and no one-hot targets: one training example is one
caption (its token ids) plus the row of its image in the memmap; the batch's features
are read from disk when the batch is formed. `fit` is the one training loop of the
series (checkpoints, resume, early stopping), for cross-entropy here, fine-tuning
(`helpers.finetune`) and self-critical training (`helpers.scst`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from IPython import get_ipython
from IPython.display import Pretty, display

from helpers import devices
from helpers import model as models
from helpers.config import Config
from helpers.corpus import Corpus, feature_statistics, make_dataset
from helpers.files import claim_folder, read_json, remove_folder, write_json_atomic


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run for `fit`."""

    settings: dict  # what identifies the run: a finished one with the same is reused
    build: Callable[[], keras.Model]  # the model, built under the device strategy
    datasets: Callable[[int], tuple]  # batch size -> (train, dev) tf.data datasets
    epochs: int
    learning_rate: float
    monitor: tuple[str, str] = ("val_loss", "min")  # the logged value of the best epoch
    # The built model is already trained (self-critical training starts from a
    # cross-entropy decoder): it is scored first and kept unless an epoch beats it.
    keep_start: bool = False


class EpochLine(keras.callbacks.Callback):
    """One line per run that every epoch rewrites: the epoch, the logged values and
    the time per epoch. In Jupyter it updates in place (a saved notebook keeps its
    last state); elsewhere it prints a line per epoch."""

    def __init__(self, label: str):
        super().__init__()
        self.label, self.handle, self.began, self.first = label, None, 0.0, None

    def on_train_begin(self, logs=None):
        self.began = time.perf_counter()
        if get_ipython() is not None:
            self.handle = display(Pretty(f"{self.label}: starting"), display_id=True)

    def on_epoch_end(self, epoch, logs=None):
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


def best_so_far(
    log: Path, monitor: str = "val_loss", mode: str = "min", start: float | None = None
) -> float | None:
    """Best value in a CSVLogger file (and `start`, the value before the first epoch),
    so a resumed run does not forget it."""
    values = [] if start is None else [start]
    if log.exists():
        with open(log) as file:
            values += [float(r[monitor]) for r in csv.DictReader(file) if r.get(monitor)]
    return (min if mode == "min" else max)(values) if values else None


def score_start(model: keras.Model, dev_data, out: Path, monitor: str) -> float:
    """The model's `monitor` before training, saved as the best model so far; scored
    once (`start.json`), so a resumed run reads it back."""
    path = out / "start.json"
    if not path.exists():
        logs = model.evaluate(dev_data, verbose=0, return_dict=True)
        model.optimizer.build(model.trainable_variables)  # saved whole, loads back whole
        model.save(out / "best.keras")
        # float(): Keras 3.13 (what Colab has) returns a tensor here
        write_json_atomic(path, {monitor: float(logs[monitor.removeprefix("val_")])})
    return read_json(path)[monitor]


def train(
    corpus: Corpus,
    cfg: Config,
    kind: str,
    out: str | Path,
    *,
    shuffle_features: bool = False,
    epochs: int | None = None,
    **options,
):
    """Train a `kind` decoder ("attention" or "merge") with cross-entropy and return
    (model, history rows); `options` go to `fit` (callbacks, verbose, strategy).

    Everything goes to `out`: `best.keras` (best validation loss), `log.csv`,
    `tensorboard/`, and `backup/` from which a killed run resumes at its last
    finished epoch. `shuffle_features` pairs each caption with a random other image,
    the control that shows how much the model really uses the picture.
    """
    (train_rows, train_tokens), (dev_rows, dev_tokens) = map(
        corpus.table, ("train", "dev")
    )
    settings = {
        "kind": kind,
        "shuffle_features": shuffle_features,
        "epochs": epochs,
        "config": json.loads(cfg.to_json()),
        **corpus.identity(),
    }
    if shuffle_features:
        permutation = np.random.default_rng(cfg.seed).permutation(len(corpus.names))
        train_rows, dev_rows = permutation[train_rows], permutation[dev_rows]
    features = corpus.features

    def datasets(batch_size):
        return (
            make_dataset(
                features,
                train_rows,
                train_tokens,
                batch_size,
                shuffle=True,
                seed=cfg.seed,
            ),
            make_dataset(features, dev_rows, dev_tokens, batch_size),
        )

    def build():
        mean, variance = feature_statistics(features, train_rows, cfg.variance_floor)
        size = len(corpus.vocabulary)
        return models.build(kind, cfg, size, features.shape[1:], mean, variance)

    job = Job(settings, build, datasets, epochs or cfg.epochs, cfg.learning_rate)
    return fit(job, cfg, out, **options)


def fit(
    job: Job,
    cfg: Config,
    out: str | Path,
    *,
    callbacks=(),
    verbose: int = 0,
    strategy: tf.distribute.Strategy | None = None,
):
    """Run a training job into `out` and return (the best model, log rows).

    The model is built under `strategy` (default: every GPU, see `devices`), and each
    step takes `cfg.batch_size` captions per replica. A finished run with the same
    settings is reused; a killed one resumes from its backup. The best epoch is the
    best `job.monitor` (a logged value and "min" or "max"), and with
    `job.keep_start` the model as built stays the best unless an epoch beats it. A
    model with its own `train_step` (self-critical training) computes its own loss
    and is compiled with the optimiser only. `callbacks` are added to the series' own
    (e.g. `EpochLine`).
    """
    out = Path(out)
    saved = read_json(out / "settings.json") if (out / "settings.json").exists() else {}
    settings, monitor = job.settings, job.monitor
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
    train_data, dev_data = job.datasets(batch_size)
    steps = int(train_data.cardinality())  # per epoch
    with strategy.scope():
        model = job.build()
        schedule = keras.optimizers.schedules.CosineDecay(
            job.learning_rate,
            decay_steps=steps * job.epochs,
            alpha=cfg.final_learning_rate,
        )
        # A model may bring its own optimiser (fine-tuning: smaller steps for the CNN).
        make = getattr(model, "optimizer_for", keras.optimizers.Adam)
        optimizer = make(schedule, clipnorm=cfg.clip_norm)
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
    start = score_start(model, dev_data, out, monitor[0]) if job.keep_start else None
    log = out / "log.csv"
    began = time.perf_counter()

    def write_summary(logs=None):
        write_json_atomic(
            out / "summary.json",
            {
                **{k: v for k, v in settings.items() if k != "config"},
                "epochs_run": len(read_log(log)),
                **({} if start is None else {f"start_{monitor[0]}": start}),
                f"best_{monitor[0]}": best_so_far(log, *monitor, start),
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
            initial_value_threshold=best_so_far(log, *monitor, start),
        ),
        keras.callbacks.EarlyStopping(
            monitor=monitor[0], mode=monitor[1], patience=cfg.patience
        ),
        keras.callbacks.CSVLogger(str(log), append=True),
        keras.callbacks.TensorBoard(
            str(out / "tensorboard"), write_graph=False, profile_batch=0
        ),
        *callbacks,
    ]
    model.fit(
        train_data,
        validation_data=dev_data,
        epochs=job.epochs,
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
