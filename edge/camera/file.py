"""File source: a video file or a folder of images, for replays, tests and the bundled sample.

By default every frame is delivered as fast as the pipeline takes them (nothing dropped, results
reproducible). With ``realtime=True`` the file is paced at its native frame rate and read by a
capture thread that keeps only the newest frame, so a replay behaves like a camera.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from edge.camera.base import FrameSource
from edge.camera.config import FileSourceConfig
from edge.errors import SourceError

log = logging.getLogger(__name__)

#: Extensions read from an image folder (lower case).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff"})

_DEFAULT_VIDEO_FPS = 25.0


class FileSource(FrameSource):
    """Frames from a video file or an image folder.

    Args:
        path: Video file (anything OpenCV's bundled decoders read) or a folder of images
            (sorted by name).
        realtime: Pace frames at the native frame rate and keep only the newest one.
        loop: Start again at the end instead of finishing.
        fps: Frame rate of an image folder, or an override of the video's own rate.
    """

    type = "file"
    config_class = FileSourceConfig

    def __init__(
        self,
        path: str | Path,
        *,
        realtime: bool = False,
        loop: bool = False,
        fps: float | None = None,
    ) -> None:
        super().__init__(live=realtime)
        self.path = Path(path)
        self.realtime = realtime
        self.loop = loop
        self._fps_override = fps
        self.fps = fps or _DEFAULT_VIDEO_FPS
        self._cap: object | None = None
        self._images: list[Path] = []
        self._pos = 0  # frames delivered since the start (all loops)
        self._in_pass = 0  # position within the current pass
        self._t0 = 0.0

    @classmethod
    def from_config(cls, cfg: FileSourceConfig) -> FileSource:
        """Build from a ``[source]`` table of type ``file``."""
        return cls(cfg.resolved_path(), realtime=cfg.realtime, loop=cfg.loop, fps=cfg.fps)

    def describe(self) -> str:
        """The file path and mode."""
        mode = "realtime" if self.realtime else "every frame"
        return f"file {self.path} ({mode}{', loop' if self.loop else ''})"

    def _open(self) -> None:
        if self.path.is_dir():
            self._images = sorted(
                p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not self._images:
                raise SourceError(
                    f"image folder {self.path} has no images "
                    f"(extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})"
                )
            self.fps = self._fps_override or 10.0
        elif self.path.is_file():
            self._open_video()
        else:
            raise SourceError(f"source file {self.path} does not exist")
        self._t0 = time.monotonic()

    def _open_video(self) -> None:
        import cv2

        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"video file {self.path} cannot be opened by OpenCV")
        native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if self._fps_override:
            self.fps = self._fps_override
        elif 0.5 <= native <= 1000.0:
            self.fps = native
        self._cap = cap

    def _grab(self) -> np.ndarray | None:
        image = self._next_image()
        if image is None and self.loop and self._in_pass > 0:
            # Rewind; a file that delivered nothing in a whole pass ends instead of spinning.
            self._rewind()
            image = self._next_image()
        if image is None:
            return None
        if self.realtime:
            # Sleep until this frame's due time on the native clock (stoppable).
            due = self._t0 + self._pos / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        self._pos += 1
        self._in_pass += 1
        return image

    def _next_image(self) -> np.ndarray | None:
        if self._images:
            if self._in_pass >= len(self._images):
                return None
            import cv2

            p = self._images[self._in_pass]
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if img is None:
                # Deliver an empty frame so the pipeline counts it as corrupt and moves on.
                log.warning("cannot decode image %s", p)
                return np.empty((0, 0), np.uint8)
            return img
        cap = self._cap
        if cap is None:
            return None
        ok, img = cap.read()  # type: ignore[attr-defined]
        return img if ok else None

    def _rewind(self) -> None:
        self._in_pass = 0
        if self._cap is not None:
            import cv2

            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # type: ignore[attr-defined]

    def _timestamp(self) -> float:
        if self.realtime:
            return time.monotonic()
        # Media time: periodic tracking updates then follow the video, not the CPU speed.
        return (self._pos - 1) / self.fps

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()  # type: ignore[attr-defined]
            self._cap = None
