"""The in-memory dataset type every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.errors import DataError


@dataclass(frozen=True)
class FaceSet:
    """Grayscale face images with integer labels.

    Attributes:
        images: ``(N, S, S)`` uint8 faces in the preprocessing contract's size.
        labels: ``(N,)`` int64 class ids indexing ``label_names``.
        rows: ``(N,)`` int64 original 0-based row index in the source CSV (``-1`` for folders).
        label_names: Class names in output order.
        source: Human-readable description (file, split, label mode) for run metadata.
        soft: Optional ``(N, C)`` float32 label distributions (FERPlus vote shares).
        groups: Optional ``(N,)`` group ids (e.g. CK+ subject) for group-aware splits.
    """

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    label_names: tuple[str, ...]
    source: str = ""
    soft: np.ndarray | None = None
    groups: np.ndarray | None = field(default=None)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 3 or self.images.dtype != np.uint8:
            raise ValueError(
                f"images must be (N, S, S) uint8, got {self.images.shape} {self.images.dtype}"
            )
        for name in ("labels", "rows", "soft", "groups"):
            a = getattr(self, name)
            if a is not None and len(a) != n:
                raise ValueError(f"{name} has {len(a)} entries for {n} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_classes(self) -> int:
        """Number of classes (length of ``label_names``)."""
        return len(self.label_names)

    def subset(self, idx: Any, source: str | None = None) -> FaceSet:
        """Rows selected by an index array or boolean mask (copies)."""
        idx = np.asarray(idx)
        return FaceSet(
            images=self.images[idx],
            labels=self.labels[idx],
            rows=self.rows[idx],
            label_names=self.label_names,
            source=self.source if source is None else source,
            soft=None if self.soft is None else self.soft[idx],
            groups=None if self.groups is None else self.groups[idx],
        )

    def class_counts(self) -> dict[str, int]:
        """Rows per class name."""
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.label_names, counts, strict=True)}

    def require_nonempty(self, what: str) -> FaceSet:
        """Raise :class:`DataError` if the set is empty; return self for chaining."""
        if len(self) == 0:
            raise DataError(f"{what}: no images ({self.source or 'empty split'})")
        return self


def concat(sets: list[FaceSet], source: str | None = None) -> FaceSet:
    """Concatenate face sets with identical label names (e.g. FER2013 + CK+ for seed 004).

    Raises:
        DataError: if label names or image sizes differ.
    """
    if not sets:
        raise DataError("nothing to concatenate")
    names = sets[0].label_names
    for s in sets[1:]:
        if s.label_names != names:
            raise DataError(f"cannot combine datasets with labels {names} and {s.label_names}")
        if s.images.shape[1:] != sets[0].images.shape[1:]:
            raise DataError("cannot combine datasets with different image sizes")
    soft = None
    if all(s.soft is not None for s in sets):
        soft = np.concatenate([s.soft for s in sets])  # type: ignore[misc]
    groups = None
    if all(s.groups is not None for s in sets):
        groups = np.concatenate([s.groups for s in sets])  # type: ignore[misc]
    return FaceSet(
        images=np.concatenate([s.images for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        rows=np.concatenate([s.rows for s in sets]),
        label_names=names,
        source=source or " + ".join(s.source for s in sets),
        soft=soft,
        groups=groups,
    )


def distributions(soft: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows of ``soft`` scaled to sum to 1; a row with no mass becomes its label's one-hot.

    Vote shares can be empty for a row (its annotators voted only for classes outside the set),
    and a zero row is not a training target.
    """
    total = soft.sum(axis=1, keepdims=True)
    onehot = np.eye(soft.shape[1], dtype=np.float32)[labels]
    return np.where(total > 0, soft / np.maximum(total, 1e-9), onehot).astype(np.float32)


def select_classes(fs: FaceSet, classes: tuple[str, ...]) -> FaceSet:
    """Keep only ``classes`` (in that new order), remapping label ids (seed 004's 4 classes).

    Raises:
        DataError: naming unknown classes and the valid ones.
    """
    unknown = [c for c in classes if c not in fs.label_names]
    if unknown:
        raise DataError(f"unknown classes {unknown}; valid: {list(fs.label_names)}")
    old_ids = [fs.label_names.index(c) for c in classes]
    remap = np.full(fs.num_classes, -1, dtype=np.int64)
    remap[old_ids] = np.arange(len(classes))
    keep = remap[fs.labels] >= 0
    sub = fs.subset(keep)
    labels = remap[sub.labels]
    soft = None if sub.soft is None else distributions(sub.soft[:, old_ids], labels)
    return FaceSet(
        images=sub.images,
        labels=labels,
        rows=sub.rows,
        label_names=tuple(classes),
        source=f"{fs.source} [classes: {','.join(classes)}]",
        soft=soft,
        groups=sub.groups,
    )
