"""Fitting one model into a run folder: input pipeline, callbacks, fit (or resume), evaluation.

Seed 004's recipe: Adam, categorical cross-entropy, EarlyStopping on validation accuracy,
ModelCheckpoint of the best epoch and ReduceLROnPlateau (or a cosine schedule), with
augmentation only in the training input pipeline. Every epoch writes ``last.keras`` and
``state.json`` so ``--resume`` continues where a killed run stopped, with the same early-stopping
and plateau counters.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import DEFAULT_CONTRACT
from edge.errors import ConfigError, DataError
from train.data import FaceSet
from train.data.augment import NONE, build_augmenter
from train.distribute import backup_callbacks, fit_phases, make_engine, trim_history
from train.options import TrainOptions
from train.runfolder import RunFolder

log = logging.getLogger(__name__)


def cosine_lr(epoch: int, base_lr: float, epochs: int) -> float:
    """Cosine decay from ``base_lr`` at epoch 0 towards 0 at ``epochs`` (half a cosine period).

    Stateless in the epoch index, so ``--resume`` continues the same curve.
    """
    t = min(max(epoch, 0), epochs) / max(epochs, 1)
    return float(base_lr * 0.5 * (1.0 + np.cos(np.pi * t)))


def training_targets(fs: FaceSet, soft: bool, mix: float = 0.0) -> np.ndarray:
    """Training targets: one-hot labels, the soft distributions, or a ``mix`` of the two."""
    onehot = np.eye(fs.num_classes, dtype=np.float32)[fs.labels]
    if fs.soft is None:
        return onehot
    if soft:
        return fs.soft.astype(np.float32)
    if mix > 0:
        return ((1.0 - mix) * onehot + mix * fs.soft).astype(np.float32)
    return onehot


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> np.ndarray:
    """Per-face loss weights by class rarity (``--class-weight``), with mean 1 over ``labels``
    so the learning rate means the same as without them.

    Args:
        labels: Integer class of each training face.
        num_classes: Number of classes.
        mode: ``none`` (all 1), ``sqrt`` (``(n_max / n_c) ** 0.5``) or ``balanced``
            (``n_max / n_c``).
    """
    labels = np.asarray(labels)
    if mode == "none" or len(labels) == 0:
        return np.ones(len(labels), np.float32)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    per_class = counts.max() / np.maximum(counts, 1.0)
    if mode == "sqrt":
        per_class = np.sqrt(per_class)
    w = per_class[labels]
    return (w / w.mean()).astype(np.float32)


def make_dataset(fs: FaceSet, opts: TrainOptions, training: bool, teacher: Any = None) -> Any:
    """Batches of ``(raw 0..255 faces, targets)``, plus per-face loss weights when training
    with ``--class-weight``; augmented (and distilled from ``teacher``, on the very batch the
    student sees) when ``training``."""
    import tensorflow as tf

    x = fs.images[..., None]
    y = training_targets(fs, opts.soft_labels and training, opts.ferplus_mix if training else 0.0)
    weighted = training and opts.class_weight != "none"
    if weighted:
        w = class_weights(fs.labels, fs.num_classes, opts.class_weight)
        ds = tf.data.Dataset.from_tensor_slices((x, y, w))
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(fs), seed=opts.seed, reshuffle_each_iteration=True)
    ds = ds.batch(opts.batch)
    aug = build_augmenter(opts.augment, opts.seed) if training and opts.augment != NONE else None

    def prep(xb: Any, yb: Any, *wb: Any) -> tuple[Any, ...]:
        xb = tf.cast(xb, tf.float32)
        if aug is not None:
            xb = tf.clip_by_value(aug(xb, training=True), 0.0, 255.0)
        if teacher is not None:
            yb = _distilled(tf, teacher(xb, training=False), yb, opts)
        return (xb, yb, *wb)  # Keras reads a third element as sample weights

    return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _distilled(tf: Any, probs: Any, yb: Any, opts: TrainOptions) -> Any:
    """``(1 - mix) * targets + mix * teacher``, the teacher's softmax softened by T."""
    if opts.teacher_temperature != 1.0:
        # softmax(logits / T) from the softmax output: p^(1/T), renormalised.
        probs = tf.nn.softmax(tf.math.log(probs + 1e-8) / opts.teacher_temperature)
    w = opts.teacher_mix
    return (1.0 - w) * yb + w * tf.cast(probs, yb.dtype)


