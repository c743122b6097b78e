"""Evaluation plots: confusion matrices, ROC curves, learning curves, comparison bars.

matplotlib is used through its object-oriented API with the Agg canvas: no pyplot global state,
no display, safe to call from any thread or a headless CI box. Every PNG is written to a
temporary name and renamed, so an interrupted run never leaves a truncated image.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.atomic import atomic_path
from edge.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def plot_confusion(metrics: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Confusion matrix PNG: counts (left) and row-normalized recall per class (right)."""
    cm = np.asarray(metrics["confusion"]["matrix"], dtype=np.float64)
    labels = list(metrics["confusion"]["labels"])
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    c = len(labels)
    side = max(4.0, 0.7 * c + 1.5)
    fig = _figure(2 * side + 1.5, side)
    fig.subplots_adjust(wspace=0.45)
    for ax, data, title, fmt in (
        (fig.add_subplot(1, 2, 1), cm, "counts", "{:.0f}"),
        (fig.add_subplot(1, 2, 2), norm, "row-normalized (recall)", "{:.2f}"),
    ):
        im = ax.imshow(data, cmap="Blues", vmin=0)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_xticks(range(c), labels, rotation=45, ha="right")
        ax.set_yticks(range(c), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        hi = data.max() if data.size else 0
        for i in range(c):
            for j in range(c):
                color = "white" if hi and data[i, j] > 0.6 * hi else "black"
                ax.text(
                    j, i, fmt.format(data[i, j]), ha="center", va="center", color=color, fontsize=8
                )
    acc = metrics.get("accuracy")
    fig.suptitle(f"confusion matrix (n={metrics.get('n')}, accuracy={acc:.4f})")
    _save_figure(fig, path)


def plot_roc(
    y_true: Sequence[int] | np.ndarray,
    probs: np.ndarray,
    labels: Sequence[str],
    path: str | os.PathLike[str],
) -> None:
    """One-vs-rest ROC curve per class (classes absent from ``y_true`` are skipped)."""
    from sklearn.metrics import auc, roc_curve

    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(probs, dtype=np.float64)
    fig = _figure(6.5, 6.0)
    ax = fig.add_subplot(1, 1, 1)
    aucs = []
    for i, name in enumerate(labels):
        pos = y == i
        if pos.all() or not pos.any():
            continue
        fpr, tpr, _ = roc_curve(pos.astype(np.int64), p[:, i])
        a = float(auc(fpr, tpr))
        aucs.append(a)
        ax.plot(fpr, tpr, lw=1.5, label=f"{name} (AUC {a:.3f}, n={int(pos.sum())})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    macro = f"{np.mean(aucs):.3f}" if aucs else "n/a"
    ax.set_title(f"one-vs-rest ROC (macro AUC {macro})")
    if aucs:
        ax.legend(loc="lower right", fontsize=8)
    _save_figure(fig, path)


def read_history(
    history: str | os.PathLike[str] | Mapping[str, Sequence[float]],
) -> dict[str, list[float]]:
    """Columns of a Keras ``CSVLogger`` file (or a ``History.history`` dict) as float lists.

    Raises:
        DataError: if the file is missing or a value is not a number.
    """
    if isinstance(history, Mapping):
        return {str(k): [float(v) for v in vals] for k, vals in history.items()}
    p = Path(history)
    if not p.is_file():
        raise DataError(f"history file {p} does not exist")
    cols: dict[str, list[float]] = {}
    with p.open(newline="") as f:
        for row in csv.DictReader(f):
            for k, v in row.items():
                if k is None or v in (None, ""):
                    continue
                try:
                    cols.setdefault(k, []).append(float(v))
                except ValueError as e:
                    raise DataError(f"history file {p}: column {k!r} has non-number {v!r}") from e
    return cols


def plot_history(
    history: str | os.PathLike[str] | Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
) -> None:
    """Learning curves PNG: loss and accuracy, training vs validation, per epoch.

    Args:
        history: A Keras ``CSVLogger`` file (``epoch,accuracy,loss,val_accuracy,val_loss,...``)
            or a ``History.history``-style dict of lists.
        path: Output PNG.

    Raises:
        DataError: if the CSV is missing/malformed or holds neither loss nor accuracy.
    """
    h = read_history(history)
    panels = [
        (key, title)
        for key, title in (("loss", "loss"), ("accuracy", "accuracy"))
        if key in h or f"val_{key}" in h
    ]
    if not panels:
        raise DataError(f"history has no loss/accuracy columns (got {sorted(h)})")
    n_rows = max(len(v) for v in h.values())
    # Keras CSVLogger epochs are 0-based; a resumed run keeps counting, so use the column.
    epochs = [int(e) + 1 for e in h.get("epoch", range(n_rows))]
    fig = _figure(5.5 * len(panels), 4.2)
    for k, (key, title) in enumerate(panels):
        _history_panel(fig.add_subplot(1, len(panels), k + 1), h, epochs, key, title)
    _save_figure(fig, path)


def _history_panel(
    ax: Any, h: Mapping[str, Sequence[float]], epochs: list[int], key: str, title: str
) -> None:
    """One learning curve (training and validation ``key``), the best validation epoch marked."""
    from matplotlib.ticker import MaxNLocator

    for name, style in ((key, "-"), (f"val_{key}", "--")):
        vals = h.get(name)
        if vals:
            ax.plot(
                epochs[: len(vals)],
                vals,
                style,
                marker="o",
                ms=3,
                label="validation" if name.startswith("val_") else "training",
            )
    val = h.get(f"val_{key}")
    if val:
        best = int(np.argmin(val) if key == "loss" else np.argmax(val))
        ax.axvline(epochs[best], color="grey", lw=0.8, ls=":")
        ax.set_title(f"{title} (best val {val[best]:.4f} @ epoch {epochs[best]})")
    else:
        ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()


def plot_comparison(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike[str]) -> None:
    """Side-by-side bar chart of accuracy, macro precision/recall/F1 and macro AUC per model."""
    keys = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "auc_macro")
    names = [str(r["arch"]) for r in rows]
    x = np.arange(len(names))
    width = 0.8 / len(keys)
    fig = _figure(max(7.0, 1.6 * len(names) + 2.0), 4.8)
    ax = fig.add_subplot(1, 1, 1)
    for j, key in enumerate(keys):
        vals = [float(r[key]) if r.get(key) is not None else 0.0 for r in rows]
        bars = ax.bar(x + (j - (len(keys) - 1) / 2) * width, vals, width, label=key)
        for b, v in zip(bars, vals, strict=True):
            ax.text(
                b.get_x() + b.get_width() / 2,
                v + 0.005,
                f"{v:.2f}",
                ha="center",
                va="bottom",
                fontsize=6,
                rotation=90,
            )
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("score")
    ax.set_title("architectures under one protocol")
    ax.legend(fontsize=8, ncol=len(keys), loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    _save_figure(fig, path)


def plot_val_accuracy(
    curves: Mapping[str, Sequence[float]], path: str | os.PathLike[str], title: str = ""
) -> None:
    """Validation accuracy (0-1) per epoch of several runs on one axis (``label -> values``)."""
    from matplotlib.ticker import MaxNLocator

    fig = _figure(7.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    for label, val in curves.items():
        ax.plot(range(1, len(val) + 1), [100 * v for v in val], marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("PublicTest accuracy %")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    _save_figure(fig, path)
