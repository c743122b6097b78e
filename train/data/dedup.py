"""Exact-duplicate handling: the leak-free protocol's first step.

FER2013 has 1,236 extra copies inside Training and 280 PublicTest rows whose identical image is
also in Training (``../shared/data/README.md``). Training on those copies inflates validation
scores, so before anything else we (1) keep one copy per duplicate group inside Training
(dropping groups whose copies disagree on the label), and (2) drop every Training image that also
appears in an evaluation split. Random oversampling happens only after this, on Training only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from train.data.faceset import FaceSet


def image_hashes(images: np.ndarray) -> np.ndarray:
    """Exact-content hash (sha1 of the raw bytes, 16 hex chars) of every image."""
    return np.asarray(
        [hashlib.sha1(np.ascontiguousarray(im).tobytes()).hexdigest()[:16] for im in images]
    )


#: One image in ``VALIDATION_BUCKETS`` lands in the validation slice of Training (10 %).
VALIDATION_BUCKETS = 10


def in_validation_slice(images: np.ndarray) -> np.ndarray:
    """Which images belong to the fixed validation slice of Training (``--val-usage TrainVal``).

    Membership is a function of the image's content hash alone, so it is the same for every run,
    seed, label source (FER2013 or FERPlus) and class subset: checkpoints, soups, ensembles and
    calibration temperatures of different runs are all selected on one slice, which none of
    them trained on. Exact duplicates share a hash and so always fall on the same side (the
    split is duplicate-group aware by construction).

    Returns:
        ``(N,)`` bool mask.
    """
    buckets = np.asarray([int(h[:8], 16) % VALIDATION_BUCKETS for h in image_hashes(images)])
    return buckets == 0


@dataclass
class DedupReport:
    """Counts of what the leak-free preparation removed (goes into ``config.json``)."""

    train_in: int = 0
    within_train_removed: int = 0
    conflicting_groups: int = 0
    conflicting_rows_removed: int = 0
    overlap_removed: int = 0
    train_out: int = 0
    eval_rows_with_train_twin: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def dedup_within(fs: FaceSet, report: DedupReport | None = None) -> FaceSet:
    """Keep the first copy of each exact-duplicate group; drop groups with conflicting labels."""
    h = image_hashes(fs.images)
    keep = np.zeros(len(fs), dtype=bool)
    first: dict[str, int] = {}
    labels_of: dict[str, set[int]] = {}
    for i, (k, lab) in enumerate(zip(h, fs.labels, strict=True)):
        labels_of.setdefault(k, set()).add(int(lab))
        if k not in first:
            first[k] = i
            keep[i] = True
    conflicted = {k for k, labs in labels_of.items() if len(labs) > 1}
    conflict_mask = np.isin(h, list(conflicted)) if conflicted else np.zeros(len(fs), dtype=bool)
    if report is not None:
        report.within_train_removed += int((~keep).sum())
        report.conflicting_groups += len(conflicted)
        report.conflicting_rows_removed += int((keep & conflict_mask).sum())
    return fs.subset(keep & ~conflict_mask)


def remove_overlap(
    train: FaceSet, evals: dict[str, FaceSet], report: DedupReport | None = None
) -> FaceSet:
    """Drop every training image that also appears (exactly) in any evaluation split."""
    th = image_hashes(train.images)
    drop = np.zeros(len(train), dtype=bool)
    for name, ev in evals.items():
        eh = image_hashes(ev.images)
        drop |= np.isin(th, eh)
        if report is not None:
            report.eval_rows_with_train_twin[name] = int(np.isin(eh, th).sum())
    if report is not None:
        report.overlap_removed += int(drop.sum())
    return train.subset(~drop)


def leak_free_train(train: FaceSet, evals: dict[str, FaceSet]) -> tuple[FaceSet, DedupReport]:
    """Apply :func:`dedup_within` then :func:`remove_overlap`; return the clean set and counts."""
    rep = DedupReport(train_in=len(train))
    # Count eval twins against the *original* training set (what --exclude-duplicates reports).
    th = set(image_hashes(train.images).tolist())
    for name, ev in evals.items():
        rep.eval_rows_with_train_twin[name] = int(np.isin(image_hashes(ev.images), list(th)).sum())
    clean = dedup_within(train, rep)
    twins = dict(rep.eval_rows_with_train_twin)
    clean = remove_overlap(clean, evals, rep)
    rep.eval_rows_with_train_twin = twins
    rep.train_out = len(clean)
    return clean, rep


def rows_with_twin(evaluation: FaceSet, reference: FaceSet) -> np.ndarray:
    """Original row ids of ``evaluation`` images that have an exact copy in ``reference``."""
    eh = image_hashes(evaluation.images)
    rh = image_hashes(reference.images)
    return evaluation.rows[np.isin(eh, rh)]
