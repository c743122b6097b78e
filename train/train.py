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

This module prepares the data and the run folder; the options and their checks are in
:mod:`train.options`, fitting and callbacks in :mod:`train.fit`, K-fold in :mod:`train.kfold`,
checkpoint provenance in :mod:`train.provenance`.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import DEFAULT_CONTRACT
from edge.errors import ConfigError, DataError
from train.data import FaceSet, load_fer2013, select_classes
from train.data.dedup import leak_free_train, rows_with_twin
from train.data.fer2013 import TRAIN_VAL
from train.data.sampling import oversample, stratified_limit
from train.distribute import check_options, make_engine
from train.fit import cosine_lr as cosine_lr  # re-exported: the pieces that moved out
from train.fit import finish_run, fit_model, load_weights
from train.kfold import run_kfold
from train.options import PROTOCOLS as PROTOCOLS
from train.options import SCHEDULES as SCHEDULES
from train.options import TrainOptions, check_run_options
from train.provenance import check_leak_free as check_leak_free
from train.provenance import checkpoint_provenance, git_commit
from train.provenance import leak_free_run_config as leak_free_run_config
from train.runfolder import RunFolder

log = logging.getLogger(__name__)


def prepare_data(
    opts: TrainOptions, allow_oversample: bool = True
) -> tuple[FaceSet, FaceSet, dict[str, Any]]:
    """Load, de-duplicate and (optionally) oversample; return train, validation and a report.

    ``allow_oversample=False`` defers oversampling (K-fold oversamples each fold's training
    part, so copies never straddle a fold boundary).
    """
    kw = _label_args(opts)
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


def _label_args(opts: TrainOptions) -> dict[str, Any]:
    """The label arguments of :func:`train.data.load_fer2013` for these options."""
    kw: dict[str, Any] = {"labels": opts.labels, "ferplus_path": opts.ferplus}
    if opts.labels == "ferplus":
        kw["ferplus_classes"] = opts.ferplus_classes
    return kw


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


def prepare_seed002_leaky(opts: TrainOptions) -> tuple[FaceSet, FaceSet, dict[str, Any]]:
    """Seed 002's protocol, reproduced only to measure how much its test score owes to leaks.

    Seed 002 balanced FER2013 with random oversampling and *then* split train/test, so copies
    of the same image land on both sides. Here: Training + the validation split (all labelled
    rows we have) are pooled, oversampled to the majority class, shuffled, and split 80/20.
    No de-duplication. The report counts test rows whose image is also in the training part;
    ``metrics.json`` carries the score on all test rows and, under
    ``excluding_train_duplicates``, on the test rows whose image was never trained on.
    """
    kw = _label_args(opts)
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
    _check_out_folder(run, opts.resume)
    check_run_options(opts)
    init_info = _init_provenance(opts)
    train, val, report, initial, teacher, teacher_info = _load_inputs(run, opts)
    twin_rows = report.pop("_val_twin_rows")
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").unlink(missing_ok=True)
    config = _config_json(opts, spec, train, report, engine, init_info, teacher_info)
    _write_config(run, opts, config)
    log.info(
        "%s: %d training / %d validation images (%s)", opts.arch, len(train), len(val),
        json.dumps(report.get("dedup") or {"seen_in_training": report.get("test_rows_seen_in_training")}),
    )  # fmt: skip
    if opts.folds:
        metrics = run_kfold(run, train, opts)
    else:
        extra = fit_model(run, train, val, opts, initial, teacher, engine)
        if not engine.is_chief:
            return engine.leave(run)
        metrics = finish_run(run, val, extra, twin_rows)
    config["status"] = "complete"
    RunFolder(run).write_config(config)
    return metrics


def _config_json(
    opts: TrainOptions,
    spec: Any,
    train: FaceSet,
    report: dict[str, Any],
    engine: Any,
    init_info: dict[str, Any] | None,
    teacher_info: dict[str, Any] | None,
) -> dict[str, Any]:
    """The run's ``config.json`` while it runs: architecture, labels, contract, options, data
    report and provenance (command, commit, warm-start parent, teachers)."""
    return {
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
        "protocol": _protocol_text(opts, report),
    }


