"""Distillation teachers: one or several finished leak-free models, optionally with test-time
flips, whose averaged output becomes part of every augmented batch's targets.

An ensemble with test-time augmentation is more accurate than any one model, but costs a
device several models' time per face. Distilling it into one student keeps much of the gain
at one model's cost. Teachers may be ``.keras`` checkpoints (run in the training graph) or the
int8 ``.tflite`` files a device runs (run through :mod:`edge.classify.deployed`, the device's
own code path, so a student can learn from exactly what is deployed).

A teacher must never have trained on the student's validation split: a teacher validated on
PublicTest trained on TrainVal's faces, and a student selected on TrainVal would then be
selected on faces its targets already knew. Every teacher's provenance is checked (the run's
``config.json`` beside a ``.keras``, the embedded metadata of a ``.tflite``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import DEFAULT_CONTRACT
from edge.errors import ConfigError

#: ``--teacher-tta`` choices: each teacher sees the batch as is, or also mirrored.
TEACHER_TTA = ("none", "flip")


@dataclass
class Teachers:
    """Loaded teachers; call with a float32 batch ``(B, S, S, 1)`` of raw 0..255 faces to get
    the mean probability ``(B, C)`` over teachers (and views)."""

    tta: str
    keras_models: list[Any] = field(default_factory=list)
    deployed: Any = None  # edge DeployedClassifier of the .tflite teachers, or None
    provenance: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        """Number of teacher models."""
        return len(self.keras_models) + (len(self.deployed.members) if self.deployed else 0)

    def _tflite_probs(self, batch: np.ndarray) -> np.ndarray:
        faces = np.clip(np.rint(batch[..., 0]), 0, 255).astype(np.uint8)
        # tf.data maps run in parallel; one TFLite interpreter must not be invoked from two
        # threads at once.
        with self._lock:
            return self.deployed.predict_uncalibrated(faces).astype(np.float32)

    def __call__(self, xb: Any, training: bool = False) -> Any:
        import tensorflow as tf

        total = None
        for m in self.keras_models:
            p = m(xb, training=False)
            if self.tta == "flip":
                p = (p + m(tf.reverse(xb, axis=[2]), training=False)) / 2.0
            total = p if total is None else total + p
        if self.deployed is not None:
            n = len(self.deployed.members)
            p = tf.numpy_function(self._tflite_probs, [xb], tf.float32)
            p.set_shape([None, len(self.deployed.labels)])
            total = n * p if total is None else total + n * tf.cast(p, total.dtype)
        assert total is not None
        return total / float(self.count)


def _check_same_task(path: Path, cfg: dict[str, Any], labels: list[str]) -> None:
    """Same labels and preprocessing contract as the student (``cfg``: the run's config, or a
    ``.tflite``'s ``training`` metadata with its labels and contract)."""
    if cfg.get("labels") != labels:
        raise ConfigError(f"--teacher {path}: labels {cfg.get('labels')} differ from {labels}")
    contract = DEFAULT_CONTRACT.to_dict() | {"labels": labels}
    if cfg.get("contract") not in (None, contract):
        raise ConfigError(f"--teacher {path}: its preprocessing contract differs from this run's")


def load_teachers(
    paths: Sequence[str], tta: str, labels: Sequence[str], val_usage: str
) -> Teachers:
    """Check and load ``--teacher`` models (before the run folder exists, so a bad one fails
    cleanly).

    Raises:
        ConfigError: a missing file, a leaky or differently validated run, other labels or
            contract, or an unknown ``tta``.
        ModelError: a file that cannot be loaded.
    """
    from train.predict import TFLITE_SUFFIXES, load_keras_model
    from train.provenance import checkpoint_provenance, leak_free_run_config

    if tta not in TEACHER_TTA:
        raise ConfigError(f"--teacher-tta {tta!r}; valid: {', '.join(TEACHER_TTA)}")
    want = list(labels)
    teachers = Teachers(tta=tta)
    tflite: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.suffix.lower() in TFLITE_SUFFIXES:
            if not path.is_file():
                raise ConfigError(f"--teacher {path}: no such file")
            tflite.append(path)
            continue
        _check_same_task(path, leak_free_run_config(path, "--teacher", val_usage), want)
        teachers.keras_models.append(load_keras_model(path))
        teachers.provenance.append(checkpoint_provenance(path))
    if tflite:
        _add_deployed(teachers, tflite, want, val_usage)
    return teachers


def _add_deployed(teachers: Teachers, paths: list[Path], want: list[str], val_usage: str) -> None:
    """Open the ``.tflite`` teachers as one deployed classifier, each checked like a run."""
    from edge.classify.deployed import open_classifier
    from train.provenance import check_leak_free

    deployed = open_classifier(paths, tta=teachers.tta)
    for m in deployed.members:
        md = m.metadata
        check_leak_free(dict(md.training), m.path, "--teacher", val_usage)
        _check_same_task(
            m.path, {"labels": list(md.labels), "contract": md.contract.to_dict()}, want
        )
        teachers.provenance.append(
            {"path": str(m.path), "sha256": m.sha256, "parent": {"arch": md.arch}}
            | {"command": md.training.get("command"), "commit": md.training.get("commit")}
        )
    teachers.deployed = deployed