def make_callbacks(run: Path, opts: TrainOptions, state: dict[str, Any] | None) -> list[Any]:
    """Checkpoint, early stopping, LR schedule, CSV history and the resume state, in that order
    (the checkpoint updates its best before the state records it); ``state`` is the
    ``state.json`` of a resumed run, whose counters the callbacks continue."""
    import keras

    es = _resumable(keras.callbacks.EarlyStopping, state, "es_wait")(
        monitor="val_accuracy", mode="max", patience=opts.patience, verbose=1
    )
    rlr: Any
    if opts.schedule == "cosine":
        rlr = keras.callbacks.LearningRateScheduler(
            lambda epoch, lr: cosine_lr(epoch, opts.lr, opts.epochs)
        )
    else:
        rlr = _resumable(keras.callbacks.ReduceLROnPlateau, state, "lr_wait")(
            monitor="val_accuracy", mode="max", factor=0.2, patience=3, min_delta=1e-4, verbose=1
        )
    ckpt = keras.callbacks.ModelCheckpoint(
        str(run / "model.keras"),
        monitor="val_accuracy",
        mode="max",
        save_best_only=True,
        initial_value_threshold=state["best"] if state else None,
        verbose=1,
    )
    csv = keras.callbacks.CSVLogger(str(run / "history.csv"), append=state is not None)
    return [ckpt, es, rlr, csv, _save_state(run, state, ckpt, es, rlr)]


def _resumable(base: Any, state: dict[str, Any] | None, wait_key: str) -> Any:
    """A subclass of the Keras callback ``base`` that, on a resume, starts from the saved best
    value and its ``wait`` counter (``state[wait_key]``) instead of from scratch."""

    class Resumable(base):  # type: ignore[misc,valid-type]
        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            if state:
                self.best, self.wait = state["best"], state[wait_key]
                if hasattr(self, "best_weights"):  # EarlyStopping: none from before the kill
                    self.best_weights = None

    Resumable.__name__ = f"Resumable{base.__name__}"
    return Resumable


def _save_state(run: Path, state: dict[str, Any] | None, ckpt: Any, es: Any, rlr: Any) -> Any:
    """The callback that persists everything ``--resume`` needs after every epoch."""
    import keras

    class SaveState(keras.callbacks.Callback):  # type: ignore[misc]
        """Persist the resume state with the training time so far: a run killed between
        epochs and finished with ``--resume`` still reports its total."""

        def on_train_begin(self, logs: Any = None) -> None:
            self.prior = float((state or {}).get("train_seconds", 0.0))
            self.t0 = time.time()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.model.save(run / ".last.keras.tmp.keras")
            os.replace(run / ".last.keras.tmp.keras", run / "last.keras")
            RunFolder(run).write_state(
                {
                    "epoch": epoch,
                    "best": float(ckpt.best),
                    "es_wait": int(es.wait),
                    # A cosine scheduler has no plateau counter.
                    "lr_wait": int(getattr(rlr, "wait", 0)),
                    "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                    "stopped": False,
                    "train_seconds": self.prior + time.time() - self.t0,
                },
            )

    return SaveState()


def fit_model(
    run: Path,
    train: FaceSet,
    val: FaceSet,
    opts: TrainOptions,
    initial: Any = None,
    teacher: Any = None,
    engine: Any = None,
) -> dict[str, Any]:
    """Train (or resume) into ``run``. ``initial``: an already built model to start from (the
    ``--init-from`` weights loaded once by :func:`train.train.train_run`); otherwise a fresh one
    is built. ``teacher``: the loaded ``--teacher`` model, if any. ``engine``: the
    :class:`train.distribute.Engine` (strategy, precision) to train with; one device if None."""
    import keras

    engine = engine or make_engine(opts)
    opts = engine.effective(opts)  # the global batch and learning rate
    keras.utils.set_random_seed(opts.seed)
    with engine.scope():
        model, state = _model_and_state(run, train, opts, initial)
        engine.prepare(model)
    initial_epoch = state["epoch"] + 1 if state else 0
    trim_history(run / "history.csv", initial_epoch)
    prior, t0 = (state or {}).get("train_seconds", 0.0), time.time()
    _fit_phases(model, run, (train, val), opts, teacher, state, initial_epoch)
    engine.export(run / "model.keras", opts.arch, train.num_classes)
    train_seconds = time.time() - t0 + prior
    st = RunFolder(run).read_state() or {}
    st.update(stopped=True, train_seconds=train_seconds)
    RunFolder(run).write_state(st)
    return {"train_seconds": round(train_seconds, 1), "params": int(model.count_params())}


