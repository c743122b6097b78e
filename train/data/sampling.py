"""Random oversampling and stratified subsets (training split only, after the split)."""

from __future__ import annotations

import numpy as np

from train.data.faceset import FaceSet


def oversample(fs: FaceSet, seed: int = 0) -> FaceSet:
    """Random oversampling: duplicate minority-class rows until every class has the majority count.

    Apply to the *training* split only, after splitting; seed 002 applied it before its split,
    which put copies of training images into its test set.
    """
    rng = np.random.default_rng(seed)
    counts = np.bincount(fs.labels, minlength=fs.num_classes)
    target = counts.max()
    idx = [np.arange(len(fs))]
    for c, n in enumerate(counts):
        if 0 < n < target:
            members = np.flatnonzero(fs.labels == c)
            idx.append(rng.choice(members, size=target - n, replace=True))
    order = np.concatenate(idx)
    rng.shuffle(order)
    return fs.subset(order, source=f"{fs.source} +oversampled")


def stratified_limit(fs: FaceSet, limit: int | None, seed: int = 0) -> FaceSet:
    """At most ``limit`` rows, keeping class proportions (for smoke runs)."""
    if limit is None or limit >= len(fs):
        return fs
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    for c in range(fs.num_classes):
        members = np.flatnonzero(fs.labels == c)
        k = int(round(limit * len(members) / len(fs)))
        if len(members) and k == 0:
            k = 1
        picked.append(rng.choice(members, size=min(k, len(members)), replace=False))
    idx = np.sort(np.concatenate(picked))[:limit] if picked else np.arange(0)
    return fs.subset(idx, source=f"{fs.source} limit={limit}")


def stratified_sample(fs: FaceSet, n: int, seed: int = 0) -> FaceSet:
    """Alias of :func:`stratified_limit` for representative datasets."""
    return stratified_limit(fs, n, seed)


def kfold_indices(labels: np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold (train_idx, val_idx) pairs (seed 003 uses 10 folds)."""
    if k < 2:
        raise ValueError("folds must be >= 2")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        fold_of[members] = np.arange(len(members)) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]
