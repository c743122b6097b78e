"""Evaluation of one model on one face set: ``metrics.json``, confusion and ROC plots.

The pieces live in their own modules and are re-exported here, because callers (the CLI,
compare, soup, convert's parity gate) know this module as "the evaluator":
:mod:`train.metrics` (what a number means), :mod:`train.predict` (how a ``.keras`` or
``.tflite`` file becomes probabilities) and :mod:`train.plots` (the PNGs).

Every file is written to a temporary name first and then renamed, so a crash never leaves a
truncated ``metrics.json`` or PNG that looks complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import write_text_atomic
from edge.errors import DataError
from train.calibration import plot_reliability
from train.metrics import HEADLINE, compute_metrics, json_safe, summary_line, write_json
from train.plots import plot_comparison, plot_confusion, plot_history, plot_roc
from train.predict import (
    LoadedModel,
    check_model_labels,
    load_keras_model,
    model_info,
    open_deployed,
    open_model,
    predict_probs,
)

__all__ = [
    "HEADLINE",
    "LoadedModel",
    "check_model_labels",
    "compute_metrics",
    "evaluate_model",
    "json_safe",
    "load_keras_model",
    "model_info",
    "open_deployed",
    "open_model",
    "plot_comparison",
    "plot_confusion",
    "plot_history",
    "plot_roc",
    "predict_probs",
    "summary_line",
    "train_twin_rows",
    "write_json",
    "write_text_atomic",
]

log = logging.getLogger(__name__)


def train_twin_rows(data_path: str | os.PathLike[str], faces: Any) -> np.ndarray:
    """Original CSV rows of ``faces`` whose exact pixel copy is in the same CSV's Training split.

    These are the rows ``--exclude-duplicates`` leaves out (280 of FER2013's PublicTest). The
    comparison is by exact image content, so it does not depend on labels (FER2013 or FERPlus).

    Raises:
        DataError: if ``faces`` itself contains Training rows (every one would be its own twin)
            or the CSV has no Training split.
    """
    from train.data import load_fer2013
    from train.data.dedup import rows_with_twin

    training = load_fer2013(Path(data_path), "Training").require_nonempty("Training split")
    overlap = np.intersect1d(np.asarray(faces.rows), training.rows)
    if overlap.size:
        raise DataError(
            f"--exclude-duplicates compares an evaluation split against Training, but "
            f"{overlap.size} evaluated rows are Training rows (first: row {int(overlap[0])})"
        )
    return np.sort(rows_with_twin(faces, training))


# --------------------------------------------------------------------------------------------
# Whole evaluation
# --------------------------------------------------------------------------------------------


#: Files :func:`evaluate_model` owns in its output folder (stale ones are removed on rewrite).
EVAL_FILES = (
    "confusion.png",
    "roc.png",
    "reliability.png",
    "confusion_excluding_train_duplicates.png",
)


def _publish_dir(tmp: Path, out: Path) -> None:
    """Move the finished files of ``tmp`` into ``out``; ``metrics.json`` last (= complete)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    if not out.is_dir():
        raise DataError(f"output path {out} exists and is not a directory")
    for name in EVAL_FILES:
        # A plot from an earlier evaluation (e.g. with --exclude-duplicates) must not sit next
        # to metrics that no longer describe it.
        if not (tmp / name).exists():
            (out / name).unlink(missing_ok=True)
    files = sorted(tmp.iterdir(), key=lambda f: f.name == "metrics.json")
    for f in files:
        os.replace(f, out / f.name)
    shutil.rmtree(tmp, ignore_errors=True)


def evaluate_model(
    model_path: str | os.PathLike[str] | LoadedModel,
    faces: Any,
    out_dir: str | os.PathLike[str],
    exclude_rows: Iterable[int] | None = None,
    *,
    batch_size: int = 256,
    extra: Mapping[str, Any] | None = None,
    exclude_key: str = "excluding_train_duplicates",
) -> dict[str, Any]:
    """Evaluate a ``.keras`` or ``.tflite`` model on a :class:`~train.data.fer2013.FaceSet`.

    Writes ``out_dir/metrics.json``, ``confusion.png`` and ``roc.png``. Everything is built in
    a temporary sibling folder and moved into place at the end, so a failure leaves ``out_dir``
    as it was.

    Args:
        model_path: ``.keras``/``.h5`` or ``.tflite`` file (or an already opened model).
        faces: A FaceSet (``.images`` uint8 ``(N,S,S)``, ``.labels``, ``.rows``,
            ``.label_names``).
        out_dir: Output folder (created).
        exclude_rows: Original CSV rows to leave out for a second set of metrics (rows with an
            exact twin in Training), stored under ``metrics[exclude_key]`` with ``n_excluded``.
        batch_size: Faces per inference call.
        extra: Provenance merged into ``metrics.json`` (data path, usage, ...).
        exclude_key: Key of the second set of metrics.

    Returns:
        The metrics dict that was written.

    Raises:
        ModelError: unreadable model, or output size different from the number of labels.
        DataError: empty evaluation set.
    """
    label_names = tuple(faces.label_names)
    if len(faces) == 0:
        raise DataError("the evaluation split is empty")
    loaded = model_path if isinstance(model_path, LoadedModel) else open_model(model_path)
    info = loaded.info
    check_model_labels(info, label_names)
    y = np.asarray(faces.labels, dtype=np.int64)
    t0 = time.perf_counter()
    probs = predict_probs(loaded, faces.images, batch_size=batch_size)
    seconds = time.perf_counter() - t0
    metrics = compute_metrics(y, probs, label_names) | _model_keys(info, seconds, len(y))
    if extra:
        metrics.update(dict(extra))
    excluded = None
    if exclude_rows is not None:
        keep = ~np.isin(np.asarray(faces.rows, dtype=np.int64), _row_array(exclude_rows))
        excluded = metrics[exclude_key] = _subset_metrics(y, probs, label_names, keep)
    out = Path(out_dir)
    _write_evaluation(out, metrics, y, probs, info, excluded)
    log.info("evaluated %s on %d faces -> %s", info["path"], len(y), out / "metrics.json")
    return json_safe(metrics)


def _model_keys(info: Mapping[str, Any], seconds: float, n: int) -> dict[str, Any]:
    """``model`` (what was evaluated), ``ms_per_face`` for TFLite, ``deployed`` if any."""
    keys: dict[str, Any] = {
        "model": {k: info[k] for k in ("path", "format", "arch", "params", "input_size")}
    }
    if info["format"] == "tflite":
        # The device's code path classifies face by face, so wall time per face is what a
        # frame pays per face (on this machine, with this machine's load).
        keys["ms_per_face"] = 1000.0 * seconds / n
    if "deployed" in info:
        keys["deployed"] = info["deployed"]
    return keys


def _row_array(rows: Iterable[int]) -> np.ndarray:
    return np.fromiter((int(r) for r in rows), dtype=np.int64)


def _subset_metrics(
    y: np.ndarray, probs: np.ndarray, label_names: tuple[str, ...], keep: np.ndarray
) -> dict[str, Any]:
    """Metrics of the ``keep`` rows, with ``n_excluded`` and ``n_total``."""
    if keep.any():
        sub = compute_metrics(y[keep], probs[keep], label_names)
    else:
        sub = {"n": 0, "notes": ["every evaluation row has a Training twin"]}
    sub["n_excluded"] = int((~keep).sum())
    sub["n_total"] = int(len(y))
    return sub


def _write_evaluation(
    out: Path,
    metrics: dict[str, Any],
    y: np.ndarray,
    probs: np.ndarray,
    info: Mapping[str, Any],
    excluded: dict[str, Any] | None,
) -> None:
    """Write ``metrics.json`` and the plots into ``out`` all at once, or leave it as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    # Sibling folder (same filesystem: the final rename is atomic), created with mkdir so it
    # gets the usual umask-based mode rather than mkdtemp's 0700.
    tmp = out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        plot_confusion(metrics, tmp / "confusion.png")
        plot_roc(y, probs, metrics["labels"], tmp / "roc.png")
        dep = info.get("deployed")
        setting = f" (tta={dep['tta']}, {len(dep['ensemble'])} model(s))" if dep else ""
        plot_reliability(
            [(str(info["arch"]), probs, y)],
            tmp / "reliability.png",
            title=f"reliability: {info['arch']}{setting}",
        )
        if excluded is not None and excluded["n"]:
            plot_confusion(excluded, tmp / "confusion_excluding_train_duplicates.png")
        write_json(tmp / "metrics.json", metrics)
        _publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
