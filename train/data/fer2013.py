"""FER2013 (Kaggle CSV ``emotion,pixels,Usage``, plain or ``.gz``) and FERPlus label loading.

FERPlus (``fer2013new.csv``: ``Usage,Image name,neutral,happiness,surprise,sadness,anger,
disgust,fear,contempt,unknown,NF``) is aligned row by row with the FER2013 CSV; row *i* of one
describes row *i* of the other. Majority-vote labels follow the FERPlus rules: single votes are
treated as noise and removed, the winning emotion must hold more than half of the remaining
votes, and images whose winner is ``unknown`` or ``NF`` (not a face) are dropped.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.contract import FER2013_LABELS, FERPLUS_LABELS
from edge.errors import DataError
from train.data.dedup import in_validation_slice
from train.data.faceset import FaceSet, distributions

log = logging.getLogger(__name__)

USAGES = ("Training", "PublicTest", "PrivateTest")
#: The validation slice carved out of Training (see :func:`train.data.dedup.in_validation_slice`):
#: models, soups, ensembles and temperatures are selected on it, so PublicTest is only reported.
TRAIN_VAL = "TrainVal"
#: Every name ``--usage``/``--val-usage`` accepts: the CSV's own Usage values and ``TrainVal``.
SPLITS = (*USAGES, TRAIN_VAL)
PIXELS = 48 * 48
FER_COLUMNS = ("emotion", "pixels", "Usage")
FERPLUS_VOTE_COLUMNS = (
    "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
    "unknown", "NF",
)  # fmt: skip
# FERPlus vote column -> index in FERPLUS_LABELS (FER2013 order + contempt); -1 = drop.
_FERPLUS_TO_OURS = {
    "anger": 0, "disgust": 1, "fear": 2, "happiness": 3, "sadness": 4, "surprise": 5,
    "neutral": 6, "contempt": 7, "unknown": -1, "NF": -1,
}  # fmt: skip


def _open_text(path: Path) -> io.TextIOBase:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", newline="")  # type: ignore[return-value]
        return path.open("r", newline="")
    except OSError as e:
        raise DataError(f"{path}: cannot open: {e}") from None


def _cache_path(path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fer-edge"
    return base / f"fer2013-{key}.npz"


def read_fer2013_csv(
    path: str | Path, cache: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a whole FER2013 CSV into arrays, validating every row.

    A parsed copy is cached (``~/.cache/fer-edge``, keyed by path, size and mtime) because the
    full file takes several seconds to parse.

    Returns:
        ``(images (N,48,48) uint8, emotion (N,) int64, usage (N,) str)`` for every data row, in
        file order (index = original 0-based row).

    Raises:
        DataError: naming the file and the first bad row (1-based data line and 0-based row).
    """
    path = Path(path)
    cp = _cache_path(path) if cache and path.exists() else None
    cached = _load_cache(cp) if cp is not None and cp.exists() else None
    if cached is not None:
        return cached
    images: list[np.ndarray] = []
    emotion: list[int] = []
    usage: list[str] = []
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = _header(reader, path, f"empty file (expected header {','.join(FER_COLUMNS)})")
        missing = [c for c in FER_COLUMNS if c not in header]
        if missing:
            raise DataError(
                f"{path}: missing columns {missing}; found {header}, expected {list(FER_COLUMNS)}"
            )
        cols = tuple(header.index(c) for c in FER_COLUMNS)
        for i, rec in _rows(reader, path):
            where = f"{path}: row {i} (line {i + 2})"
            if len(rec) < len(header):
                raise DataError(f"{where}: expected {len(header)} fields, got {len(rec)}")
            img, emo, use = _parse_fer_row(rec, cols, where)
            images.append(img)
            emotion.append(emo)
            usage.append(use)
    if not images:
        raise DataError(f"{path}: no data rows")
    out = (np.stack(images), np.asarray(emotion, dtype=np.int64), np.asarray(usage))
    if cp is not None:
        _save_cache(cp, out)
    return out


