"""Face detectors as typed plugins, selected by the ``type`` key of the ``[detector]`` table.

Each detector type has a :class:`~edge.detect.base.FaceDetector` subclass registered here under
its ``type`` and its own config class in :mod:`edge.detect.config`; :func:`create_detector` is
``DETECTORS[cfg.type].from_config(cfg)``. The detection schedule (:class:`FaceFinder`: motion
gate, region search around followed faces) works with any of them.
"""

from __future__ import annotations

from typing import Any

from edge.detect.base import KEYPOINTS, Detection, FaceDetector
from edge.detect.blazeface import BlazeFaceDetector
from edge.detect.haar import HaarDetector
from edge.detect.motion import Motion, MotionDetector
from edge.detect.scheduler import FaceFinder
from edge.detect.yunet import YuNetDetector
from edge.errors import ConfigError

#: Registry: ``type`` key -> detector class.
DETECTORS: dict[str, type[FaceDetector]] = {}


def register_detector(cls: type[FaceDetector]) -> type[FaceDetector]:
    """Register a detector class under its :attr:`~edge.detect.base.FaceDetector.type`."""
    if not cls.type or cls.type in DETECTORS:
        raise RuntimeError(f"detector type {cls.type!r} is empty or registered twice")
    DETECTORS[cls.type] = cls
    return cls


for _cls in (HaarDetector, YuNetDetector, BlazeFaceDetector):
    register_detector(_cls)


def create_detector(cfg: Any) -> FaceDetector:
    """Build the detector of a ``[detector]`` config (:data:`edge.detect.config.DetectorConfig`).

    Raises:
        ConfigError: for an unknown ``type``, naming the valid ones.
        DetectorError: when the detector's file (cascade, ONNX, TFLite model) is missing,
            corrupt or not what was expected.
    """
    try:
        cls = DETECTORS[cfg.type]
    except KeyError:
        raise ConfigError(
            f"detector.type {cfg.type!r} is not one of {', '.join(sorted(DETECTORS))}"
        ) from None
    return cls.from_config(cfg)


def create_finder(cfg: Any, detector: FaceDetector | None = None) -> FaceFinder:
    """Build the detection scheduler of a ``[detector]`` config: periodic, or motion-gated when
    ``cfg.motion_gate`` is set.

    Args:
        cfg: The ``[detector]`` config.
        detector: Use this detector instead of :func:`create_detector` (tests, benchmarks).

    Raises:
        ConfigError, DetectorError: as :func:`create_detector`.
    """
    det = detector if detector is not None else create_detector(cfg)
    motion = None
    if cfg.motion_gate:
        motion = MotionDetector(
            width=cfg.motion_width, threshold=cfg.motion_threshold, min_area=cfg.motion_min_area
        )
    return FaceFinder(
        det,
        detect_every=cfg.detect_every,
        roi_scale=cfg.roi_scale,
        motion=motion,
        full_every=cfg.full_every,
        motion_full_area=cfg.motion_full_area,
        still_frames=cfg.still_frames,
    )


__all__ = [
    "DETECTORS",
    "KEYPOINTS",
    "BlazeFaceDetector",
    "Detection",
    "FaceDetector",
    "FaceFinder",
    "HaarDetector",
    "Motion",
    "MotionDetector",
    "YuNetDetector",
    "create_detector",
    "create_finder",
    "register_detector",
]
