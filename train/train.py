"""Leak-free training of a registered architecture (``fer-train train``).

Protocol (the same for every architecture, so comparisons are fair):

1. Load Training and the validation split (PublicTest by default) from the FER2013 CSV, with
   FER2013 or FERPlus-majority labels.
2. Remove exact duplicates inside Training and every Training image that also appears in the
   validation split (:mod:`train.data.dedup`); counts go into ``config.json``.
3. Optionally oversample the *training* split only (never before the split: see seed 002).
4. Adam 1e-3, categorical cross-entropy, EarlyStopping(patience 7), ModelCheckpoint on validation
   accuracy, ReduceLROnPlateau(factor 0.2, patience 3, min_delta 1e-4) as seed 004 describes;
   augmentation only in the training input pipeline.
5. Evaluate the best checkpoint on the validation split (:mod:`train.evaluate`).

A run folder is complete when ``metrics.json`` exists; ``config.json`` says ``"status"``. Every
epoch writes ``last.keras`` + ``state.json`` so ``--resume`` continues after an interruption.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import DEFAULT_CONTRACT
from edge.errors import ConfigError, DataError
from edge.model_meta import file_sha256
from train.data import FaceSet, load_fer2013, select_classes
from train.data.augment import NONE, AugmentConfig, build_augmenter
from train.data.dedup import leak_free_train, rows_with_twin
from train.data.fer2013 import TRAIN_VAL
from train.data.sampling import fold_groups, kfold_indices, oversample, stratified_limit
from train.distribute import backup_callbacks, check_options, fit_phases, make_engine, trim_history
from train.provenance import git_commit
from train.runfolder import RunFolder

log = logging.getLogger(__name__)


@dataclass
class TrainOptions:
    """Everything that defines a training run (saved as ``config.json``)."""

    arch: str
    data: str
    out: str
    labels: str = "fer2013"
    ferplus: str | None = None
    ferplus_classes: int = 8
    epochs: int = 50
    batch: int = 64
    limit: int | None = None
    oversample: bool = False
    seed: int = 42
    resume: bool = False
    val_usage: str = "PublicTest"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    lr: float = 1e-3
    patience: int = 7
    label_smoothing: float = 0.0
    soft_labels: bool = False
    #: Weight of the FERPlus vote shares in the training targets, the rest being the FER2013
    #: one-hot: ``(1 - w) * onehot + w * votes``. At w <= 0.5 the FER2013 label stays the target's
    #: argmax, so this is label smoothing that knows which classes annotators confused.
    ferplus_mix: float = 0.0
    classes: tuple[str, ...] | None = None
    folds: int | None = None
    protocol: str = "leak-free"
    #: "plateau" (seed 004's ReduceLROnPlateau) or "cosine" (lr -> 0 over ``epochs``).
    schedule: str = "plateau"
    #: A ``.keras`` model of the same architecture whose weights start this run (a second,
    #: warm-restarted cycle); its run folder's provenance is copied into ``config.json``.
    init_from: str | None = None
    #: Knowledge distillation: ``.keras`` or ``.tflite`` models of finished leak-free runs with
    #: the same labels and contract (see :mod:`train.teachers`). Each augmented training batch's
    #: targets become ``(1 - teacher_mix) * targets + teacher_mix * teachers(batch)``, the mean
    #: of the teachers' softmax (over ``teacher_tta`` views too) softened by
    #: ``teacher_temperature``.
    teacher: list[str] = field(default_factory=list)
    teacher_tta: str = "none"
    teacher_mix: float = 0.5
    teacher_temperature: float = 1.0
    #: ``--distribute`` / ``--per-replica-batch`` / ``--precision`` / ``--backup-every``: see
    #: :mod:`train.distribute`.
    distribute: str | None = None
    per_replica_batch: bool = False
    precision: str = "float32"
    backup_every: int | None = None
    command: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        d["classes"] = list(self.classes) if self.classes else None
        return d


def prepare_data(
    opts: TrainOptions, allow_oversample: bool = True
) -> tuple[FaceSet, FaceSet, dict[str, Any]]:
    """Load, de-duplicate and (optionally) oversample; return train, validation and a report.

    ``allow_oversample=False`` defers oversampling (K-fold oversamples each fold's training
    part, so copies never straddle a fold boundary).
    """
    kw: dict[str, Any] = {"labels": opts.labels, "ferplus_path": opts.ferplus}
    if opts.labels == "ferplus":
        kw["ferplus_classes"] = opts.ferplus_classes
    train = load_fer2013(opts.data, "Training", **kw).require_nonempty("Training split")
    val = load_fer2013(opts.data, opts.val_usage, **kw).require_nonempty(f"{opts.val_usage} split")
    if opts.classes:
        train, val = select_classes(train, opts.classes), select_classes(val, opts.classes)
    held_out = {opts.val_usage: val} | _report_splits(opts, kw)
    clean, rep = leak_free_train(train, held_out)
    twin_rows = rows_with_twin(val, train)
    clean = stratified_limit(clean, opts.limit, opts.seed)
    if opts.limit:
        val = stratified_limit(val, max(opts.limit // 4, 50), opts.seed)
    report: dict[str, Any] = {
        "dedup": rep.to_dict(),
        "train_classes": clean.class_counts(),
        # Not serialized: used to report validation scores without Training twins.
        "_val_twin_rows": twin_rows,
    }
    if opts.oversample and allow_oversample:
        clean = oversample(clean, opts.seed)
        report["train_classes_oversampled"] = clean.class_counts()
    report.update(
        train_rows=len(clean),
        val_rows=len(val),
        val_classes=val.class_counts(),
        train_source=clean.source,
        val_source=val.source,
    )
    return clean, val, report


def _report_splits(opts: TrainOptions, kw: dict[str, Any]) -> dict[str, FaceSet]:
    """PublicTest, when the run validates on the Training slice instead: its images are kept out
    of training too, so PublicTest stays an honest report of a model selected without it."""
    if opts.val_usage != TRAIN_VAL:
        return {}
    try:
        public = load_fer2013(opts.data, "PublicTest", **kw)
    except DataError:  # a CSV with Training rows only: nothing to keep clean
        return {}
    return {"PublicTest": select_classes(public, opts.classes) if opts.classes else public}


PROTOCOLS = ("leak-free", "seed002-leaky")
SCHEDULES = ("plateau", "cosine")


def cosine_lr(epoch: int, base_lr: float, epochs: int) -> float:
    """Cosine decay from ``base_lr`` at epoch 0 towards 0 at ``epochs`` (half a cosine period).

    Stateless in the epoch index, so ``--resume`` continues the same curve.
    """
    t = min(max(epoch, 0), epochs) / max(epochs, 1)
    return float(base_lr * 0.5 * (1.0 + np.cos(np.pi * t)))


def _run_config(checkpoint: Path) -> dict[str, Any] | None:
    """The ``config.json`` beside a checkpoint (its run's), or None if there is none.

    Raises:
        RunFileError: the file is unreadable or not a JSON object (a DataError).
    """
    return RunFolder.of_checkpoint(checkpoint).read_config()


def checkpoint_provenance(path: Path) -> dict[str, Any]:
    """Where a checkpoint came from: its hash and, if beside it, its run's provenance.

    Recorded for a warm start's parent (``init_from``), a soup's ingredients and a teacher.
    """
    info: dict[str, Any] = {"path": str(path), "sha256": file_sha256(path)}
    parent = RunFolder.of_checkpoint(path).provenance()
    if parent is not None:
        info["parent"] = parent
    return info


def leak_free_run_config(path: Path, what: str, val_usage: str | None = None) -> dict[str, Any]:
    """The ``config.json`` of the finished leak-free run that the checkpoint ``path`` came from.

    Soup ingredients and distillation teachers must come from such runs: a checkpoint trained on
    the validation split (or under seed 002's leaky protocol) would carry it into the result.

    Args:
        path: A ``.keras`` checkpoint inside a run folder.
        what: How the checkpoint is used, for the error message (``"--teacher"``).
        val_usage: If given, the run must have been validated on (so never trained on) this split.

    Raises:
        ConfigError: no such file, no ``config.json`` beside it, a leaky protocol or another
            validation split.
        DataError: ``config.json`` is not valid JSON.
    """
    if not path.is_file():
        raise ConfigError(f"{what} {path}: no such file")
    cfg = _run_config(path)
    if cfg is None:
        raise ConfigError(f"{what} {path}: no config.json beside it (its run is needed)")
    return check_leak_free(cfg, path, what, val_usage)


def check_leak_free(
    cfg: dict[str, Any], path: Path, what: str, val_usage: str | None = None
) -> dict[str, Any]:
    """The checks of :func:`leak_free_run_config` on a run config already read (a run's
    ``config.json``, or the ``training`` section a ``.tflite`` carries); returns ``cfg``."""
    options = cfg.get("options") or {}
    protocol = options.get("protocol", "leak-free")
    if protocol != "leak-free":
        raise ConfigError(f"{what} {path}: trained with protocol {protocol!r}; only leak-free runs")
    used = options.get("val_usage") or (cfg.get("soup") or {}).get("val_usage")
    if val_usage is not None and used not in (None, val_usage):
        raise ConfigError(
            f"{what} {path}: validated on {used!r}, not {val_usage!r}; it may have trained on it"
        )
    return cfg


def prepare_seed002_leaky(opts: TrainOptions) -> tuple[FaceSet, FaceSet, dict[str, Any]]:
    """Seed 002's protocol, reproduced only to measure how much its test score owes to leaks.

    Seed 002 balanced FER2013 with random oversampling and *then* split train/test, so copies
    of the same image land on both sides. Here: Training + the validation split (all labelled
    rows we have) are pooled, oversampled to the majority class, shuffled, and split 80/20.
    No de-duplication. The report counts test rows whose image is also in the training part;
    ``metrics.json`` carries the score on all test rows and, under
    ``excluding_train_duplicates``, on the test rows whose image was never trained on.
    """
    kw: dict[str, Any] = {"labels": opts.labels, "ferplus_path": opts.ferplus}
    if opts.labels == "ferplus":
        kw["ferplus_classes"] = opts.ferplus_classes
    pool = load_fer2013(opts.data, ("Training", opts.val_usage), **kw).require_nonempty("data")
    if opts.classes:
        pool = select_classes(pool, opts.classes)
    pool = stratified_limit(pool, opts.limit, opts.seed)
    over = oversample(pool, opts.seed)
    order = np.random.default_rng(opts.seed).permutation(len(over))
    n_test = int(round(0.2 * len(over)))
    test = over.subset(order[:n_test], source=f"seed002 random 20% of oversampled {pool.source}")
    train = over.subset(order[n_test:], source=f"seed002 random 80% of oversampled {pool.source}")
    seen = rows_with_twin(test, train)
    leaked = int(np.isin(test.rows, seen).sum())
    report: dict[str, Any] = {
        "pool_rows": len(pool),
        "pool_classes": pool.class_counts(),
        "oversampled_rows": len(over),
        "train_rows": len(train),
        "val_rows": len(test),
        "val_classes": test.class_counts(),
        "test_rows_seen_in_training": leaked,
        "test_fraction_seen_in_training": round(leaked / max(len(test), 1), 4),
        "train_source": train.source,
        "val_source": test.source,
        "_val_twin_rows": seen,
    }
    return train, test, report


def _targets(fs: FaceSet, soft: bool, mix: float = 0.0) -> np.ndarray:
    """Training targets: one-hot labels, the soft distributions, or a ``mix`` of the two."""
    onehot = np.eye(fs.num_classes, dtype=np.float32)[fs.labels]
    if fs.soft is None:
        return onehot
    if soft:
        return fs.soft.astype(np.float32)
    if mix > 0:
        return ((1.0 - mix) * onehot + mix * fs.soft).astype(np.float32)
    return onehot


def _dataset(fs: FaceSet, opts: TrainOptions, training: bool, teacher: Any = None) -> Any:
    """Batches of ``(raw 0..255 faces, targets)``; augmented (and distilled from ``teacher``,
    on the very batch the student sees) when ``training``."""
    import tensorflow as tf

    x = fs.images[..., None]
    y = _targets(fs, opts.soft_labels and training, opts.ferplus_mix if training else 0.0)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if training:
        ds = ds.shuffle(len(fs), seed=opts.seed, reshuffle_each_iteration=True)
    ds = ds.batch(opts.batch)
    aug = build_augmenter(opts.augment, opts.seed) if training and opts.augment != NONE else None

    def prep(xb: Any, yb: Any) -> tuple[Any, Any]:
        xb = tf.cast(xb, tf.float32)
        if aug is not None:
            xb = tf.clip_by_value(aug(xb, training=True), 0.0, 255.0)
        if teacher is not None:
            probs = teacher(xb, training=False)
            if opts.teacher_temperature != 1.0:
                # softmax(logits / T) from the softmax output: p^(1/T), renormalised.
                probs = tf.nn.softmax(tf.math.log(probs + 1e-8) / opts.teacher_temperature)
            w = opts.teacher_mix
            yb = (1.0 - w) * yb + w * tf.cast(probs, yb.dtype)
        return xb, yb

    return ds.map(prep, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _callbacks(run: Path, opts: TrainOptions, state: dict[str, Any] | None) -> list[Any]:
    import keras

    class ResumableEarlyStopping(keras.callbacks.EarlyStopping):  # type: ignore[misc]
        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            if state:
                self.best, self.wait = state["best"], state["es_wait"]
                self.best_weights = None

    class ResumableReduceLR(keras.callbacks.ReduceLROnPlateau):  # type: ignore[misc]
        def on_train_begin(self, logs: Any = None) -> None:
            super().on_train_begin(logs)
            if state:
                self.best, self.wait = state["best"], state["lr_wait"]

    es = ResumableEarlyStopping(
        monitor="val_accuracy", mode="max", patience=opts.patience, verbose=1
    )
    rlr: Any
    if opts.schedule == "cosine":
        rlr = keras.callbacks.LearningRateScheduler(
            lambda epoch, lr: cosine_lr(epoch, opts.lr, opts.epochs)
        )
    else:
        rlr = ResumableReduceLR(
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

    class SaveState(keras.callbacks.Callback):  # type: ignore[misc]
        """Persist everything ``--resume`` needs after every epoch, with the training time so far:
        a run killed between epochs and finished with ``--resume`` still reports its total."""

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

    csv = keras.callbacks.CSVLogger(str(run / "history.csv"), append=state is not None)
    # Order matters: ckpt updates its best before SaveState records it.
    return [ckpt, es, rlr, csv, SaveState()]


def _fit(
    run: Path,
    train: FaceSet,
    val: FaceSet,
    opts: TrainOptions,
    initial: Any = None,
    teacher: Any = None,
    engine: Any = None,
) -> dict[str, Any]:
    """Train (or resume) into ``run``. ``initial``: an already built model to start from (the
    ``--init-from`` weights loaded once by :func:`train_run`); otherwise a fresh one is built.
    ``teacher``: the loaded ``--teacher`` model, if any. ``engine``: the
    :class:`train.distribute.Engine` (strategy, precision) to train with; one device if None."""
    import keras

    from train.models import create_model

    engine = engine or make_engine(opts)
    opts = engine.effective(opts)  # the global batch and learning rate
    keras.utils.set_random_seed(opts.seed)
    state = None
    with engine.scope():
        if opts.resume and (run / "state.json").exists() and (run / "last.keras").exists():
            state = RunFolder(run).read_state()
            model = keras.models.load_model(run / "last.keras")
            log.info("resuming %s after epoch %d (best val_accuracy %.4f)", run, state["epoch"] + 1, state["best"])  # fmt: skip
        else:
            model = create_model(opts.arch, train.num_classes, DEFAULT_CONTRACT.input_shape)
            if initial is not None:
                model.set_weights(initial.get_weights())
            elif opts.init_from:  # K-fold: every fold starts from the same weights
                _load_weights(model, Path(opts.init_from))
            model.compile(
                optimizer=keras.optimizers.Adam(opts.lr),
                loss=keras.losses.CategoricalCrossentropy(label_smoothing=opts.label_smoothing),
                metrics=["accuracy"],
            )
        engine.prepare(model)
    initial_epoch = state["epoch"] + 1 if state else 0
    trim_history(run / "history.csv", initial_epoch)
    prior, t0 = (state or {}).get("train_seconds", 0.0), time.time()
    for first, end, skip in fit_phases(run, initial_epoch, opts.epochs):
        if first > initial_epoch:  # the restored epoch is done: go on as a resume after it
            state = RunFolder(run).read_state()
        model.fit(
            _dataset(train, opts, training=True, teacher=teacher).skip(skip),
            validation_data=_dataset(val, opts, training=False),
            epochs=end,
            initial_epoch=first,
            callbacks=[*_callbacks(run, opts, state), *backup_callbacks(run, opts, first, skip)],
            verbose=1 if sys.stdout.isatty() else 2,
        )
        if model.stop_training:  # early stopping in the restored epoch
            break
    engine.export(run / "model.keras", opts.arch, train.num_classes)
    train_seconds = time.time() - t0 + prior
    st = RunFolder(run).read_state() or {}
    st.update(stopped=True, train_seconds=train_seconds)
    RunFolder(run).write_state(st)
    return {"train_seconds": round(train_seconds, 1), "params": int(model.count_params())}


def _load_weights(model: Any, path: Path) -> None:
    """Copy the weights of the ``.keras`` file at ``path`` into ``model`` (same architecture)."""
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


def _finish(
    run: Path, val: FaceSet, extra: dict[str, Any], twin_rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Evaluate the best checkpoint, draw learning curves, write ``metrics.json`` last."""
    from train.evaluate import evaluate_model, plot_history

    if not (run / "model.keras").exists():
        raise DataError(f"{run}: training produced no checkpoint (no epoch improved val accuracy)")
    if (run / "history.csv").exists():
        plot_history(run / "history.csv", run / "learning_curves.png")
    return evaluate_model(run / "model.keras", val, run, exclude_rows=twin_rows, extra=extra)


def train_run(opts: TrainOptions) -> dict[str, Any]:
    """Run one training job (or K folds) into ``opts.out``; return the final metrics.

    Raises:
        ConfigError: unknown architecture (listing valid names) or an out folder in the way.
        DataError: bad or empty data.
    """
    from train.models import get_spec

    try:
        spec = get_spec(opts.arch)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    check_options(opts)
    engine = make_engine(opts)  # before any other TF work (TF's rule)
    run = engine.run_dir(Path(opts.out))
    if (run / "metrics.json").exists() and not opts.resume:
        raise ConfigError(
            f"{run} already holds a finished run; choose another --out or pass --resume"
        )
    if run.exists() and any(run.iterdir()) and not opts.resume:
        raise ConfigError(f"{run} exists and is not empty; choose another --out or pass --resume")
    if opts.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {opts.protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if opts.schedule not in SCHEDULES:
        raise ConfigError(f"unknown schedule {opts.schedule!r}; valid: {', '.join(SCHEDULES)}")
    init_info = None
    if opts.init_from:
        init_path = Path(opts.init_from)
        if not init_path.is_file():
            raise ConfigError(f"--init-from {init_path}: no such file")
        init_info = checkpoint_provenance(init_path)
    if not 0.0 <= opts.ferplus_mix <= 1.0:
        raise ConfigError(f"--ferplus-mix {opts.ferplus_mix}: must be between 0 and 1")
    if opts.ferplus_mix > 0 and (not opts.ferplus or opts.labels != "fer2013" or opts.soft_labels):
        raise ConfigError(
            "--ferplus-mix needs --ferplus FILE with --labels fer2013 and without --soft-labels"
        )
    if opts.protocol != "leak-free" and opts.folds:
        raise ConfigError("--folds is only available with the leak-free protocol")
    if opts.teacher and (opts.protocol != "leak-free" or opts.folds):
        raise ConfigError("--teacher is only available for a leak-free run without --folds")
    if not 0.0 < opts.teacher_mix <= 1.0:
        raise ConfigError(f"--teacher-mix {opts.teacher_mix}: must be in (0, 1]")
    if opts.teacher_temperature <= 0:
        raise ConfigError(f"--teacher-temperature {opts.teacher_temperature}: must be > 0")
    created = not run.exists()
    try:
        if opts.protocol == "seed002-leaky":
            train, val, report = prepare_seed002_leaky(opts)
        else:
            train, val, report = prepare_data(opts, allow_oversample=not opts.folds)
        initial = None
        if opts.init_from and not opts.folds:
            # Loaded here, before the run folder exists, so weights that do not fit the
            # architecture fail cleanly; _fit then trains this very model.
            from train.models import create_model

            initial = create_model(opts.arch, train.num_classes, DEFAULT_CONTRACT.input_shape)
            _load_weights(initial, Path(opts.init_from))
        teacher, teacher_info = None, None
        if opts.teacher:
            from train.teachers import load_teachers

            # Loaded here: a bad teacher fails before the run folder exists.
            teacher = load_teachers(
                opts.teacher, opts.teacher_tta, train.label_names, opts.val_usage
            )
            teacher_info = {
                "models": teacher.provenance,
                "tta": opts.teacher_tta,
                "mix": opts.teacher_mix,
                "temperature": opts.teacher_temperature,
            }
    except BaseException:
        if created and run.exists():
            shutil.rmtree(run)
        raise
    twin_rows = report.pop("_val_twin_rows")
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").unlink(missing_ok=True)
    config = {
        "arch": opts.arch,
        "seed_paper": spec.seed,
        "kind": spec.kind,
        "labels": list(train.label_names),
        "contract": DEFAULT_CONTRACT.to_dict() | {"labels": list(train.label_names)},
        "options": opts.to_dict(),
        "data": report,
        "command": opts.command or shlex.join(["fer-train", *sys.argv[1:]]),
        "commit": git_commit(),
        "init_from": init_info,
        "teacher": teacher_info,
        "distribute": engine.describe(opts),
        "status": "running",
        "protocol": (
            "leak-free: exact duplicates removed inside Training and between Training and "
            f"{' and '.join(report['dedup']['eval_rows_with_train_twin'])}; oversampling (if any) applied to Training only after the split; "
            f"model selected on {opts.val_usage}"
            if opts.protocol == "leak-free"
            else "seed002-leaky: Training + PublicTest pooled, randomly oversampled BEFORE an "
            "80/20 random split (seed 002's protocol, reproduced to measure its leak; not a "
            "valid estimate of accuracy on unseen faces)"
        ),
    }
    previous = run / "config.json"
    if opts.resume and previous.is_file():
        # Keep the original command as provenance; record each resumption after it.
        old = RunFolder(run).read_config() or {}
        config["resumed_with"] = [*old.get("resumed_with", []), config["command"]]
        config["command"] = old.get("command", config["command"])
    RunFolder(run).write_config(config)
    log.info(
        "%s: %d training / %d validation images (%s)", opts.arch, len(train), len(val),
        json.dumps(report.get("dedup") or {"seen_in_training": report.get("test_rows_seen_in_training")}),
    )  # fmt: skip
    if opts.folds:
        metrics = _kfold(run, train, opts)
    else:
        extra = _fit(run, train, val, opts, initial, teacher, engine)
        if not engine.is_chief:
            return engine.leave(run)
        metrics = _finish(run, val, extra, twin_rows)
    config["status"] = "complete"
    RunFolder(run).write_config(config)
    return metrics


def _kfold(run: Path, train: FaceSet, opts: TrainOptions) -> dict[str, Any]:
    """Seed 003's K-fold cross-validation inside the (leak-free) Training split."""
    assert opts.folds is not None
    # Each exact-duplicate group and each subject (CK+) stays inside one fold.
    folds = kfold_indices(train.labels, opts.folds, opts.seed, groups=fold_groups(train))
    per_fold = []
    for i, (tr_idx, va_idx) in enumerate(folds):
        sub = run / f"fold{i}"
        sub.mkdir(exist_ok=True)
        fold_opts = TrainOptions(**{**opts.__dict__, "out": str(sub), "folds": None})
        tr = train.subset(tr_idx)
        if opts.oversample:
            tr = oversample(tr, opts.seed)
        va = train.subset(va_idx, source=f"fold {i} of {train.source}")
        if (sub / "metrics.json").exists():
            m = RunFolder(sub).read_metrics()
        else:
            m = _finish(sub, va, _fit(sub, tr, va, fold_opts))
        per_fold.append(m)
    keys = ("accuracy", "macro_f1", "auc_macro")
    summary: dict[str, Any] = {
        "folds": opts.folds,
        "per_fold": [{k: m.get(k) for k in keys} for m in per_fold],
    }
    for k in keys:
        vals = [m[k] for m in per_fold if isinstance(m.get(k), (int, float))]
        summary[f"{k}_mean"] = float(np.mean(vals)) if vals else None
        summary[f"{k}_std"] = float(np.std(vals)) if vals else None
    RunFolder(run).write_metrics(summary)
    return summary
