"""Test helpers: real FER2013 faces placed on a larger canvas, written as a video or images.

FER2013 crops are tight 48x48 faces; upscaled and placed with a margin on a plain canvas they
look like a face in a camera frame, which is what the detector and the pipeline need. Nothing
here is written into the repository: callers pass a tmp_path.

By default the canvas is a perfectly still, noise-free gray, which flatters anything that looks
at frame differences (the motion-gated detection schedule). :class:`Camera` adds what a real
fixed camera delivers: a textured room background, per-frame sensor noise, a slow exposure
drift and sudden brightness steps (a lamp); :data:`REALISTIC` is the setting the benchmarks use.
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


def place(
    canvas: np.ndarray, face: np.ndarray, x: int, y: int, side: int, roll: float = 0.0
) -> None:
    """Paste ``face`` resized to ``side`` x ``side`` at (x, y) into a gray canvas (in place).

    A face partly outside the canvas (walking in) is clipped; one entirely outside is skipped.
    With ``roll`` (degrees, counter-clockwise on screen, as ``cv2.getRotationMatrix2D``) the
    square is turned about its centre and only the turned square is pasted (the corners of the
    box stay background), like a tilted head.
    """
    resized = cv2.resize(face, (side, side), interpolation=cv2.INTER_LINEAR)
    h, w = canvas.shape[:2]
    if roll:
        m = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), roll, 1.0)
        m[:, 2] += (x, y)
        warped = cv2.warpAffine(resized, m, (w, h), flags=cv2.INTER_LINEAR)
        mask = cv2.warpAffine(np.full((side, side), 255, np.uint8), m, (w, h))
        inside = mask > 127
        canvas[inside] = warped[inside]
        return
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + side), min(h, y + side)
    if x1 <= x0 or y1 <= y0:
        return
    canvas[y0:y1, x0:x1] = resized[y0 - y : y1 - y, x0 - x : x1 - x]


def blank(value: int = 120) -> np.ndarray:
    """A plain gray canvas."""
    return np.full(CANVAS, value, np.uint8)


@dataclass
class Placement:
    """Where a face is in each frame it is visible in.

    The face moves by ``step_xy`` per frame; with ``moving_frames`` set it stops after that
    many frames (a person who walks in and stays). It may start partly outside the canvas.
    """

    face_index: int
    frames: range
    side: int
    start_xy: tuple[int, int]
    step_xy: tuple[int, int]
    moving_frames: int | None = None
    roll: float = 0.0

    def box(self, frame: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of the face in ``frame``."""
        k = frame - self.frames.start
        if self.moving_frames is not None:
            k = min(k, self.moving_frames)
        return (
            self.start_xy[0] + k * self.step_xy[0],
            self.start_xy[1] + k * self.step_xy[1],
            self.side,
            self.side,
        )

    def inside(self, frame: int, size: tuple[int, int] = CANVAS) -> bool:
        """Whether the face is visible and entirely inside a canvas of ``size`` (h, w)."""
        if frame not in self.frames:
            return False
        x, y, s, _ = self.box(frame)
        return x >= 0 and y >= 0 and x + s <= size[1] and y + s <= size[0]


@dataclass(frozen=True)
class Camera:
    """What a real fixed camera adds to a synthetic scene (everything off by default).

    Attributes:
        noise_sigma: Gaussian sensor noise, gray levels per pixel, new in every frame.
        exposure_amplitude: Auto-exposure drift: the frame is scaled by
            ``1 + amplitude * sin(2 pi frame / exposure_period)``.
        exposure_period: Frames per exposure cycle.
        exposure_steps: ``(frame, factor)``: from that frame on, brightness is multiplied by
            ``factor`` (a lamp switched on or off); steps multiply.
        textured: A textured room background (smooth shading, furniture edges, fine grain)
            instead of the flat gray canvas.
        pan_px: The camera pans right by this many pixels per frame over the textured
            background (0: fixed camera). Faces are placed in frame coordinates: give them
            ``step_xy = (-pan_px, 0)`` to keep them still in the room.
        seed: Seed of the background and the noise (the same seed renders the same video).
        light_gradient: Uneven light (a window on one side): brightness falls linearly from
            ``1 + g`` at the top-left corner to ``1 - g`` at the bottom-right, faces included.
    """

    noise_sigma: float = 0.0
    exposure_amplitude: float = 0.0
    exposure_period: float = 150.0
    exposure_steps: tuple[tuple[int, float], ...] = ()
    textured: bool = False
    pan_px: int = 0
    seed: int = 0
    light_gradient: float = 0.0

    def gain(self, frame: int) -> float:
        """Brightness factor of ``frame``."""
        g = 1.0 + self.exposure_amplitude * float(
            np.sin(2.0 * np.pi * frame / self.exposure_period)
        )
        for start, factor in self.exposure_steps:
            if frame >= start:
                g *= factor
        return g


