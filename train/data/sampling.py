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


def fold_groups(fs: FaceSet) -> np.ndarray:
    """Group id per row that K-fold must not split: exact-duplicate images and subjects.

    Rows with the same image bytes (:func:`train.data.dedup.image_hashes`) share a group, and
    so do rows with the same ``fs.groups`` id (the CK+ subject); both relations are merged
    transitively (a duplicate image of two subjects joins their groups), so a duplicate group or
    a subject never spans two folds. Leak-free Training has no exact duplicates left, but a set
    built another way (combined datasets, no de-duplication) may.

    Returns:
        ``(N,)`` int64 group ids ``0..G-1``.
    """
    from train.data.dedup import image_hashes

    rows = _UnionFind(len(fs))
    rows.merge_equal(image_hashes(fs.images))
    if fs.groups is not None:
        rows.merge_equal(np.asarray(fs.groups))
    return rows.group_ids()


class _UnionFind:
    """Rows joined transitively whenever two of them share a key (a disjoint-set forest)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    def merge_equal(self, keys: np.ndarray) -> None:
        """Join every row with the first row of the same key."""
        first: dict[object, int] = {}
        for i, key in enumerate(keys.tolist()):
            j = first.setdefault(key, i)
            if j != i:
                a, b = self.find(i), self.find(j)
                if a != b:
                    self.parent[max(a, b)] = min(a, b)

    def group_ids(self) -> np.ndarray:
        """``(N,)`` int64 group ids ``0..G-1`` (numbered in order of each group's first row)."""
        roots = np.asarray([self.find(i) for i in range(len(self.parent))], dtype=np.int64)
        return np.unique(roots, return_inverse=True)[1].astype(np.int64)


def kfold_indices(
    labels: np.ndarray, k: int, seed: int = 0, groups: np.ndarray | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified K-fold (train_idx, val_idx) pairs (seed 003 uses 10 folds).

    Args:
        labels: ``(N,)`` class ids.
        k: Number of folds (>= 2).
        seed: Shuffling seed.
        groups: Optional ``(N,)`` group ids (:func:`fold_groups`): every group then lies in one
            fold, with class proportions kept as well as the groups allow (scikit-learn's
            ``StratifiedGroupKFold``).

    Raises:
        ValueError: for ``k < 2``, a ``groups`` of the wrong length, or fewer groups than folds.
    """
    if k < 2:
        raise ValueError("folds must be >= 2")
    if groups is not None:
        return _group_kfold(labels, k, seed, np.asarray(groups))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        fold_of[members] = np.arange(len(members)) % k
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def _group_kfold(
    labels: np.ndarray, k: int, seed: int, groups: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`kfold_indices` with every group in one fold (``StratifiedGroupKFold``)."""
    if len(groups) != len(labels):
        raise ValueError(f"groups has {len(groups)} entries for {len(labels)} labels")
    n_groups = len(np.unique(groups))
    if n_groups < k:
        raise ValueError(f"--folds {k} needs at least {k} groups, the data has {n_groups}")
    from sklearn.model_selection import StratifiedGroupKFold

    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    return [
        (np.sort(tr), np.sort(va))
        for tr, va in splitter.split(np.zeros(len(labels)), labels, groups)
    ]
