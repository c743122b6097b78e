"""Classification metrics of softmax outputs, and the JSON form every result file uses.

Metrics come from scikit-learn. Every number written to JSON is finite: a quantity that is not
defined for the data (the AUC of a class that never occurs in ``y_true``) is ``null`` and the
reason is listed under ``notes``, never NaN.

No model and no file in here: :mod:`train.predict` turns a model into probabilities and
:mod:`train.evaluate` writes them out, so this module is the one place a metric is defined.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge import atomic
from edge.errors import DataError, ModelError
from train.calibration import expected_calibration_error

__all__ = ["HEADLINE", "compute_metrics", "json_safe", "summary_line", "write_json"]

#: Headline metrics, in the order summaries and comparison tables show them.
HEADLINE = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1", "auc_macro")


def _finite_or_none(x: float | None) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _validate(y_true: np.ndarray, probs: np.ndarray, n_labels: int) -> None:
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, C), got shape {probs.shape}")
    if y_true.ndim != 1 or y_true.shape[0] != probs.shape[0]:
        raise ValueError(
            f"y_true must be 1-D with one label per probs row: y_true {y_true.shape}, "
            f"probs {probs.shape}"
        )
    if probs.shape[0] == 0:
        raise DataError("cannot compute metrics on zero samples (empty evaluation split)")
    if probs.shape[1] != n_labels:
        raise ModelError(
            f"model outputs {probs.shape[1]} classes but the data has {n_labels} labels"
        )
    if not np.all(np.isfinite(probs)):
        raise ModelError("model produced non-finite (NaN/inf) outputs")
    lo, hi = int(y_true.min()), int(y_true.max())
    if lo < 0 or hi >= n_labels:
        raise ValueError(f"y_true holds class ids {lo}..{hi}, outside 0..{n_labels - 1}")


def compute_metrics(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    label_names: Sequence[str],
) -> dict[str, Any]:
    """Classification metrics of softmax outputs against integer labels.

    Macro averages (precision, recall, F1, AUC) are over the classes that occur in ``y_true``:
    a class with no evaluation sample has no defined recall or AUC, and averaging in a 0 for it
    would punish the model for the data. Such classes are still listed in ``per_class`` (recall,
    F1 and AUC ``None``; precision 0 if the model predicted them, else ``None``) and named in
    ``notes``. Per-class precision of a present class that is never predicted is 0 (scikit-learn
    ``zero_division=0``).

    Args:
        y_true: ``(N,)`` integer class ids in ``0..C-1``.
        probs: ``(N, C)`` class scores (softmax probabilities); argmax is the prediction.
        label_names: ``C`` label names in class-id order.

    Returns:
        A JSON-serializable dict: ``n``, ``labels``, ``accuracy``, ``macro_precision``,
        ``macro_recall``, ``macro_f1``, ``weighted_f1``, ``auc_macro``, ``per_class``
        ``{label: {precision, recall, f1, support, auc}}``, ``confusion`` ``{matrix, labels}``
        (rows = true class, columns = predicted), ``macro_over`` (labels averaged over) and
        ``notes``. Values that are undefined are ``None``, never NaN.

    Raises:
        ModelError: if ``probs`` has a different number of columns than ``label_names`` or holds
            non-finite values.
        DataError: if there are no samples.
        ValueError: on malformed arrays or out-of-range labels.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64)
    names = [str(n) for n in label_names]
    _validate(y, p, len(names))
    n, c = p.shape
    all_ids = list(range(c))
    y_pred = p.argmax(axis=1)
    prf = precision_recall_fscore_support(y, y_pred, labels=all_ids, zero_division=0)
    support = prf[3]
    present = [i for i in all_ids if support[i] > 0]
    aucs = _one_vs_rest_aucs(y, p)
    return {
        "n": int(n),
        "labels": names,
        **_averages(y, y_pred, prf, present, aucs),
        # Expected calibration error of the top-1 confidence (15 bins): how far an event's
        # ``confidence`` is from the share of faces it is right about.
        "ece": expected_calibration_error(p, y),
        "per_class": _per_class(names, prf, np.bincount(y_pred, minlength=c), aucs),
        "confusion": {
            "matrix": confusion_matrix(y, y_pred, labels=all_ids).astype(int).tolist(),
            "labels": names,
        },
        "macro_over": [names[i] for i in present],
        "notes": _notes(names, support, present),
    }


