"""Face detectors selected by the ``type`` key of the ``[detector]`` config table."""

from __future__ import annotations

from typing import Any

from edge.detect.base import Detection, FaceDetector
from edge.detect.haar import HaarDetector
from edge.detect.motion import Motion, MotionDetector
from edge.detect.scheduler import FaceFinder
from edge.detect.yunet import YuNetDetector
from edge.errors import ConfigError

#: Registry: ``type`` key -> detector class.
DETECTORS: dict[str, type[FaceDetector]] = {
    HaarDetector.type: HaarDetector,
    YuNetDetector.type: YuNetDetector,
}


def create_detector(cfg: Any) -> FaceDetector:
    """Build a detector from a ``DetectorConfig`` (see :mod:`edge.config`).

    Raises:
        ConfigError: for an unknown ``type``.
        DetectorError: when the cascade or ONNX file is missing or unreadable.
    """
    if cfg.type == "haar":
        return HaarDetector(
            cfg.cascade,
            detect_width=cfg.detect_width,
            min_face=cfg.min_face,
            scale_factor=cfg.scale_factor,
            min_neighbors=cfg.min_neighbors,
            equalize=cfg.equalize,
            roi_face_px=cfg.roi_face_px,
        )
    if cfg.type == "yunet":
        return YuNetDetector(
            cfg.model,
            detect_width=cfg.detect_width,
            min_face=cfg.min_face,
            score_threshold=cfg.score_threshold,
            nms_threshold=cfg.nms_threshold,
            roi_face_px=cfg.roi_face_px,
        )
    raise ConfigError(f"detector.type {cfg.type!r} is not one of {sorted(DETECTORS)}")


def create_finder(cfg: Any, detector: FaceDetector | None = None) -> FaceFinder:
    """Build the detection scheduler of a ``DetectorConfig``: periodic, or motion-gated when
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
    )


__all__ = [
    "DETECTORS",
    "Detection",
    "FaceDetector",
    "FaceFinder",
    "HaarDetector",
    "Motion",
    "MotionDetector",
    "YuNetDetector",
    "create_detector",
    "create_finder",
]
