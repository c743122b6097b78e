"""When to run a full-frame detection and when a cheap search around known faces is enough.

A full-frame detection runs every ``detect_every`` frames, whenever no face is being followed,
and on the frame after a followed face was not found in its region (so a face that moved fast
or a new face never waits long). In between, each followed face is searched only inside its box
enlarged ``roi_scale`` times around its centre, resized so the face is about ``roi_face_px``
wide (see :class:`~edge.detect.base.FaceDetector`); when that cheap search misses, the same
region is searched once more at the full-frame scale. Overlapping hits from neighbouring regions
are merged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.detect.base import Detection, FaceDetector
from edge.track import iou


class FaceFinder:
    """Full-frame detection every N frames, region-of-interest re-detection in between.

    Args:
        detector: The face detector.
        detect_every: Run a full-frame detection at least every this many frames (1: always).
        roi_scale: Side of the search region as a multiple of the face box side.
    """

    def __init__(
        self, detector: FaceDetector, *, detect_every: int = 15, roi_scale: float = 1.6
    ) -> None:
        self.detector = detector
        self.detect_every = max(1, int(detect_every))
        self.roi_scale = roi_scale
        self._since_full = self.detect_every  # forces a full detection on the first frame
        self._force_full = True
        self.full_runs = 0
        self.roi_runs = 0
        self.roi_retries = 0

    def find(
        self, gray: np.ndarray, tracked: Sequence[tuple[float, float, float, float]]
    ) -> list[Detection]:
        """Detect faces in ``gray`` given the boxes of the currently followed faces.

        Args:
            gray: Full 2-D uint8 frame.
            tracked: ``(x, y, w, h)`` of each face followed in the previous frame.

        Returns:
            Detections in full-frame pixels.
        """
        full = self._force_full or not tracked or self._since_full >= self.detect_every
        if full:
            self._since_full = 1
            self._force_full = False
            self.full_runs += 1
            return self.detector.detect(gray)
        self._since_full += 1
        self.roi_runs += 1
        fh, fw = gray.shape[:2]
        found: list[Detection] = []
        for box in tracked:
            roi, side = self._roi(box, fw, fh), max(box[2], box[3])
            hits = self.detector.detect(gray, roi, face_side=side)
            if not hits and self.detector.roi_face_px > 0:
                # The cheap low-resolution search missed (~10% of blurry faces): retry the same
                # region at the full-frame scale before giving the face up for this frame.
                self.roi_retries += 1
                hits = self.detector.detect(gray, roi, face_side=side, roi_face_px=0)
            if not hits:
                # The face left its region (fast motion, or gone): look everywhere next frame.
                self._force_full = True
            for d in hits:
                if all(iou(d.bbox, f.bbox) < 0.5 for f in found):
                    found.append(d)
        return found

    def _roi(
        self, box: tuple[float, float, float, float], fw: int, fh: int
    ) -> tuple[int, int, int, int]:
        x, y, w, h = box
        side = max(w, h) * self.roi_scale
        cx, cy = x + w / 2.0, y + h / 2.0
        x0 = max(0, int(cx - side / 2.0))
        y0 = max(0, int(cy - side / 2.0))
        x1 = min(fw, int(cx + side / 2.0 + 0.5))
        y1 = min(fh, int(cy + side / 2.0 + 0.5))
        return (x0, y0, x1 - x0, y1 - y0)