def _one_vs_rest_aucs(y: np.ndarray, p: np.ndarray) -> dict[int, float | None]:
    """Each class's one-vs-rest ROC AUC, None where the class is absent or alone."""
    from sklearn.metrics import roc_auc_score

    aucs: dict[int, float | None] = {}
    for i in range(p.shape[1]):
        pos = y == i
        if pos.all() or not pos.any():
            # One-vs-rest AUC needs both positives and negatives.
            aucs[i] = None
            continue
        aucs[i] = _finite_or_none(roc_auc_score(pos.astype(np.int64), p[:, i]))
    return aucs


def _averages(
    y: np.ndarray,
    y_pred: np.ndarray,
    prf: tuple[np.ndarray, ...],
    present: list[int],
    aucs: dict[int, float | None],
) -> dict[str, float | None]:
    """The headline numbers, macro averages over the ``present`` classes only."""
    from sklearn.metrics import accuracy_score, f1_score

    prec, rec, f1 = prf[:3]
    valid_aucs = [a for a in aucs.values() if a is not None]
    return {
        "accuracy": float(accuracy_score(y, y_pred)),
        "macro_precision": float(np.mean(prec[present])),
        "macro_recall": float(np.mean(rec[present])),
        "macro_f1": float(np.mean(f1[present])),
        "weighted_f1": float(
            f1_score(y, y_pred, labels=present, average="weighted", zero_division=0)
        ),
        "auc_macro": float(np.mean(valid_aucs)) if valid_aucs else None,
    }


def _per_class(
    names: list[str],
    prf: tuple[np.ndarray, ...],
    n_pred: np.ndarray,
    aucs: dict[int, float | None],
) -> dict[str, dict[str, Any]]:
    """``{label: {precision, recall, f1, support, auc}}``, undefined ratios None."""
    prec, rec, f1, support = prf
    return {
        names[i]: {
            # Undefined ratios are null rather than scikit-learn's 0: a class with no sample has
            # no recall, a class never predicted has no precision (unless it has samples, where
            # 0 is the usual convention and the macro averages need a number).
            "precision": float(prec[i]) if n_pred[i] or support[i] else None,
            "recall": float(rec[i]) if support[i] else None,
            "f1": float(f1[i]) if support[i] else None,
            "support": int(support[i]),
            "auc": aucs[i],
        }
        for i in range(len(names))
    }


def _notes(names: list[str], support: np.ndarray, present: list[int]) -> list[str]:
    """Why some averages skip classes, or why no AUC is defined."""
    notes: list[str] = []
    absent = [names[i] for i in range(len(names)) if support[i] == 0]
    if absent:
        notes.append(
            f"classes absent from the evaluation data: {', '.join(absent)}; macro averages are "
            f"over the {len(present)} classes present and their AUC is null"
        )
    if len(present) == 1:
        notes.append("only one class occurs in the evaluation data: no AUC is defined")
    return notes


def json_safe(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays and tuples to JSON types; NaN/inf become None."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.bool_ | bool):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating | float):
        return _finite_or_none(float(obj))
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically, numpy values and NaN made JSON by
    :func:`json_safe` first (the :mod:`edge.atomic` writer refuses NaN)."""
    atomic.write_json(path, json_safe(obj))


def summary_line(metrics: Mapping[str, Any]) -> str:
    """One-line human summary of a metrics dict (and of its duplicate-free variant, if any)."""

    def fmt(m: Mapping[str, Any]) -> str:
        auc = m.get("auc_macro")
        auc_s = "n/a" if auc is None else f"{auc:.4f}"
        return (
            f"n={m['n']} acc={m['accuracy']:.4f} macro_f1={m['macro_f1']:.4f} "
            f"weighted_f1={m['weighted_f1']:.4f} macro_auc={auc_s}"
        )

    s = fmt(metrics)
    sub = metrics.get("excluding_train_duplicates")
    if isinstance(sub, Mapping):
        k = sub.get("n_excluded", "?")
        s += (
            f" | without {k} rows with a Training twin: {fmt(sub)}"
            if sub.get("n")
            else f" | all rows have a Training twin ({k})"
        )
    return s
