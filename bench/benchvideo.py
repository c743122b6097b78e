"""The benchmark video: 640x480, one face per frame, ground-truth face box known for every frame.

The imagery is NASA's portrait of astronaut Eileen Collins (public domain, a work of the U.S.
federal government), the image scikit-image ships as ``skimage/data/astronaut.png``. It is not
in the repository: pass its path (``--portrait``), or have scikit-image installed. To get the file
without installing scikit-image::

    pip download scikit-image --no-deps -d /tmp/sk
    unzip -o -j /tmp/sk/scikit_image-*.whl skimage/data/astronaut.png -d /tmp/bench

The video is a slow zoom and sway of a 4:3 window over the portrait, upscaled to 640x480, so the
face moves by a few pixels per frame and its side varies between ~120 and ~165 pixels, like a
person in front of a camera. Because every frame is a known affine map of the portrait, the face
box of every frame follows from the face box in the portrait (:data:`FACE_BOX`): that is the
ground truth detection recall is measured against.

Usage (writes the video and a ``.truth.json`` next to it)::

    python3 bench/benchvideo.py --portrait /tmp/bench/astronaut.png --out /tmp/bench/astro640.avi
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SIZE = (640, 480)  # width, height
FPS = 15.0
FRAMES = 300
QUALITY = 90  # MJPG quality: high, so both detectors see nearly the raw pixels
#: Face box ``(x, y, w, h)`` in the 512x512 portrait (OpenCV's frontal Haar cascade box on the
#: full-resolution portrait, checked by eye: brow to chin, ear to ear).
FACE_BOX = (177.0, 66.0, 95.0, 95.0)

Box = tuple[float, float, float, float]


def load_portrait(path: Path | None) -> np.ndarray:
    """The astronaut portrait as BGR uint8 (512x512), from ``path`` or scikit-image."""
    import cv2

    if path is not None:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read portrait {path}")
        return img
    try:
        from skimage import data
    except ImportError:
        raise SystemExit(
            "no --portrait given and scikit-image is not installed; see the module docstring"
        ) from None
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def windows(n: int = FRAMES) -> list[tuple[float, float, float]]:
    """``(x0, y0, width)`` of the portrait window shown in each frame (height = width * 3/4)."""
    out = []
    for i in range(n):
        t = i / max(1, n - 1)
        # Two zoom cycles and three sway cycles over the clip: the face keeps moving.
        w = 430.0 + 60.0 * np.cos(2 * 2 * np.pi * t)  # 370..490 px of the portrait
        h = w * SIZE[1] / SIZE[0]
        cx = 236.0 + 12.0 * np.sin(3 * 2 * np.pi * t)
        cy = 150.0 + 30.0 * np.sin(2 * np.pi * t)
        x0 = float(np.clip(cx - w / 2, 0, 512 - w))
        y0 = float(np.clip(cy - h / 2, 0, 512 - h))
        out.append((x0, y0, w))
    return out


def truth_box(win: tuple[float, float, float]) -> Box:
    """The face box in frame pixels for a window ``(x0, y0, width)``."""
    x0, y0, w = win
    s = SIZE[0] / w
    fx, fy, fw, fh = FACE_BOX
    return ((fx - x0) * s, (fy - y0) * s, fw * s, fh * s)


def render(portrait: np.ndarray, n: int = FRAMES) -> tuple[list[np.ndarray], list[Box]]:
    """BGR frames and the ground-truth face box of each."""
    import cv2

    frames, truths = [], []
    for win in windows(n):
        x0, y0, w = win
        h = w * SIZE[1] / SIZE[0]
        s = SIZE[0] / w
        # Sub-pixel window through an affine warp: smooth motion, exact ground truth.
        m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], np.float64)
        frames.append(cv2.warpAffine(portrait, m, SIZE, flags=cv2.INTER_LINEAR))
        truths.append(truth_box(win))
        assert h <= 512
    return frames, truths


def write_mjpg(
    frames: Sequence[np.ndarray], out: Path, fps: float, size: tuple[int, int], quality: int
) -> None:
    """Write BGR ``frames`` as Motion-JPEG AVI (OpenCV's built-in codec) atomically.

    The file is world-readable (mkstemp creates 0600): the bundled sample ships in the package.
    """
    import cv2

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".avi", dir=out.parent)
    os.close(fd)
    vw = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    vw.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
    for f in frames:
        vw.write(f)
    vw.release()
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)


def write(out: Path, portrait: np.ndarray, n: int = FRAMES) -> Path:
    """Write the MJPG video and ``<out>.truth.json`` atomically; return the truth path."""
    frames, truths = render(portrait, n)
    write_mjpg(frames, out, FPS, SIZE, QUALITY)
    truth = out.with_suffix(".truth.json")
    payload = {"size": list(SIZE), "fps": FPS, "boxes": [[round(v, 2) for v in b] for b in truths]}
    truth.write_text(json.dumps(payload) + "\n")
    return truth


def load_truth(video: Path) -> list[Box]:
    """Ground-truth boxes written next to ``video`` by :func:`write`."""
    data = json.loads(video.with_suffix(".truth.json").read_text())
    return [tuple(b) for b in data["boxes"]]  # type: ignore[misc]


def hit(det: Sequence[float], truth: Sequence[float]) -> bool:
    """A detection matches the truth: centre within a third of the side, size within 0.5-2x."""
    x, y, w, h = det
    tx, ty, tw, th = truth
    return (
        abs(x + w / 2 - (tx + tw / 2)) < tw / 3
        and abs(y + h / 2 - (ty + th / 2)) < th / 3
        and 0.5 * tw < w < 2.0 * tw
    )


def score(per_frame: Sequence[Sequence[Sequence[float]]], truths: Sequence[Box]) -> dict:
    """Recall (frames whose face was found) and false positives (boxes matching no face)."""
    found = sum(any(hit(d, t) for d in dets) for dets, t in zip(per_frame, truths, strict=True))
    fp = sum(sum(not hit(d, t) for d in dets) for dets, t in zip(per_frame, truths, strict=True))
    n = len(truths)
    return {"frames": n, "found": found, "recall": round(found / n, 4), "false_positives": fp}


def main() -> None:
    """Write the benchmark video and its ground truth."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portrait", type=Path, help="astronaut.png (default: from scikit-image)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench/astro640.avi"))
    ap.add_argument("--frames", type=int, default=FRAMES)
    args = ap.parse_args()
    truth = write(args.out, load_portrait(args.portrait), args.frames)
    print(f"{args.out}: {args.frames} frames {SIZE[0]}x{SIZE[1]}; ground truth {truth}")


if __name__ == "__main__":
    main()
