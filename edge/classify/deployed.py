"""The face classifier as deployed: one or more models, test-time views, a calibrated output.

``fer-edge run`` and ``fer-train evaluate --deployed`` both build their classifier with
:func:`open_classifier`, so what is measured on a workstation is exactly what a device runs:

1. **Members** (``[model] ensemble``, else ``path``/``bundled``): int8 models that share one
   preprocessing contract and label list. A mismatch is refused at start-up, naming both files,
   because averaging probabilities of differently ordered labels would be silently wrong.
2. **Test-time augmentation** (``[model] tta``): every face is classified in several views of
   the same crop (the crop itself, its mirror image, small shifts), and the probabilities of all
   views of all members are averaged with equal weight. Views are made from the uint8 crop of
   :func:`edge.contract.crop_face`, so the contract is applied once, not once per view.
3. **Calibration**: the average is divided by a temperature in log space,
   ``softmax(log(p) / T)``. For one model with a softmax output that is exactly
   ``softmax(logits / T)``; for an average it is the usual ensemble temperature scaling. ``T``
   comes from ``[model] temperature`` when set, else from the first member's metadata
   (``calibration``, written by ``fer-train calibrate``) when it was fitted for this very
   setting (same views, same other members), else 1 (uncalibrated, and said so in the log and in
   :meth:`DeployedClassifier.describe`). A temperature fitted for another setting is not reused:
   an ensemble is less confident than its members, so their temperatures do not transfer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.classify.base import Classifier, create_classifier
from edge.errors import ModelError
from edge.model_meta import ModelMetadata

if TYPE_CHECKING:
    from edge.config import ModelConfig

log = logging.getLogger(__name__)

#: Pixels a shifted view moves the crop (about 4 % of a 48-pixel face).
SHIFT_PX = 2


def _identity(a: np.ndarray) -> np.ndarray:
    return a


def _flip(a: np.ndarray) -> np.ndarray:
    return a[:, :, ::-1]


def _shift(dx: int, dy: int) -> Callable[[np.ndarray], np.ndarray]:
    """A view moved by ``(dx, dy)`` pixels; the uncovered border repeats the edge pixels (as the
    training augmentation's ``fill_mode="nearest"`` does)."""

    def view(a: np.ndarray) -> np.ndarray:
        p = max(abs(dx), abs(dy))
        padded = np.pad(a, ((0, 0), (p, p), (p, p)), mode="edge")
        s = a.shape[1]
        return padded[:, p - dy : p - dy + s, p - dx : p - dx + s]

    return view


#: ``[model] tta`` value -> the views each face is classified in.
TTA_VIEWS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], ...]] = {
    "none": (_identity,),
    "flip": (_identity, _flip),
    "flip_shift": (
        _identity,
        _flip,
        _shift(SHIFT_PX, 0),
        _shift(-SHIFT_PX, 0),
        _shift(0, SHIFT_PX),
        _shift(0, -SHIFT_PX),
    ),
}


def calibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / temperature)`` row by row (``temperature == 1`` returns ``probs``).

    Args:
        probs: ``(N, C)`` probabilities (rows summing to 1).
        temperature: > 0; above 1 softens, below 1 sharpens.
    """
    if temperature == 1.0:
        return probs
    z = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def setting_key(tta: str, others: Sequence[str]) -> dict[str, Any]:
    """What a calibration temperature was fitted for: the views and the other members' sha256
    (the first member is the model file that carries the temperature)."""
    return {"tta": tta, "members": list(others)}


class DeployedClassifier(Classifier):
    """Members x views averaged, then calibrated (see the module docstring).

    Args:
        members: Loaded classifiers; the first one's metadata describes the ensemble.
        tta: A key of :data:`TTA_VIEWS`.
        temperature: Overrides the calibration stored in the first member's metadata.
        package_default: The members are :data:`edge.bundled.DEFAULT_MODELS`, named by no
            config key: running them without a fitted temperature is by design (logged as info).

    Raises:
        ModelError: members that disagree on labels or preprocessing contract.
        ValueError: an unknown ``tta`` or a temperature <= 0.
    """

    def __init__(
        self,
        members: Sequence[Classifier],
        tta: str = "none",
        temperature: float | None = None,
        package_default: bool = False,
    ) -> None:
        if not members:
            raise ValueError("a deployed classifier needs at least one model")
        if tta not in TTA_VIEWS:
            raise ValueError(f"unknown tta {tta!r}; valid: {', '.join(TTA_VIEWS)}")
        if temperature is not None and temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        first = members[0]
        for m in members[1:]:
            if m.labels != first.labels:
                raise ModelError(
                    f"ensemble members disagree on labels: {first.path} has {list(first.labels)}, "
                    f"{m.path} has {list(m.labels)}"
                )
            if m.metadata.contract != first.metadata.contract:
                raise ModelError(
                    f"ensemble members disagree on the preprocessing contract: {first.path} has "
                    f"{first.metadata.contract.to_dict()}, {m.path} has "
                    f"{m.metadata.contract.to_dict()}"
                )
        self._members = tuple(members)
        self._tta = tta
        self._views = TTA_VIEWS[tta]
        self._temperature, self._calibration_source = self._choose_temperature(temperature)
        if self._calibration_source == "none" and package_default:
            # The default pair cannot have a fitted temperature: cnn trained on every Training
            # face, so no held-out slice is left to fit one on (PublicTest is only reported).
            # Its averaged probabilities are used as they are; docs/RESULTS.md measures them.
            log.info(
                "%s: the default models' averaged probabilities are used as they are (T = 1; "
                "no held-out slice is left to fit a temperature for this pair)",
                first.path,
            )
        elif self._calibration_source == "none":
            log.warning(
                "%s: no calibration fitted for this setting (tta=%s, %d models); confidences "
                "are uncalibrated (fer-train calibrate fits one)",
                first.path,
                tta,
                len(members),
            )

    def _choose_temperature(self, override: float | None) -> tuple[float, str]:
        if override is not None:
            return float(override), "config"
        cal = self.metadata.calibration
        wanted = setting_key(self._tta, [m.sha256 for m in self._members[1:]])
        if cal and cal.get("setting") == wanted and float(cal.get("temperature", 0)) > 0:
            return float(cal["temperature"]), "model metadata"
        return 1.0, "none"

    @property
    def members(self) -> tuple[Classifier, ...]:
        """The loaded models, first one first."""
        return self._members

    @property
    def tta(self) -> str:
        """The ``[model] tta`` setting."""
        return self._tta

    @property
    def temperature(self) -> float:
        """The temperature applied to the averaged probabilities (1: uncalibrated)."""
        return self._temperature

    @property
    def metadata(self) -> ModelMetadata:
        """The first member's metadata (all members share its labels and contract)."""
        return self._members[0].metadata

    @property
    def path(self) -> Path:
        """The first member's file."""
        return self._members[0].path

    @property
    def sha256(self) -> str:
        """The first member's sha256 (events name the model by it)."""
        return self._members[0].sha256

    def predict_uncalibrated(self, faces: np.ndarray) -> np.ndarray:
        """The mean probabilities over members and views, before the temperature."""
        a = np.asarray(faces)
        if a.ndim == 2:
            a = a[None]
        if a.ndim == 4 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim != 3:
            raise ValueError(f"expected faces of shape (N, S, S), got {np.shape(faces)}")
        total: np.ndarray | None = None
        for view in self._views:
            v = np.ascontiguousarray(view(a))
            for m in self._members:
                p = m.predict(v)
                total = p if total is None else total + p
        assert total is not None
        return (total / (len(self._views) * len(self._members))).astype(np.float32)

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """Calibrated probabilities ``(N, len(labels))`` (see the module docstring)."""
        return calibrate(self.predict_uncalibrated(faces), self._temperature)

    def describe(self) -> dict[str, Any]:
        """The setting as ``fer-edge info --json`` shows it."""
        return {
            "tta": self._tta,
            "views": len(self._views),
            "ensemble": [
                {"path": str(m.path), "sha256": m.sha256, "arch": m.metadata.arch}
                for m in self._members
            ],
            "temperature": self._temperature,
            "calibrated": self._calibration_source != "none",
            "calibration_source": self._calibration_source,
            "calibration": self.metadata.calibration or None,
        }

    def close(self) -> None:
        """Close every member."""
        for m in self._members:
            m.close()


def open_classifier(
    paths: Sequence[str | Path],
    tta: str = "none",
    temperature: float | None = None,
    type_: str = "tflite",
    package_default: bool = False,
    **options: Any,
) -> DeployedClassifier:
    """Load the members through the classifier registry and wrap them (the one entry point of
    ``fer-edge run`` and ``fer-train evaluate --deployed``).

    Args:
        paths: Model files, first one first (its metadata may carry the calibration).
        tta: A key of :data:`TTA_VIEWS`.
        temperature: Overrides the stored calibration.
        type_: Classifier backend (``[model] type``).
        package_default: The models are the package's default (no config key named them):
            an unfitted temperature is expected there and is logged as info, not a warning.
        **options: Backend options (``num_threads``).

    Raises:
        ModelError: a member that cannot be loaded, or members that do not agree.
        ConfigError: an unknown backend type.
    """
    members: list[Classifier] = []
    try:
        for p in paths:
            members.append(create_classifier(type_, p, **options))
        return DeployedClassifier(
            members, tta=tta, temperature=temperature, package_default=package_default
        )
    except BaseException:
        for m in members:
            m.close()
        raise


def open_configured(cfg: ModelConfig) -> DeployedClassifier:
    """The classifier a ``[model]`` config section describes (see :func:`open_classifier`)."""
    return open_classifier(
        cfg.resolved_paths(),
        tta=cfg.tta,
        temperature=cfg.temperature,
        package_default=cfg.names_no_model(),
        num_threads=cfg.num_threads,
    )
