"""Calibration of predicted probabilities: expected calibration error, temperature fitting and
the reliability diagram.

A classifier is *calibrated* when, among the faces it labels with confidence 0.8, 80 % are right.
Users write automations on an event's ``confidence`` (turn the lights blue when ``sad`` > 0.7),
so the number has to mean what it says. Softmax outputs of a network trained with cross-entropy
are usually over-confident; one temperature ``T`` fitted on held-out data
(``softmax(log(p) / T)``, Guo et al. 2017) fixes most of it without changing any prediction
(the argmax is unchanged by a positive temperature).

The temperature is fitted on the validation slice of Training (``TrainVal``), never on
PublicTest, which stays a report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.atomic import atomic_path
from edge.classify.deployed import calibrate
from edge.errors import ConfigError

#: Equal-width confidence bins of the ECE (the common choice, Guo et al. 2017).
ECE_BINS = 15
#: Temperatures searched (a wider range means a broken model, not a calibration problem).
T_RANGE = (0.05, 20.0)


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, Any]]:
    """Faces grouped by top-1 confidence into ``bins`` equal-width bins over (0, 1].

    Returns:
        One dict per bin: ``lo``, ``hi``, ``n``, ``confidence`` (mean top-1 probability) and
        ``accuracy`` (share right); the last two are ``None`` for an empty bin.
    """
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 cannot occur (max of a
    # distribution over >= 2 classes is >= 1/C), 1.0 goes to the last bin.
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    out = []
    for i in range(bins):
        m = idx == i
        n = int(m.sum())
        out.append(
            {
                "lo": float(edges[i]),
                "hi": float(edges[i + 1]),
                "n": n,
                "confidence": float(conf[m].mean()) if n else None,
                "accuracy": float(right[m].mean()) if n else None,
            }
        )
    return out


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the face-weighted mean gap between confidence and accuracy over the bins.

    Args:
        probs: ``(N, C)`` probabilities.
        labels: ``(N,)`` true class ids.
        bins: Number of equal-width bins (15 by default).
    """
    n = len(labels)
    if n == 0:
        raise ValueError("no faces to compute the ECE on")
    total = 0.0
    for b in reliability_bins(probs, labels, bins):
        if b["n"]:
            total += b["n"] * abs(b["accuracy"] - b["confidence"])
    return total / n


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class."""
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.log(p).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the NLL of ``softmax(log(probs) / T)`` on these faces.

    NLL is convex in ``1/T`` for a fixed set of log-probabilities, so a golden-section search
    over ``log T`` in :data:`T_RANGE` finds the minimum; no optimiser dependency needed.
    """
    if len(labels) == 0:
        raise ValueError("no faces to fit a temperature on")
    lo, hi = math.log(T_RANGE[0]), math.log(T_RANGE[1])
    g = (math.sqrt(5) - 1) / 2

    def f(log_t: float) -> float:
        return nll(calibrate(probs, math.exp(log_t)), labels)

    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = f(c), f(d)
    for _ in range(60):  # interval shrinks by 0.618 per step: ~1e-12 of the range at the end
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = f(d)
    return float(math.exp((a + b) / 2))


