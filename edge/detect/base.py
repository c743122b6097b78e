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
from typing import Any, ClassVar

import numpy as np

#: Sides a followed face may have in the next frame, as fractions of its current side: the
#: region search only tries these scales.
ROI_SIDE_RANGE: tuple[float, float] = (0.6, 1.6)


@dataclass(frozen=True)
class Detection:
    """One face box in full-frame pixels.

    Attributes:
        x: Left edge.
        y: Top edge.
        w: Width.
        h: Height.
        score: Detector confidence in 0..1 (Haar has no calibrated score and reports 1.0).
        keypoints: Facial landmarks ``((x, y), ...)`` in full-frame pixels, in the order of
            :data:`KEYPOINTS` (BlazeFace: all six; YuNet: the first three; Haar: none, ``()``).
            Eye alignment (:func:`edge.contract.crop_face`) uses the first two.
        still: The face was not searched for in this frame: nothing changed in its search
            region since it was last detected, so this is that detection again (see
            ``still_frames`` in :mod:`edge.detect.scheduler`). Its crop shows the same pixels
            as then, so the pipeline does not classify it again: the track keeps its belief.
    """

    x: float
    y: float
    w: float
    h: float
    score: float = 1.0
    keypoints: tuple[tuple[float, float], ...] = ()
    still: bool = False

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)``."""
        return (self.x, self.y, self.w, self.h)

    @property
    def eyes(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        """``(right eye, left eye)`` (the person's right and left, i.e. image left and right
        for a face looking at the camera), or ``None`` without keypoints."""
        if len(self.keypoints) < 2:
            return None
        return (self.keypoints[0], self.keypoints[1])

    def mapped(self, scale: float, ox: float, oy: float) -> Detection:
        """This detection with every coordinate multiplied by ``scale`` and shifted by
        ``(ox, oy)`` (from a downscaled region back to full-frame pixels)."""
        return Detection(
            self.x * scale + ox,
            self.y * scale + oy,
            self.w * scale,
            self.h * scale,
            self.score,
            tuple((kx * scale + ox, ky * scale + oy) for kx, ky in self.keypoints),
        )


#: Names of the keypoints a detector may report, in order (BlazeFace's six; the person's
#: right and left).
KEYPOINTS: tuple[str, ...] = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_centre",
    "right_ear",
    "left_ear",
)


class FaceDetector(ABC):
    """Base class of every face detector.

    Args:
        detect_width: Frames wider than this are downscaled to this width before detection
            (0 disables downscaling).
        min_face: Smallest face side to report, in full-frame pixels.
        roi_face_px: In a region search around a followed face, the region is resized so that
            face is about this many pixels wide (0: use the full-frame downscale factor). A
            cascade's cost is per pixel and highest on face-like pixels, and a region is mostly
            face, so searching it at ~32 px (the 24 px Haar window still fits) instead of the
            full-frame scale cuts the region search several times over; the box stays within a
            few pixels (mean IoU with the true face 0.91, see docs/PERFORMANCE.md).
    """

    #: Registry key (``haar``, ``yunet``, ``blazeface``).
    type: ClassVar[str] = ""
    #: The classifier's crop is taken around each box scaled by this about its centre (then
    #: widened by the model contract's ``crop_margin``): how this detector's box must be
    #: framed to match the faces the classifier was trained on (see :meth:`crop_box`).
    crop_scale: ClassVar[float] = 1.0
    #: Whether a full-frame pass finds every face a region search would (true for the OpenCV
    #: detectors, which search the downscaled frame at every scale; false for BlazeFace, whose
    #: small input makes small faces too small in a full pass). The scheduler searches the
    #: regions of followed faces and of motion on full passes too when this is false.
    full_pass_finds_all: ClassVar[bool] = True

    def __init__(
        self, *, detect_width: int = 320, min_face: int = 40, roi_face_px: int = 32
    ) -> None:
        self.detect_width = detect_width
        self.min_face = min_face
        self.roi_face_px = roi_face_px
        # One growable scratch buffer for every downscaled image (full frame or region): region
        # sizes change every frame, so per-shape buffers would mean an allocation per frame.
        self._scratch = np.empty(0, np.uint8)

    def crop_box(self, d: Detection) -> tuple[float, float, float, float]:
        """The box the classifier's crop is cut around: ``d``'s box scaled by
        :attr:`crop_scale` about its centre (the box itself when the scale is 1)."""
        if self.crop_scale == 1.0:
            return d.bbox
        k = self.crop_scale
        return (d.x + d.w * (1 - k) / 2, d.y + d.h * (1 - k) / 2, d.w * k, d.h * k)

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: Any) -> FaceDetector:
        """Build the detector from its ``[detector]`` config class (:mod:`edge.detect.config`).

        Raises:
            DetectorError: naming the file and what was expected when a file is missing or bad.
        """

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
        *,
        roi_face_px: int | None = None,
    ) -> list[Detection]:
        """Find faces in a gray frame, optionally only inside ``roi``.

        Args:
            gray: Full 2-D uint8 frame.
            roi: Optional ``(x, y, w, h)`` region (full-frame pixels, clipped to the frame). The
                region is downscaled by the same factor as a full frame, so ``min_face`` means
                the same in both cases.
            face_side: Expected face side (full-frame pixels) of a followed face: the search
                is limited to :data:`ROI_SIDE_RANGE` of it and the region is resized so the face
                is ``roi_face_px`` wide, which makes a region search much cheaper.
            roi_face_px: Override :attr:`roi_face_px` for this call (0: full-frame scale).

        Returns:
            Detections in full-frame pixels.
        """
        fh, fw = gray.shape[:2]
        s = self.scale_for(fw)
        target = self.roi_face_px if roi_face_px is None else roi_face_px
        if roi is not None and face_side is not None and face_side > 0 and target > 0:
            # Region search: scale by the followed face, not the frame (see roi_face_px).
            s = min(1.0, target / float(face_side))
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
            lo, hi = ROI_SIDE_RANGE
            min_side = max(min_side, round(lo * face_side * s))
            max_side = max(min_side + 1, round(hi * face_side * s))
        inv = 1.0 / s
        return [d.mapped(inv, ox, oy) for d in self._detect(small, min_side, max_side)]

    def _downscale(self, region: np.ndarray, s: float) -> np.ndarray:
        if s >= 1.0:
            return region
        import cv2

        h, w = region.shape[:2]
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        if self._scratch.size < sh * sw:
            self._scratch = np.empty(sh * sw, np.uint8)
        # A C-contiguous view of the scratch buffer: cv2.resize writes into it in place.
        buf = self._scratch[: sh * sw].reshape(sh, sw)
        cv2.resize(region, (sw, sh), dst=buf, interpolation=cv2.INTER_AREA)
        return buf

    @abstractmethod
    def _detect(self, small: np.ndarray, min_side: int, max_side: int = 0) -> list[Detection]:
        """Detect on an already downscaled gray image.

        Args:
            small: 2-D uint8 image.
            min_side: Smallest face side in ``small``'s pixels.
            max_side: Largest face side in ``small``'s pixels (0: no limit).

        Returns:
            Detections (with keypoints where the detector has them) in ``small``'s pixels.
        """