#: A fixed indoor camera: textured background, noise of 3 gray levels, +-6 % exposure drift
#: over 150 frames (10 s at 15 fps).
REALISTIC = Camera(noise_sigma=3.0, exposure_amplitude=0.06, textured=True, seed=7)


def room(seed: int = 0, width: int | None = None) -> np.ndarray:
    """A textured gray background: smooth shading, a few rectangles with edges (furniture, a
    door, pictures) and fixed fine grain, in the 40-200 gray range.

    Args:
        seed: Random seed.
        width: Width in pixels (default: the canvas width; wider for a panning camera, with
            the same density of shading and rectangles).
    """
    rng = np.random.default_rng(seed)
    h, w = CANVAS[0], width or CANVAS[1]
    cols = max(8, round(8 * w / CANVAS[1]))
    shade = cv2.resize(rng.uniform(70, 170, (6, cols)), (w, h), interpolation=cv2.INTER_CUBIC)
    for _ in range(round(7 * w / CANVAS[1])):
        x0, y0 = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        x1, y1 = x0 + int(rng.integers(40, 220)), y0 + int(rng.integers(40, 200))
        shade[y0:y1, x0:x1] += rng.uniform(-45, 45)  # type: ignore[arg-type]  # float image
    grain = cv2.GaussianBlur(rng.normal(0, 6, (h, w)), (0, 0), 1.2)
    return np.clip(shade + grain, 40, 200).astype(np.uint8)


def render(
    faces: list[np.ndarray],
    placements: list[Placement],
    n_frames: int,
    camera: Camera | None = None,
) -> list[np.ndarray]:
    """BGR frames with each placement's face drawn where and when it is visible.

    Args:
        faces: 48x48 faces.
        placements: Where each face is, per frame.
        n_frames: Frames to render.
        camera: Background, noise and exposure (default: flat gray, no noise).
    """
    return [
        cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        for g in render_gray(faces, placements, n_frames, camera)
    ]


def render_gray(
    faces: list[np.ndarray],
    placements: list[Placement],
    n_frames: int,
    camera: Camera | None = None,
) -> list[np.ndarray]:
    """Like :func:`render`, as 2-D gray frames (what the detector scheduler takes)."""
    cam = camera or Camera()
    pan = cam.pan_px if cam.textured else 0
    bg = room(cam.seed, CANVAS[1] + pan * n_frames) if cam.textured else blank()
    rng = np.random.default_rng(cam.seed + 1)
    plain = (
        cam.noise_sigma == 0
        and cam.exposure_amplitude == 0
        and not cam.exposure_steps
        and cam.light_gradient == 0
    )
    light = _light_field(cam.light_gradient) if cam.light_gradient else None
    out = []
    for f in range(n_frames):
        c = bg[:, f * pan : f * pan + CANVAS[1]].copy()
        for p in placements:
            if f in p.frames:
                x, y, s, _ = p.box(f)
                place(c, faces[p.face_index], x, y, s, p.roll)
        out.append(c if plain else _expose(c, cam, f, light, rng))
    return out


def _light_field(gradient: float) -> np.ndarray:
    """Per-pixel gain of a light falling off from the top-left corner by ``gradient``."""
    yy, xx = np.mgrid[0 : CANVAS[0], 0 : CANVAS[1]].astype(np.float32)
    t = (xx / CANVAS[1] + yy / CANVAS[0]) / 2.0  # 0 top-left .. 1 bottom-right
    return (1.0 + gradient * (1.0 - 2.0 * t)).astype(np.float32)


def _expose(
    c: np.ndarray, cam: Camera, f: int, light: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """Frame ``f`` as the camera sees it: exposure gain, uneven light, sensor noise."""
    v = c.astype(np.float32) * cam.gain(f)
    if light is not None:
        v *= light
    if cam.noise_sigma > 0:
        v += rng.normal(0.0, cam.noise_sigma, v.shape).astype(np.float32)
    return np.clip(v + 0.5, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """Write BGR frames as MJPG AVI (OpenCV's built-in codec)."""
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))  # type: ignore[attr-defined]
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
