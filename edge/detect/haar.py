"""Haar cascade face detector from OpenCV's bundled cascades (the default; no extra files)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.detect.base import Detection, FaceDetector
from edge.errors import DetectorError

log = logging.getLogger(__name__)

DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"


# Where distributions install OpenCV's cascades when their cv2 has no ``cv2.data`` module
# (Debian/Raspberry Pi OS: apt's opencv-data, /usr/share/opencv4). pip's wheels carry cv2.data.
SYSTEM_CASCADE_DIRS = (
    Path("/usr/share/opencv4/haarcascades"),
    Path("/usr/share/opencv/haarcascades"),
)


def cascade_path(name_or_path: str | Path = DEFAULT_CASCADE) -> Path:
    """Resolve a cascade file name against ``cv2.data.haarcascades`` (or use a path as is).

    Without ``cv2.data`` (a distribution's OpenCV), the first of :data:`SYSTEM_CASCADE_DIRS`
    that holds the file is used.

    Raises:
        DetectorError: no cascade folder holds the file (naming the folders searched).
    """
    p = Path(name_or_path)
    if p.is_absolute() or p.parent != Path("."):
        return p
    import cv2

    base = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if base is not None:
        return Path(base) / p
    for folder in SYSTEM_CASCADE_DIRS:
        if (folder / p).is_file():
            return folder / p
    raise DetectorError(
        f"this OpenCV build has no bundled Haar cascades (cv2.data.haarcascades) and {p} is in "
        f"none of {', '.join(map(str, SYSTEM_CASCADE_DIRS))}; install opencv-data (apt) or "
        "opencv-python-headless (pip), or set detector.cascade to a cascade XML path"
    )


class HaarDetector(FaceDetector):
    """``cv2.CascadeClassifier`` on a downscaled gray frame.

    Args:
        cascade: Cascade XML file name (in OpenCV's data folder) or path.
        detect_width: See :class:`FaceDetector`.
        min_face: See :class:`FaceDetector`.
        scale_factor: Pyramid step of ``detectMultiScale`` (smaller: slower, more recall).
        min_neighbors: Overlapping hits needed for a face (larger: fewer false positives).
        equalize: Histogram-equalize before detecting (helps in poor light, costs ~5%).
        roi_face_px: See :class:`FaceDetector`.
    """

    type = "haar"

    def __init__(
        self,
        cascade: str | Path = DEFAULT_CASCADE,
        *,
        detect_width: int = 320,
        min_face: int = 40,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        equalize: bool = False,
        roi_face_px: int = 32,
    ) -> None:
        super().__init__(detect_width=detect_width, min_face=min_face, roi_face_px=roi_face_px)
        import cv2

        path = cascade_path(cascade)
        if not path.is_file():
            raise DetectorError(f"Haar cascade {path} not found")
        try:
            clf = cv2.CascadeClassifier(str(path))
        except (cv2.error, SystemError) as e:
            # OpenCV reports a malformed XML as cv2.error (wrapped in SystemError by some builds).
            raise DetectorError(f"Haar cascade {path} could not be loaded: {e}") from None
        if clf.empty():
            raise DetectorError(f"Haar cascade {path} could not be loaded (not a cascade XML?)")
        self.path = path
        self._clf = clf
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.equalize = equalize
        self._eq: np.ndarray | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> HaarDetector:
        """Build from a :class:`~edge.detect.config.HaarConfig`."""
        return cls(
            cfg.cascade,
            detect_width=cfg.detect_width,
            min_face=cfg.min_face,
            scale_factor=cfg.scale_factor,
            min_neighbors=cfg.min_neighbors,
            equalize=cfg.equalize,
            roi_face_px=cfg.roi_face_px,
        )

    def _detect(self, small: np.ndarray, min_side: int, max_side: int = 0) -> list[Detection]:
        import cv2

        img = small
        if self.equalize:
            if self._eq is None or self._eq.shape != small.shape:
                self._eq = np.empty_like(small)
            cv2.equalizeHist(small, dst=self._eq)
            img = self._eq
        # The frontal-face cascade's window is 24x24: smaller minSize values change nothing.
        m = max(24, min_side)
        if img.shape[0] < m or img.shape[1] < m:
            return []
        rects = self._clf.detectMultiScale(
            img,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(m, m),
            maxSize=(max_side, max_side) if max_side > m else (0, 0),
        )
        return [Detection(float(x), float(y), float(w), float(h)) for (x, y, w, h) in rects]
