"""Face detectors: the ABC, the shared downscale step and region-of-interest detection.

Detection dominates the per-frame cost on a small CPU (the classifier takes ~0.05 ms), and its
cost grows with the pixel count, so every detector works on a *downscaled* gray frame (at most
``detect_width`` pixels wide) and scales its boxes back to full-frame pixels. Between full
detections the pipeline may search only an enlarged region around each tracked face
(:meth:`FaceDetector.detect` with ``roi``), which costs a fraction of a full-frame pass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np


@dataclass(frozen=True)
class Detection:
    """One face box in full-frame pixels.

    Attributes:
        x: Left edge.
        y: Top edge.
        w: Width.
        h: Height.
        score: Detector confidence in 0..1 (Haar has no calibrated score and reports 1.0).
    """

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)


class FaceDetector(ABC):
    """Base class of every face detector.

    Args:
        detect_width: Frames wider than this are downscaled to this width before detection
            (0 disables downscaling).
        min_face: Smallest face side to report, in full-frame pixels.
    """

    #: Registry key (``haar``, ``yunet``).
    type: ClassVar[str] = ""

    def __init__(self, *, detect_width: int = 320, min_face: int = 40) -> None:
        self.detect_width = detect_width
        self.min_face = min_face
        # Reused resize buffers, keyed by output shape: no allocation per frame in steady state.
        self._buffers: dict[tuple[int, int], np.ndarray] = {}

    def scale_for(self, frame_width: int) -> float:
        """Downscale factor (<= 1) used for a frame of this width."""
        if self.detect_width <= 0 or frame_width <= self.detect_width:
            return 1.0
        return self.detect_width / float(frame_width)

    def detect(
        self,
        gray: np.ndarray,
        roi: tuple[int, int, int, int] | None = None,
        face_side: float | None = None,
    ) -> list[Detection]:
        """Find faces in a gray frame, optionally only inside ``roi``.

        Args:
            gray: Full 2-D uint8 frame.
            roi: Optional ``(x, y, w, h)`` region (full-frame pixels, clipped to the frame). The
                region is downscaled by the same factor as a full frame, so ``min_face`` means
                the same in both cases.
            face_side: Expected face side (full-frame pixels) of a followed face: the search
                is limited to 0.6x..1.6x of it, which makes a region search much cheaper.

        Returns:
            Detections in full-frame pixels.
        """
        fh, fw = gray.shape[:2]
        s = self.scale_for(fw)
        ox = oy = 0
        region = gray
        if roi is not None:
            x, y, w, h = roi
            x0, y0 = max(0, int(x)), max(0, int(y))
            x1, y1 = min(fw, int(x + w)), min(fh, int(y + h))
            if x1 - x0 < 8 or y1 - y0 < 8:
                return []
            region = gray[y0:y1, x0:x1]
            ox, oy = x0, y0
        small = self._downscale(region, s)
        min_side = max(1, round(self.min_face * s))
        max_side = 0
        if face_side is not None:
            min_side = max(min_side, round(0.6 * face_side * s))
            max_side = max(min_side + 1, round(1.6 * face_side * s))
        boxes = self._detect(small, min_side, max_side)
        inv = 1.0 / s
        return [
            Detection(bx * inv + ox, by * inv + oy, bw * inv, bh * inv, sc)
            for bx, by, bw, bh, sc in boxes
        ]

    def _downscale(self, region: np.ndarray, s: float) -> np.ndarray:
        if s >= 1.0:
            return region
        import cv2

        h, w = region.shape[:2]
        size = (max(1, round(h * s)), max(1, round(w * s)))
        buf = self._buffers.get(size)
        if buf is None:
            if len(self._buffers) > 16:
                # ROI sizes vary; keep the cache bounded.
                self._buffers.clear()
            buf = np.empty(size, np.uint8)
            self._buffers[size] = buf
        cv2.resize(region, (size[1], size[0]), dst=buf, interpolation=cv2.INTER_AREA)
        return buf

    @abstractmethod
    def _detect(
        self, small: np.ndarray, min_side: int, max_side: int = 0
    ) -> list[tuple[float, float, float, float, float]]:
        """Detect on an already downscaled gray image.

        Args:
            small: 2-D uint8 image.
            min_side: Smallest face side in ``small``'s pixels.
            max_side: Largest face side in ``small``'s pixels (0: no limit).

        Returns:
            ``(x, y, w, h, score)`` tuples in ``small``'s pixels.
        """
