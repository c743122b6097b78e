"""Test helpers: real FER2013 faces placed on a larger canvas, written as a video or images.

FER2013 crops are tight 48x48 faces; upscaled and placed with a margin on a plain canvas they
look like a face in a camera frame, which is what the detector and the pipeline need. Nothing
here is written into the repository: callers pass a tmp_path.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CANVAS = (480, 640)  # height, width


def load_fer_faces(csv_path: Path, n: int, skip: int = 0) -> list[np.ndarray]:
    """Read ``n`` 48x48 uint8 faces from a FER2013 CSV (plain or .gz), after ``skip`` rows."""
    opener = gzip.open if str(csv_path).endswith(".gz") else open
    faces: list[np.ndarray] = []
    with opener(csv_path, "rt") as fh:  # type: ignore[operator]
        for i, row in enumerate(csv.DictReader(fh)):
            if i < skip:
                continue
            faces.append(np.array(row["pixels"].split(), np.uint8).reshape(48, 48))
            if len(faces) == n:
                break
    return faces


def place(canvas: np.ndarray, face: np.ndarray, x: int, y: int, side: int) -> None:
    """Paste ``face`` resized to ``side`` x ``side`` at (x, y) into a gray canvas (in place)."""
    canvas[y : y + side, x : x + side] = cv2.resize(
        face, (side, side), interpolation=cv2.INTER_LINEAR
    )


def blank(value: int = 120) -> np.ndarray:
    """A plain gray canvas."""
    return np.full(CANVAS, value, np.uint8)


@dataclass
class Placement:
    """Where a face is in each frame it is visible in."""

    face_index: int
    frames: range
    side: int
    start_xy: tuple[int, int]
    step_xy: tuple[int, int]

    def box(self, frame: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the face in ``frame``."""
        k = frame - self.frames.start
        return (
            self.start_xy[0] + k * self.step_xy[0],
            self.start_xy[1] + k * self.step_xy[1],
            self.side,
            self.side,
        )


def render(faces: list[np.ndarray], placements: list[Placement], n_frames: int) -> list[np.ndarray]:
    """BGR frames with each placement's face drawn where and when it is visible."""
    out = []
    for f in range(n_frames):
        c = blank()
        for p in placements:
            if f in p.frames:
                x, y, s, _ = p.box(f)
                place(c, faces[p.face_index], x, y, s)
        out.append(cv2.cvtColor(c, cv2.COLOR_GRAY2BGR))
    return out


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write BGR frames as MJPG AVI (OpenCV's built-in codec)."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert vw.isOpened(), f"cannot write {path}"
    for f in frames:
        vw.write(f)
    vw.release()
    return path


def detectable(faces: list[np.ndarray], side: int = 120, want: int = 2) -> list[int]:
    """Indices of the first ``want`` faces that OpenCV's Haar cascade finds at this size.

    FER2013 contains faces Haar misses (profiles, occlusions, drawings); a pipeline test needs
    faces a detector can see, the detector test measures recall on unfiltered faces.
    """
    from edge.detect import HaarDetector

    det = HaarDetector(detect_width=640, min_face=40)
    chosen = []
    for i, face in enumerate(faces):
        c = blank()
        place(c, face, 200, 150, side)
        hits = det.detect(c)
        if len(hits) == 1 and abs(hits[0].x + hits[0].w / 2 - (200 + side / 2)) < side / 4:
            chosen.append(i)
            if len(chosen) == want:
                break
    return chosen
