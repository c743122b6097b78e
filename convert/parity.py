"""Parity gate: the converted model against its float original on the validation split.

Both models are scored with the train package's evaluator (:func:`train.predict.predict_probs`
and :func:`train.metrics.compute_metrics`); the TFLite side runs through edge's own
``TFLiteClassifier``, i.e. the exact code path of the device.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ParityError

log = logging.getLogger(__name__)


def parity_report(
    keras_model: Any,
    tflite_path: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    label_names: tuple[str, ...],
    split: str,
) -> dict[str, Any]:
    """Score the float and converted models on the same faces.

    Args:
        keras_model: The trained Keras model (float reference).
        tflite_path: The converted model file.
        images: uint8 validation faces ``(N, S, S)``.
        labels: ``(N,)`` class ids.
        label_names: Names in output order.
        split: Name of the split, for the report.

    Returns:
        ``{"split", "n", "float_accuracy", "converted_accuracy", "drop_pp", "top1_agreement",
        "mean_abs_prob_diff", "max_abs_prob_diff", "float_macro_f1", "converted_macro_f1"}``.
    """
    from train.metrics import compute_metrics
    from train.predict import predict_probs

    p_float = predict_probs(keras_model, images)
    p_conv = predict_probs(tflite_path, images)
    m_float = compute_metrics(labels, p_float, label_names)
    m_conv = compute_metrics(labels, p_conv, label_names)
    diff = np.abs(p_float.astype(np.float64) - p_conv.astype(np.float64))
    agree = float(np.mean(p_float.argmax(axis=1) == p_conv.argmax(axis=1)))
    acc_f, acc_c = float(m_float["accuracy"]), float(m_conv["accuracy"])
    return {
        "split": split,
        "n": len(images),
        "float_accuracy": round(acc_f, 6),
        "converted_accuracy": round(acc_c, 6),
        "drop_pp": round(100.0 * (acc_f - acc_c), 4),
        "top1_agreement": round(agree, 6),
        "mean_abs_prob_diff": round(float(diff.mean()), 6),
        "max_abs_prob_diff": round(float(diff.max()), 6),
        "float_macro_f1": m_float.get("macro_f1"),
        "converted_macro_f1": m_conv.get("macro_f1"),
    }


class ParityGateError(ParityError):
    """The parity gate failed; carries the report so the CLI can still print it."""

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def enforce(report: dict[str, Any], max_drop: float) -> None:
    """Raise :class:`ParityGateError` (exit 3) when the accuracy drop exceeds ``max_drop``."""
    report["max_drop_pp"] = max_drop
    report["passed"] = bool(report["drop_pp"] <= max_drop)
    if not report["passed"]:
        raise ParityGateError(
            f"converted model loses {report['drop_pp']:.2f} accuracy points on {report['split']} "
            f"(float {report['float_accuracy']:.4f} -> {report['converted_accuracy']:.4f}); "
            f"--max-drop allows {max_drop:.2f}; no output written",
            report,
        )
