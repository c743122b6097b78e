"""Make the bundled sample video ``edge/samples/astronaut.avi`` (run by hand, not at install).

The imagery is NASA's portrait of astronaut Eileen Collins (public domain, a work of the U.S.
federal government), as shipped by scikit-image as ``skimage.data.astronaut()``. scikit-image is
NOT a fer-edge dependency: install it in a throwaway venv to regenerate the file::

    python3 -m venv /tmp/sk && /tmp/sk/bin/pip install scikit-image "opencv-python-headless<5" numpy
    /tmp/sk/bin/python bench/make_sample.py            # writes edge/samples/astronaut.avi

The video is a slow pan and zoom around the face (so the face box moves and changes size like
a person in front of a camera), 320x240 pixels, 10 frames per second, 4 seconds, Motion-JPEG in
AVI: OpenCV decodes MJPG with its built-in codec, without FFmpeg extras.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from benchvideo import write_mjpg  # same folder: bench/ is sys.path[0] when run as a script

OUT = Path(__file__).resolve().parents[1] / "edge" / "samples" / "astronaut.avi"
SIZE = (320, 240)  # width, height
FPS = 10
SECONDS = 4
QUALITY = 70  # MJPG quality: keeps the file well under 1 MB


def load_portrait(npy: Path | None) -> np.ndarray:
    """Return the astronaut portrait as a BGR uint8 array (512x512)."""
    if npy is not None:
        rgb = np.load(npy)
    else:
        from skimage import data  # only needed to regenerate the sample

        rgb = data.astronaut()
    return np.ascontiguousarray(rgb[:, :, ::-1])  # RGB -> BGR for OpenCV


def frames(portrait: np.ndarray) -> list[np.ndarray]:
    """The pan/zoom sequence: a 4:3 window moving over the portrait, face always inside."""
    import cv2

    n = FPS * SECONDS
    out = []
    for i in range(n):
        t = i / (n - 1)
        # Window width shrinks from 380 to 280 px (zoom in) while the centre sways around the
        # face; the shuttle and flag at the image edges stay mostly out of view (Haar false
        # positives there would add spurious tracks).
        ease = 0.5 - 0.5 * np.cos(np.pi * t)
        w = 380 - 100 * ease
        h = w * SIZE[1] / SIZE[0]
        cx = 224 + 25 * np.sin(2 * np.pi * t)
        cy = 150 + 25 * np.sin(np.pi * t)
        x0 = int(np.clip(cx - w / 2, 0, 512 - w))
        y0 = int(np.clip(cy - h / 2, 0, 512 - h))
        crop = portrait[y0 : y0 + int(h), x0 : x0 + int(w)]
        out.append(cv2.resize(crop, SIZE, interpolation=cv2.INTER_AREA))
    return out


def main() -> None:
    """Write the sample video atomically and report Haar detections per frame."""
    import cv2

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npy", type=Path, help="astronaut RGB array saved with numpy.save")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    seq = frames(load_portrait(args.npy))
    write_mjpg(seq, args.out, FPS, SIZE, QUALITY)

    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    counts = [
        len(cascade.detectMultiScale(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), 1.1, 5, minSize=(40, 40)))
        for f in seq
    ]
    print(
        f"{args.out}: {len(seq)} frames, {args.out.stat().st_size} bytes; Haar boxes per frame: "
        f"{counts.count(1)} with one, {counts.count(0)} with none, "
        f"{sum(c > 1 for c in counts)} with more"
    )


if __name__ == "__main__":
    main()