def _check_out_folder(run: Path, resume: bool) -> None:
    """Refuse to train into a finished run or a non-empty folder unless resuming."""
    if (run / "metrics.json").exists() and not resume:
        raise ConfigError(
            f"{run} already holds a finished run; choose another --out or pass --resume"
        )
    if run.exists() and any(run.iterdir()) and not resume:
        raise ConfigError(f"{run} exists and is not empty; choose another --out or pass --resume")


def _init_provenance(opts: TrainOptions) -> dict[str, Any] | None:
    """Where ``--init-from``'s checkpoint came from (None without it).

    Raises:
        ConfigError: the file does not exist.
    """
    if not opts.init_from:
        return None
    init_path = Path(opts.init_from)
    if not init_path.is_file():
        raise ConfigError(f"--init-from {init_path}: no such file")
    return checkpoint_provenance(init_path)


def _load_inputs(run: Path, opts: TrainOptions) -> tuple[Any, ...]:
    """Data, ``--init-from`` weights and ``--teacher`` models, all loaded before the run folder
    is created, so bad input fails with nothing left behind (a folder this call created is
    removed again).

    Returns:
        ``(train, val, report, initial model or None, teacher or None, teacher info or None)``.
    """
    created = not run.exists()
    try:
        if opts.protocol == "seed002-leaky":
            train, val, report = prepare_seed002_leaky(opts)
        else:
            train, val, report = prepare_data(opts, allow_oversample=not opts.folds)
        initial = None
        if opts.init_from and not opts.folds:
            # Loaded here so weights that do not fit the architecture fail cleanly; fit_model
            # then trains this very model.
            from train.models import create_model

            initial = create_model(opts.arch, train.num_classes, DEFAULT_CONTRACT.input_shape)
            load_weights(initial, Path(opts.init_from))
        teacher, teacher_info = _load_teacher(opts, train)
    except BaseException:
        if created and run.exists():
            shutil.rmtree(run)
        raise
    return train, val, report, initial, teacher, teacher_info


def _load_teacher(opts: TrainOptions, train: FaceSet) -> tuple[Any, dict[str, Any] | None]:
    """The ``--teacher`` models (averaged) and their description for ``config.json``."""
    if not opts.teacher:
        return None, None
    from train.teachers import load_teachers

    teacher = load_teachers(opts.teacher, opts.teacher_tta, train.label_names, opts.val_usage)
    info = {
        "models": teacher.provenance,
        "tta": opts.teacher_tta,
        "mix": opts.teacher_mix,
        "temperature": opts.teacher_temperature,
    }
    return teacher, info


def _protocol_text(opts: TrainOptions, report: dict[str, Any]) -> str:
    """``config.json``'s one-sentence account of how the splits were kept apart."""
    if opts.protocol == "leak-free":
        return (
            "leak-free: exact duplicates removed inside Training and between Training and "
            f"{' and '.join(report['dedup']['eval_rows_with_train_twin'])}; oversampling (if any) applied to Training only after the split; "
            f"model selected on {opts.val_usage}"
        )
    return (
        "seed002-leaky: Training + PublicTest pooled, randomly oversampled BEFORE an "
        "80/20 random split (seed 002's protocol, reproduced to measure its leak; not a "
        "valid estimate of accuracy on unseen faces)"
    )


def _write_config(run: Path, opts: TrainOptions, config: dict[str, Any]) -> None:
    """Write ``config.json``; a resumed run keeps its original command and records each
    resumption after it."""
    if opts.resume and (run / "config.json").is_file():
        old = RunFolder(run).read_config() or {}
        config["resumed_with"] = [*old.get("resumed_with", []), config["command"]]
        config["command"] = old.get("command", config["command"])
    RunFolder(run).write_config(config)
