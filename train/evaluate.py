"""Evaluation: metrics, predictions from ``.keras`` or ``.tflite`` models, plots, ``metrics.json``.

One protocol for every model, before and after conversion: faces are uint8 ``(N, S, S)`` crops
fed through :func:`edge.contract.to_model_input` (raw 0..255, normalization is inside the
model) for Keras, or through edge's own :class:`~edge.classify.interpreter.TFLiteClassifier`
for ``.tflite`` files, so the numbers of a float model and its int8 conversion are comparable.

Metrics come from scikit-learn. Every number written to JSON is finite: a quantity that is not
defined for the data (the AUC of a class that never occurs in ``y_true``) is ``null`` and the
reason is listed under ``notes``, never NaN.

Plots live in :mod:`train.plots` (re-exported here). Every file is written to a temporary name
first and then renamed, so a crash never leaves a truncated ``metrics.json`` or PNG that looks
complete.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import PreprocessContract, resize_to_contract, to_model_input
from edge.errors import DataError, ModelError
from train.calibration import expected_calibration_error, plot_reliability
from train.plots import plot_comparison, plot_confusion, plot_history, plot_roc

__all__ = [
    "HEADLINE",
    "LoadedModel",
    "check_model_labels",
    "compute_metrics",
    "evaluate_model",
    "json_safe",
    "model_info",
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

#: Model file suffixes :func:`predict_probs` understands.
KERAS_SUFFIXES = (".keras", ".h5")
TFLITE_SUFFIXES = (".tflite",)

#: Headline metrics, in the order summaries and comparison tables show them.
HEADLINE = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1", "auc_macro")


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


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
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64)
    names = [str(n) for n in label_names]
    _validate(y, p, len(names))
    n, c = p.shape
    all_ids = list(range(c))
    y_pred = p.argmax(axis=1)

    prec, rec, f1, support = precision_recall_fscore_support(
        y, y_pred, labels=all_ids, zero_division=0
    )
    present = [i for i in all_ids if support[i] > 0]
    notes: list[str] = []
    absent = [names[i] for i in all_ids if support[i] == 0]
    if absent:
        notes.append(
            f"classes absent from the evaluation data: {', '.join(absent)}; macro averages are "
            f"over the {len(present)} classes present and their AUC is null"
        )

    aucs: dict[int, float | None] = {}
    for i in all_ids:
        pos = y == i
        if pos.all() or not pos.any():
            # One-vs-rest AUC needs both positives and negatives.
            aucs[i] = None
            continue
        aucs[i] = _finite_or_none(roc_auc_score(pos.astype(np.int64), p[:, i]))
    if len(present) == 1:
        notes.append("only one class occurs in the evaluation data: no AUC is defined")
    valid_aucs = [a for a in aucs.values() if a is not None]
    n_pred = np.bincount(y_pred, minlength=c)

    per_class = {
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
        for i in all_ids
    }
    cm = confusion_matrix(y, y_pred, labels=all_ids)
    return {
        "n": int(n),
        "labels": names,
        "accuracy": float(accuracy_score(y, y_pred)),
        "macro_precision": float(np.mean(prec[present])),
        "macro_recall": float(np.mean(rec[present])),
        "macro_f1": float(np.mean(f1[present])),
        "weighted_f1": float(
            f1_score(y, y_pred, labels=present, average="weighted", zero_division=0)
        ),
        "auc_macro": float(np.mean(valid_aucs)) if valid_aucs else None,
        # Expected calibration error of the top-1 confidence (15 bins): how far an event's
        # ``confidence`` is from the share of faces it is right about.
        "ece": expected_calibration_error(p, y),
        "per_class": per_class,
        "confusion": {"matrix": cm.astype(int).tolist(), "labels": names},
        "macro_over": [names[i] for i in present],
        "notes": notes,
    }


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


# --------------------------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------------------------


def load_keras_model(path: str | os.PathLike[str]) -> Any:
    """Load a saved Keras 3 model for inference (uncompiled).

    Raises:
        ModelError: if the file is missing or is not a loadable Keras model.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file {p} does not exist")
    if p.suffix.lower() == ".keras" and not zipfile.is_zipfile(p):
        # Keras would say "file not found" for a corrupt archive; name the real problem.
        raise ModelError(f"model file {p} is not a Keras .keras archive (not a zip file)")
    import keras

    try:
        return keras.models.load_model(p, compile=False)
    except (OSError, ValueError, TypeError, KeyError, zipfile.BadZipFile) as e:
        # Keras reports a corrupt/foreign file with many exception types; all mean "unreadable".
        raise ModelError(f"cannot load Keras model {p}: {e}") from e


def _open_tflite(path: Path) -> Any:
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    from edge.classify.interpreter import TFLiteClassifier

    return TFLiteClassifier(path)


def _is_tflite_classifier(obj: Any) -> bool:
    # edge's TFLiteClassifier: ``predict`` on uint8 faces plus embedded ``metadata``; a Keras
    # model has ``predict_on_batch`` instead.
    return (
        hasattr(obj, "metadata")
        and hasattr(obj, "predict")
        and not hasattr(obj, "predict_on_batch")
    )