def _parse_fer_row(
    rec: list[str], cols: tuple[int, ...], where: str
) -> tuple[np.ndarray, int, str]:
    """One data row as ``(48x48 uint8 image, emotion, usage)``.

    Raises:
        DataError: naming ``where`` and what is wrong with the row.
    """
    ie, ip, iu = cols
    try:
        emo = int(rec[ie])
    except ValueError:
        raise DataError(f"{where}: emotion {rec[ie]!r} is not an integer 0..6") from None
    if not 0 <= emo <= 6:
        raise DataError(f"{where}: emotion {emo} is outside 0..6")
    try:
        px = np.fromstring(rec[ip], dtype=np.int32, sep=" ")  # text mode: fast and exact
    except ValueError:
        # numpy >= 2 raises on text that is not whitespace-separated integers.
        raise DataError(f"{where}: pixels must be integers separated by spaces") from None
    if px.size != PIXELS:
        raise DataError(f"{where}: pixels has {px.size} values, expected {PIXELS} (48x48)")
    if px.min() < 0 or px.max() > 255:
        raise DataError(f"{where}: pixel values must be 0..255")
    if rec[iu] not in USAGES:
        raise DataError(f"{where}: Usage {rec[iu]!r} is not one of {list(USAGES)}")
    return px.astype(np.uint8).reshape(48, 48), emo, rec[iu]


