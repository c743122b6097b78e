"""Seed 003's K-fold cross-validation inside the (leak-free) Training split (``--folds K``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from train import fit
from train.data import FaceSet
from train.data.sampling import fold_groups, kfold_indices, oversample
from train.options import TrainOptions
from train.runfolder import RunFolder

#: The metrics averaged over the folds (``<key>_mean``, ``<key>_std`` in ``metrics.json``).
FOLD_METRICS = ("accuracy", "macro_f1", "auc_macro")


def run_kfold(run: Path, train: FaceSet, opts: TrainOptions) -> dict[str, Any]:
    """Train one model per fold into ``run/fold<i>`` (a finished fold is kept), then write the
    mean and spread of the fold metrics as ``run/metrics.json``; return them."""
    assert opts.folds is not None
    # Each exact-duplicate group and each subject (CK+) stays inside one fold.
    folds = kfold_indices(train.labels, opts.folds, opts.seed, groups=fold_groups(train))
    per_fold = [_fold(run, i, train, tr, va, opts) for i, (tr, va) in enumerate(folds)]
    summary: dict[str, Any] = {
        "folds": opts.folds,
        "per_fold": [{k: m.get(k) for k in FOLD_METRICS} for m in per_fold],
    }
    for k in FOLD_METRICS:
        vals = [m[k] for m in per_fold if isinstance(m.get(k), (int, float))]
        summary[f"{k}_mean"] = float(np.mean(vals)) if vals else None
        summary[f"{k}_std"] = float(np.std(vals)) if vals else None
    RunFolder(run).write_metrics(summary)
    return summary


def _fold(
    run: Path, i: int, train: FaceSet, tr_idx: np.ndarray, va_idx: np.ndarray, opts: TrainOptions
) -> dict[str, Any]:
    """Fold ``i``'s metrics: trained now, or read back from a finished ``fold<i>`` folder."""
    sub = run / f"fold{i}"
    sub.mkdir(exist_ok=True)
    done = RunFolder(sub).read_metrics()
    if done is not None:
        return done
    fold_opts = TrainOptions(**{**opts.__dict__, "out": str(sub), "folds": None})
    tr = train.subset(tr_idx)
    if opts.oversample:  # each fold's training part only: copies never straddle folds
        tr = oversample(tr, opts.seed)
    va = train.subset(va_idx, source=f"fold {i} of {train.source}")
    return fit.finish_run(sub, va, fit.fit_model(sub, tr, va, fold_opts))