def _fit_phases(
    model: Any,
    run: Path,
    data: tuple[FaceSet, FaceSet],
    opts: TrainOptions,
    teacher: Any,
    state: dict[str, Any] | None,
    initial_epoch: int,
) -> None:
    """``model.fit`` from ``initial_epoch`` to ``opts.epochs``, in the phases
    :func:`train.distribute.fit_phases` gives (one, unless a mid-epoch backup is restored)."""
    train, val = data
    for first, end, skip in fit_phases(run, initial_epoch, opts.epochs):
        if first > initial_epoch:  # the restored epoch is done: go on as a resume after it
            state = RunFolder(run).read_state()
        model.fit(
            make_dataset(train, opts, training=True, teacher=teacher).skip(skip),
            validation_data=make_dataset(val, opts, training=False),
            epochs=end,
            initial_epoch=first,
            callbacks=[
                *make_callbacks(run, opts, state),
                *backup_callbacks(run, opts, first, skip),
            ],
            verbose=1 if sys.stdout.isatty() else 2,
        )
        if model.stop_training:  # early stopping in the restored epoch
            break


def _model_and_state(
    run: Path, train: FaceSet, opts: TrainOptions, initial: Any
) -> tuple[Any, dict[str, Any] | None]:
    """The model to fit and the resume state: the last epoch's model and ``state.json`` of an
    interrupted run under ``--resume``, else a new compiled model (``None`` state)."""
    import keras

    from train.models import create_model

    if opts.resume and (run / "state.json").exists() and (run / "last.keras").exists():
        state = RunFolder(run).read_state()
        assert state is not None
        log.info("resuming %s after epoch %d (best val_accuracy %.4f)", run, state["epoch"] + 1, state["best"])  # fmt: skip
        return keras.models.load_model(run / "last.keras"), state
    model = create_model(opts.arch, train.num_classes, DEFAULT_CONTRACT.input_shape)
    if initial is not None:
        model.set_weights(initial.get_weights())
    elif opts.init_from:  # K-fold: every fold starts from the same weights
        load_weights(model, Path(opts.init_from))
    model.compile(
        optimizer=keras.optimizers.Adam(opts.lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=opts.label_smoothing),
        metrics=["accuracy"],
    )
    return model, None


def load_weights(model: Any, path: Path) -> None:
    """Copy the weights of the ``.keras`` file at ``path`` into ``model`` (same architecture).

    Raises:
        DataError: the file is not a loadable Keras model.
        ConfigError: its weights do not fit ``model``.
    """
    import keras

    try:
        src = keras.models.load_model(path, compile=False)
    except (OSError, ValueError) as e:
        raise DataError(f"--init-from {path}: cannot load a Keras model ({e})") from None
    try:
        model.set_weights(src.get_weights())
    except ValueError as e:
        raise ConfigError(
            f"--init-from {path}: its weights do not fit --arch {model.name} ({e})"
        ) from None
    log.info("weights initialised from %s", path)


def finish_run(
    run: Path, val: FaceSet, extra: dict[str, Any], twin_rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Evaluate the best checkpoint, draw learning curves, write ``metrics.json`` last."""
    from train.evaluate import evaluate_model, plot_history

    if not (run / "model.keras").exists():
        raise DataError(f"{run}: training produced no checkpoint (no epoch improved val accuracy)")
    if (run / "history.csv").exists():
        plot_history(run / "history.csv", run / "learning_curves.png")
    return evaluate_model(run / "model.keras", val, run, exclude_rows=twin_rows, extra=extra)