def calibration_summary(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """``ece``, ``nll`` and the reliability bins of one set of predictions."""
    return {
        "ece": expected_calibration_error(probs, labels, bins),
        "nll": nll(probs, labels),
        "bins": reliability_bins(probs, labels, bins),
    }


def plot_reliability(
    curves: Sequence[tuple[str, np.ndarray, np.ndarray]], path: Path, title: str = ""
) -> None:
    """Reliability diagram: accuracy against confidence per bin, one line per ``(name, probs,
    labels)``, with the diagonal of perfect calibration and each curve's ECE in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="perfect")
    for name, probs, labels in curves:
        b = [x for x in reliability_bins(probs, labels) if x["n"]]
        ece = expected_calibration_error(probs, labels)
        ax.plot(
            [x["confidence"] for x in b],
            [x["accuracy"] for x in b],
            marker="o",
            markersize=3,
            label=f"{name} (ECE {ece:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "reliability")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a crash never leaves half a PNG under the real name
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _check_members_held_out(members: Sequence[Any], usage: str) -> None:
    """Refuse members whose training saw ``usage``: a temperature fitted on faces a model was
    trained on is fitted on over-confident training outputs and would make it worse."""
    for m in members:
        options = (m.metadata.training or {}).get("options") or {}
        validated_on = options.get("val_usage")
        if validated_on != usage:
            raise ConfigError(
                f"{m.path}: its training was validated on {validated_on or 'an unknown split'}, "
                f"not {usage}, so it trained on the {usage} faces; a temperature fitted there "
                f"would be fitted on training data. Calibrate models trained with "
                f"--val-usage {usage}"
            )


def run_calibration(
    config: Path | None,
    data: Path,
    out: Path,
    report: Path | None,
    command: str,
    labels: tuple[str, Path | None, int] = ("fer2013", None, 8),
) -> dict[str, Any]:
    """``fer-train calibrate``: fit the temperature of the deployed classifier of ``config`` on
    the validation slice of Training and write its first model, with the temperature in its
    metadata, to ``out``.

    ``labels`` is ``(--labels, --ferplus, --ferplus-classes)``: the truth the confidence is
    fitted to (a FERPlus-trained model is calibrated against FERPlus majority labels).

    Returns:
        The ``calibration`` section stored in the model.

    Raises:
        ConfigError: a bad config, a member trained on the slice, or ``out`` in the way.
        DataError, ModelError: unreadable data or models.
    """
    from edge.classify.deployed import open_configured, setting_key
    from edge.config import load_config
    from edge.model_meta import write_model
    from train.data.fer2013 import TRAIN_VAL

    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    if out.suffix.lower() != ".tflite":
        raise ConfigError(f"--out {out}: must end in .tflite")
    cfg = load_config(config)
    clf = open_configured(cfg.model)
    members = clf.members
    _check_members_held_out(members, TRAIN_VAL)
    faces = _held_out_faces(data, clf, labels)
    probs = clf.predict_uncalibrated(faces.images)
    y = faces.labels
    t = fit_temperature(probs, y)
    after = calibrate(probs, t)
    before_s, after_s = calibration_summary(probs, y), calibration_summary(after, y)
    section = {
        "method": "temperature",
        "temperature": t,
        "setting": setting_key(clf.tta, [m.sha256 for m in members[1:]]),
        "fitted_on": {
            "data": data.name,
            "usage": TRAIN_VAL,
            "labels": labels[0],
            "n": len(y),
            "source": faces.source,
        },
        "ece_bins": ECE_BINS,
        "ece_before": before_s["ece"],
        "ece_after": after_s["ece"],
        "nll_before": before_s["nll"],
        "nll_after": after_s["nll"],
        "command": command,
    }
    first = members[0]
    write_model(out, first.path.read_bytes(), replace(first.metadata, calibration=section))
    if report is not None:
        _write_calibration_report(
            report,
            section | {"bins_before": before_s["bins"], "bins_after": after_s["bins"]},
            [(f"T = 1 ({TRAIN_VAL})", probs, y), (f"T = {t:.3f} ({TRAIN_VAL})", after, y)],
            title=f"{first.metadata.arch}, tta={clf.tta}, {len(members)} model(s)",
        )
    clf.close()
    return section


def _held_out_faces(data: Path, clf: Any, labels: tuple[str, Path | None, int]) -> Any:
    """The TrainVal slice of ``data`` with ``labels`` (see :func:`run_calibration`), checked
    against ``clf``'s labels.

    Raises:
        ConfigError: if the classifier was trained for other labels.
    """
    from train.data.fer2013 import TRAIN_VAL, load_labelled

    faces = load_labelled(data, TRAIN_VAL, *labels)
    if tuple(faces.label_names) != tuple(clf.labels):
        raise ConfigError(
            f"{clf.path} has labels {list(clf.labels)}; {data} {TRAIN_VAL} has "
            f"{list(faces.label_names)}"
        )
    return faces


def _write_calibration_report(
    report: Path,
    doc: dict[str, Any],
    curves: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
) -> None:
    """``report/calibration.json`` and the before/after ``report/reliability.png``."""
    from train.metrics import write_json

    report.mkdir(parents=True, exist_ok=True)
    write_json(report / "calibration.json", doc)
    plot_reliability(curves, report / "reliability.png", title=title)
