"""YuNet face detector through ``cv2.FaceDetectorYN`` with a user-supplied ONNX file.

The ONNX file (``face_detection_yunet_2023mar.onnx`` from the OpenCV model zoo) is never shipped
with fer-edge; download it yourself and set ``detector.model`` to its path. YuNet is more
accurate than Haar on rotated and partly occluded faces, at a higher CPU cost.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edge.detect.base import Detection, FaceDetector
from edge.errors import DetectorError

log = logging.getLogger(__name__)


class YuNetDetector(FaceDetector):
    """``cv2.FaceDetectorYN`` on a downscaled frame.

    Args:
        model: Path of the YuNet ONNX file.
        detect_width: See :class:`FaceDetector`.
        min_face: See :class:`FaceDetector`.
        score_threshold: Minimum face score.
        nms_threshold: Non-maximum suppression IoU threshold.
        top_k: Candidates kept before NMS.
        roi_face_px: See :class:`~edge.detect.base.FaceDetector`.
    """

    type = "yunet"

    def __init__(
        self,
        model: str | Path | None,
        *,
        detect_width: int = 320,
        min_face: int = 40,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
        top_k: int = 50,
        roi_face_px: int = 32,
    ) -> None:
        super().__init__(detect_width=detect_width, min_face=min_face, roi_face_px=roi_face_px)
        if model is None:
            raise DetectorError(
                "detector.type = 'yunet' needs detector.model = path of the YuNet ONNX file "
                "(face_detection_yunet_2023mar.onnx from the OpenCV model zoo; not shipped)"
            )
        path = Path(model).expanduser()
        if not path.is_file():
            raise DetectorError(f"YuNet ONNX model {path} not found (detector.model)")
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise DetectorError(
                "this OpenCV build has no cv2.FaceDetectorYN (needs OpenCV >= 4.5.4)"
            )
        try:
            self._det = cv2.FaceDetectorYN.create(
                str(path), "", (320, 320), score_threshold, nms_threshold, top_k
            )
        except cv2.error as e:
            raise DetectorError(f"YuNet ONNX model {path} could not be loaded: {e}") from None
        self.path = path
        self._size: tuple[int, int] = (320, 320)
        self._bgr: np.ndarray | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> YuNetDetector:
        """Build from a :class:`~edge.detect.config.YuNetConfig`."""
        return cls(
            cfg.model,
            detect_width=cfg.detect_width,
            min_face=cfg.min_face,
            score_threshold=cfg.score_threshold,
            nms_threshold=cfg.nms_threshold,
            roi_face_px=cfg.roi_face_px,
        )

    def _detect(self, small: np.ndarray, min_side: int, max_side: int = 0) -> list[Detection]:
        import cv2

        h, w = small.shape[:2]
        if (w, h) != self._size:
            self._det.setInputSize((w, h))
            self._size = (w, h)
        # YuNet expects 3 channels; gray replicated into a reused buffer.
        if self._bgr is None or self._bgr.shape[:2] != (h, w):
            self._bgr = np.empty((h, w, 3), np.uint8)
        cv2.cvtColor(small, cv2.COLOR_GRAY2BGR, dst=self._bgr)
        _, faces = self._det.detect(self._bgr)
        if faces is None:
            return []
        out = []
        for f in faces:
            x, y, fw, fh = (float(v) for v in f[:4])
            if min(fw, fh) < min_side or (max_side and max(fw, fh) > max_side):
                continue
            # f[4:14]: right eye, left eye, nose tip, right and left mouth corner; the first three
            # are the first three of KEYPOINTS (enough for eye alignment).
            kps = tuple((float(f[4 + 2 * k]), float(f[5 + 2 * k])) for k in range(3))
            out.append(Detection(x, y, fw, fh, float(f[-1]), kps))
        return out