def _keras_io(model: Any) -> tuple[int | None, int]:
    """(input side or None, number of output classes) of a Keras model."""
    in_shape = tuple(model.input_shape)
    out_shape = tuple(model.output_shape)
    side = in_shape[1] if len(in_shape) == 4 and in_shape[1] == in_shape[2] else None
    return side, int(out_shape[-1])


def _info_of(handle: Any, path: str | None) -> dict[str, Any]:
    if _is_tflite_classifier(handle):
        md = handle.metadata
        return {
            "path": path,
            "format": "tflite",
            "arch": getattr(md, "arch", None),
            "params": None,
            "num_classes": len(handle.labels),
            "labels": list(handle.labels),
            "input_size": int(md.contract.size),
        }
    side, n_out = _keras_io(handle)
    return {
        "path": path,
        "format": "keras",
        "arch": str(handle.name),
        "params": int(handle.count_params()),
        "num_classes": n_out,
        "labels": None,
        "input_size": side,
    }


@dataclass(frozen=True)
class LoadedModel:
    """A model opened once for inference: the Keras model or edge ``TFLiteClassifier``, and
    what it is (``info``: path, format, arch, params, num_classes, labels, input_size)."""

    handle: Any
    info: dict[str, Any]


def open_model(model_path: str | os.PathLike[str]) -> LoadedModel:
    """Open a ``.keras``/``.h5`` (Keras 3, uncompiled) or ``.tflite`` (edge) model file.

    Raises:
        ModelError: if the file is missing, has an unknown suffix or cannot be loaded.
    """
    path = Path(model_path)
    suffix = path.suffix.lower()
    if suffix in TFLITE_SUFFIXES:
        handle = _open_tflite(path)
    elif suffix in KERAS_SUFFIXES:
        handle = load_keras_model(path)
    else:
        raise ModelError(
            f"model file {path} has unknown suffix {suffix!r}; valid: "
            f"{', '.join(KERAS_SUFFIXES + TFLITE_SUFFIXES)}"
        )
    return LoadedModel(handle, _info_of(handle, str(path)))


def open_deployed(config: str | Path | None = None) -> LoadedModel:
    """The face classifier ``fer-edge run`` builds from ``config``'s ``[model]`` section (the
    package defaults when ``None``), through the same function
    (:func:`edge.classify.deployed.open_configured`).

    Raises:
        ConfigError: an invalid config (naming the key).
        ModelError: a model that cannot be loaded or members that do not agree.
    """
    from edge.classify.deployed import open_configured
    from edge.config import load_config

    cfg = load_config(config)
    clf = open_configured(cfg.model)
    info = _info_of(clf, str(clf.path))
    info["deployed"] = clf.describe() | {"config": str(config) if config else None}
    return LoadedModel(clf, info)


def _fit_size(images: np.ndarray, side: int | None) -> np.ndarray:
    """Resize faces to the model's input side through the contract if they differ."""
    if side is None or images.shape[1] == side:
        return images
    log.info("resizing %d faces from %d to %d px (contract)", len(images), images.shape[1], side)
    contract = PreprocessContract(size=int(side))
    return np.stack([resize_to_contract(im, contract) for im in images])


def _as_probs(out: np.ndarray) -> np.ndarray:
    # Registry models end in softmax; a logits model is turned into probabilities so AUC and
    # argmax behave the same for every model. Dequantized int8 softmax outputs are multiples of
    # 1/256, so their row sums can miss 1 by a few steps: that is still probabilities.
    looks_like_probs = (
        out.min() >= -0.01 and out.max() <= 1.01 and np.allclose(out.sum(axis=1), 1.0, atol=0.05)
    )
    if not looks_like_probs:
        log.warning("model outputs do not look like probabilities; applying softmax")
        z = out - out.max(axis=1, keepdims=True)
        e = np.exp(z)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def _batches(n: int, batch_size: int, desc: str) -> Iterator[tuple[int, int]]:
    from tqdm.auto import tqdm

    # disable=None: bars only on a terminal, so logs and CI output stay clean.
    with tqdm(total=n, desc=desc, unit="face", disable=None, leave=False) as bar:
        for s in range(0, n, batch_size):
            e = min(n, s + batch_size)
            yield s, e
            bar.update(e - s)