def _load_cache(cp: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The cached parse, or None if the cache file cannot be read (it is then rewritten)."""
    try:
        with np.load(cp, allow_pickle=False) as z:
            return z["images"], z["emotion"], z["usage"]
    except (OSError, ValueError, KeyError):
        log.warning("ignoring unreadable cache %s", cp)
        return None


def _save_cache(cp: Path, out: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Write the parse cache; failing to is only worth a warning (the next run parses again)."""
    try:
        cp.parent.mkdir(parents=True, exist_ok=True)
        tmp = cp.with_suffix(".tmp.npz")
        np.savez(tmp, images=out[0], emotion=out[1], usage=out[2])
        os.replace(tmp, cp)
    except OSError as e:
        log.warning("could not write parse cache %s: %s", cp, e)


def _header(reader: Iterator[list[str]], path: Path, empty: str) -> list[str]:
    """The CSV's header row.

    Raises:
        DataError: ``<path>: <empty>`` for an empty file, or the header cannot be read.
    """
    try:
        return next(reader)
    except StopIteration:
        raise DataError(f"{path}: {empty}") from None
    except (csv.Error, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read CSV header: {e}") from None


def _rows(reader: Iterator[list[str]], path: Path) -> Iterator[tuple[int, list[str]]]:
    i = 0
    while True:
        try:
            rec = next(reader)
        except StopIteration:
            return
        except (csv.Error, OSError, EOFError) as e:
            raise DataError(f"{path}: row {i} (line {i + 2}): unreadable: {e}") from None
        if rec:
            yield i, rec
        i += 1


def read_ferplus_votes(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read FERPlus vote counts.

    Returns:
        ``(votes (N, 10) float32 in FERPLUS_VOTE_COLUMNS order, usage (N,) str)``.

    Raises:
        DataError: for missing columns or non-numeric votes (naming the row).
    """
    path = Path(path)
    votes: list[list[float]] = []
    usage: list[str] = []
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = _header(reader, path, "empty file")
        missing = [c for c in ("Usage", *FERPLUS_VOTE_COLUMNS) if c not in header]
        if missing:
            raise DataError(f"{path}: missing FERPlus columns {missing}; found {header}")
        idx = [header.index(c) for c in FERPLUS_VOTE_COLUMNS]
        iu = header.index("Usage")
        for i, rec in _rows(reader, path):
            try:
                votes.append([float(rec[j]) for j in idx])
            except (ValueError, IndexError):
                raise DataError(
                    f"{path}: row {i} (line {i + 2}): vote counts must be numbers"
                ) from None
            usage.append(rec[iu])
    return np.asarray(votes, dtype=np.float32), np.asarray(usage)


def ferplus_targets(votes: np.ndarray, classes: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """FERPlus majority labels and soft label distributions.

    Args:
        votes: ``(N, 10)`` vote counts in FERPlus column order.
        classes: 8 (with contempt) or 7 (FER2013 classes; contempt-majority rows dropped).

    Returns:
        ``(labels (N,) int64 with -1 for dropped rows, soft (N, classes) float32)``.
    """
    if classes not in (7, 8):
        raise ValueError("FERPlus classes must be 7 or 8")
    v = votes.copy()
    v[v <= 1.0] = 0.0  # a single vote is treated as annotator noise (FERPlus rule)
    total = v.sum(axis=1)
    ours = np.zeros((len(v), len(FERPLUS_LABELS)), dtype=np.float32)
    for j, col in enumerate(FERPLUS_VOTE_COLUMNS):
        k = _FERPLUS_TO_OURS[col]
        if k >= 0:
            ours[:, k] = v[:, j]
    win = v.argmax(axis=1)
    win_votes = v.max(axis=1)
    labels = np.array([_FERPLUS_TO_OURS[FERPLUS_VOTE_COLUMNS[w]] for w in win], dtype=np.int64)
    labels[(win_votes <= 0.5 * total) | (total <= 0)] = -1
    if classes == 7:
        labels[labels == 7] = -1
        ours = ours[:, :7]
    soft = ours / np.maximum(ours.sum(axis=1, keepdims=True), 1e-9)
    return labels, soft.astype(np.float32)


def _aligned_votes(path: str | Path, ferplus_path: str | Path, use: np.ndarray) -> np.ndarray:
    """FERPlus vote counts, checked to be aligned row by row with the FER2013 CSV's ``Usage``."""
    votes, fp_use = read_ferplus_votes(ferplus_path)
    if len(votes) != len(use):
        raise DataError(
            f"{ferplus_path}: {len(votes)} rows but {path} has {len(use)}; the files must be "
            "aligned row by row"
        )
    mismatch = np.flatnonzero(fp_use != use)
    if mismatch.size:
        raise DataError(
            f"{ferplus_path}: Usage differs from {path} at row {int(mismatch[0])}; files misaligned"
        )
    return votes


def load_fer2013(
    path: str | Path,
    usage: str | Sequence[str] = "Training",
    labels: str = "fer2013",
    ferplus_path: str | Path | None = None,
    ferplus_classes: int = 8,
) -> FaceSet:
    """Load one or more ``Usage`` splits of a FER2013 CSV.

    Args:
        path: FER2013 CSV (plain or ``.gz``).
        usage: ``Training``, ``PublicTest``, ``PrivateTest``, ``TrainVal`` (the fixed validation
            slice of Training, :data:`TRAIN_VAL`) or a sequence of them. ``Training`` is all of
            Training; training runs validated on ``TrainVal`` drop its images from their
            training set (:func:`train.data.dedup.leak_free_train`).
        labels: ``fer2013`` (the CSV's ``emotion``) or ``ferplus`` (majority vote of the aligned
            FERPlus file; rows without a valid majority are dropped).
        ferplus_path: FERPlus CSV, required for ``labels="ferplus"``. With ``labels="fer2013"``
            it is optional and adds the 7-class FERPlus vote shares as ``soft``.
        ferplus_classes: 8 (with contempt) or 7.

    Raises:
        DataError: for unreadable files, bad rows, misaligned FERPlus files or an empty split.
    """
    usages = (usage,) if isinstance(usage, str) else tuple(usage)
    bad = [u for u in usages if u not in SPLITS]
    if bad:
        raise DataError(f"unknown Usage {bad}; valid: {list(SPLITS)}")
    if labels not in ("fer2013", "ferplus"):
        raise DataError(f"unknown label mode {labels!r}; valid: fer2013, ferplus")
    images, emotion, use = read_fer2013_csv(path)
    mask = _usage_mask(path, images, use, usages)
    rows = np.arange(len(images), dtype=np.int64)
    split = _Selection(Path(path), usages, images, rows, mask)
    if labels == "fer2013":
        soft = None
        if ferplus_path is not None:
            # FERPlus vote shares over the 7 FER2013 classes ride along as ``soft`` (for
            # --ferplus-mix); rows whose annotators voted only contempt/unknown/not-a-face keep
            # their FER2013 one-hot, so every row is a distribution.
            _, votes = ferplus_targets(_aligned_votes(path, ferplus_path, use), 7)
            soft = distributions(votes, emotion)[mask]
        return _fer2013_faces(split, emotion, soft)
    if ferplus_path is None:
        raise DataError("labels=ferplus needs the FERPlus CSV (--ferplus)")
    return _ferplus_faces(split, _aligned_votes(path, ferplus_path, use), ferplus_classes)


def _usage_mask(
    path: str | Path, images: np.ndarray, use: np.ndarray, usages: tuple[str, ...]
) -> np.ndarray:
    """The rows of ``usages``; ``TrainVal`` is the validation slice of Training.

    Raises:
        DataError: if no row has one of ``usages`` (naming the ones the file has).
    """
    mask = np.isin(use, usages)
    if TRAIN_VAL in usages and "Training" not in usages:
        mask |= (use == "Training") & in_validation_slice(images)
    if not mask.any():
        found = sorted(set(use.tolist()))
        raise DataError(f"{path}: no rows with Usage {list(usages)}; the file has {found}")
    return mask


@dataclass(frozen=True)
class _Selection:
    """The rows of a FER2013 CSV that :func:`load_fer2013` selected (``mask``) before labels."""

    path: Path
    usages: tuple[str, ...]
    images: np.ndarray
    rows: np.ndarray
    mask: np.ndarray


def _fer2013_faces(split: _Selection, emotion: np.ndarray, soft: np.ndarray | None) -> FaceSet:
    """The selected rows with their FER2013 labels (and FERPlus vote shares as ``soft``)."""
    m = split.mask
    return FaceSet(
        images=split.images[m],
        labels=emotion[m],
        rows=split.rows[m],
        label_names=FER2013_LABELS,
        source=f"{split.path.name} Usage={'+'.join(split.usages)} labels=fer2013",
        soft=soft,
    )


def _ferplus_faces(split: _Selection, votes: np.ndarray, classes: int) -> FaceSet:
    """The selected rows with a FERPlus majority label (rows without one are dropped)."""
    lab, soft = ferplus_targets(votes, classes)
    keep = split.mask & (lab >= 0)
    names = FERPLUS_LABELS if classes == 8 else FER2013_LABELS
    dropped = int((split.mask & (lab < 0)).sum())
    return FaceSet(
        images=split.images[keep],
        labels=lab[keep],
        rows=split.rows[keep],
        label_names=names,
        source=(
            f"{split.path.name} Usage={'+'.join(split.usages)} labels=ferplus-majority "
            f"({classes} classes; {dropped} rows without majority dropped)"
        ),
        soft=soft[keep],
    )


def load_labelled(
    path: str | Path,
    usage: str | Sequence[str],
    labels: str,
    ferplus_path: str | Path | None,
    ferplus_classes: int,
) -> FaceSet:
    """:func:`load_fer2013` as the ``--labels``/``--ferplus``/``--ferplus-classes`` flags ask.

    ``--ferplus-classes`` only counts with ``labels="ferplus"`` (with FER2013 labels the
    FERPlus votes ride along as 7-class ``soft`` targets whatever the flag says).
    """
    kw = {"ferplus_classes": ferplus_classes} if labels == "ferplus" else {}
    return load_fer2013(path, usage, labels=labels, ferplus_path=ferplus_path, **kw)