def predict_probs(model_or_path: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities of uint8 faces under a Keras model or a ``.tflite`` file.

    Args:
        model_or_path: A path to ``.keras``/``.h5`` or ``.tflite``, a loaded Keras model, an
            edge ``TFLiteClassifier`` or a :class:`LoadedModel`. TFLite runs through edge's
            classifier (the device code path); Keras gets
            :func:`edge.contract.to_model_input` (raw 0..255 float32, ``(N, S, S, 1)``).
        images: uint8 faces ``(N, S, S)``; resized through the contract if the model wants
            another side.
        batch_size: Faces per inference call.

    Returns:
        ``(N, C)`` float32 probabilities.

    Raises:
        ModelError: if the model cannot be loaded or its suffix is unknown.
        DataError: if ``images`` is empty or not ``(N, S, S)``.
    """
    imgs = np.asarray(images)
    if imgs.ndim == 4 and imgs.shape[-1] == 1:
        imgs = imgs[..., 0]
    if imgs.ndim != 3 or imgs.shape[1] != imgs.shape[2]:
        raise DataError(f"expected faces of shape (N, S, S), got {imgs.shape}")
    if len(imgs) == 0:
        raise DataError("no faces to predict (empty evaluation split)")
    if imgs.dtype != np.uint8:
        imgs = np.clip(imgs, 0, 255).astype(np.uint8)
    batch_size = max(1, int(batch_size))

    if isinstance(model_or_path, str | os.PathLike):
        model_or_path = open_model(model_or_path)
    if isinstance(model_or_path, LoadedModel):
        handle, info = model_or_path.handle, model_or_path.info
    else:
        handle, info = model_or_path, _info_of(model_or_path, None)
    name = Path(info["path"]).name if info["path"] else str(info["arch"])
    imgs = _fit_size(imgs, info["input_size"])
    parts = []
    for s, e in _batches(len(imgs), batch_size, f"predict {name}"):
        if info["format"] == "tflite":
            out = handle.predict(imgs[s:e])
        else:
            out = handle.predict_on_batch(to_model_input(imgs[s:e]))
        parts.append(np.asarray(out, dtype=np.float32))
    return _as_probs(np.concatenate(parts))


def model_info(model_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Architecture name, parameter count, output classes and labels of a model file.

    TFLite files report what their metadata says (``params`` is ``None`` for them).

    Raises:
        ModelError: if the file cannot be read.
    """
    return open_model(model_path).info


def check_model_labels(info: Mapping[str, Any], label_names: Sequence[str]) -> None:
    """Fail early when a model cannot score data with ``label_names``.

    Raises:
        ModelError: if the output size differs from the number of labels, or a TFLite model's
            embedded label list differs from the data's.
    """
    n = len(label_names)
    if info["num_classes"] != n:
        raise ModelError(
            f"model {info['path']} outputs {info['num_classes']} classes but the data has "
            f"{n} labels ({', '.join(label_names)}); pick the matching --labels"
        )
    if info.get("labels") is not None and list(info["labels"]) != list(label_names):
        raise ModelError(
            f"model {info['path']} was trained for labels {list(info['labels'])}, the data has "
            f"{list(label_names)}"
        )


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A per-process name in the same folder (same filesystem, so os.replace is atomic); opened
    # normally so the file gets the usual umask-based mode, unlike mkstemp's 0600.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically; NaN is impossible (``allow_nan=False``)."""
    write_text_atomic(Path(path), json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


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
    metrics = compute_metrics(y, probs, label_names)
    metrics["model"] = {k: info[k] for k in ("path", "format", "arch", "params", "input_size")}
    if info["format"] == "tflite":
        # The device's code path classifies face by face, so wall time per face is what a
        # frame pays per face (on this machine, with this machine's load).
        metrics["ms_per_face"] = 1000.0 * seconds / len(y)
    if "deployed" in info:
        metrics["deployed"] = info["deployed"]
    if extra:
        metrics.update(dict(extra))

    sub_mask: np.ndarray | None = None
    if exclude_rows is not None:
        excl = np.fromiter((int(r) for r in exclude_rows), dtype=np.int64)
        sub_mask = ~np.isin(np.asarray(faces.rows, dtype=np.int64), excl)
        n_excl = int((~sub_mask).sum())
        if sub_mask.any():
            sub = compute_metrics(y[sub_mask], probs[sub_mask], label_names)
        else:
            sub = {"n": 0, "notes": ["every evaluation row has a Training twin"]}
        sub["n_excluded"] = n_excl
        sub["n_total"] = int(len(y))
        metrics[exclude_key] = sub

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Sibling folder (same filesystem: the final rename is atomic), created with mkdir so it
    # gets the usual umask-based mode rather than mkdtemp's 0700.
    tmp = out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    try:
        plot_confusion(metrics, tmp / "confusion.png")
        plot_roc(y, probs, label_names, tmp / "roc.png")
        dep = info.get("deployed")
        setting = f" (tta={dep['tta']}, {len(dep['ensemble'])} model(s))" if dep else ""
        plot_reliability(
            [(str(info["arch"]), probs, y)],
            tmp / "reliability.png",
            title=f"reliability: {info['arch']}{setting}",
        )
        if sub_mask is not None and sub_mask.any():
            plot_confusion(metrics[exclude_key], tmp / "confusion_excluding_train_duplicates.png")
        write_json(tmp / "metrics.json", metrics)
        _publish_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("evaluated %s on %d faces -> %s", info["path"], len(y), out / "metrics.json")
    return json_safe(metrics)
