"""Raspberry Pi camera through picamera2 (``apt install python3-picamera2``).

picamera2 is imported only inside :meth:`Picamera2Source._open`, so this module imports on any
machine. The camera runs two streams: ``main`` (size configurable, BGR) and a small ``lores``
stream in YUV420. Face detection and classification only need grayscale, and the Y plane of a
YUV420 buffer *is* grayscale, so by default the pipeline reads the lores Y plane and never pays
for a colour conversion.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from edge.camera.base import FrameSource, backoff_delays
from edge.camera.config import Picamera2SourceConfig
from edge.errors import SourceError

log = logging.getLogger(__name__)


class Picamera2Source(FrameSource):
    """Live frames from a Raspberry Pi camera module.

    Args:
        camera_num: Camera index for multi-camera boards.
        main_size: (width, height) of the main stream.
        lores_size: (width, height) of the lores YUV420 stream (must not exceed ``main_size``).
        use_lores: Deliver the lores Y plane (gray, cheap) instead of the main BGR image.
        fps: Requested frame rate (``None``: the sensor mode's default).
        open_timeout_s: Give up (SourceError) when the camera has not opened for this long.
    """

    type = "picamera2"
    config_class = Picamera2SourceConfig

    def __init__(
        self,
        camera_num: int = 0,
        *,
        main_size: tuple[int, int] = (1280, 720),
        lores_size: tuple[int, int] = (640, 360),
        use_lores: bool = True,
        fps: float | None = None,
        open_timeout_s: float = 30.0,
        backoff_max_s: float = 2.0,
    ) -> None:
        # A camera that fails while running is reopened for open_timeout_s (base class).
        super().__init__(live=True, reopen_timeout_s=open_timeout_s, backoff_max_s=backoff_max_s)
        if lores_size[0] > main_size[0] or lores_size[1] > main_size[1]:
            raise SourceError(
                f"picamera2 lores_size {lores_size} must not be larger than main_size {main_size}"
            )
        self.camera_num = camera_num
        self.main_size = main_size
        self.lores_size = lores_size
        self.use_lores = use_lores
        self.fps = fps
        self.open_timeout_s = open_timeout_s
        self._cam: Any = None

    @classmethod
    def from_config(cls, cfg: Picamera2SourceConfig) -> Picamera2Source:
        """Build from a ``[source]`` table of type ``picamera2``."""
        return cls(
            cfg.camera_num,
            main_size=cfg.main_size,
            lores_size=cfg.lores_size,
            use_lores=cfg.use_lores,
            fps=cfg.fps,
            open_timeout_s=cfg.open_timeout_s,
            backoff_max_s=cfg.backoff_max_s,
        )

    def describe(self) -> str:
        """Camera number and the stream that is read."""
        stream = f"lores Y {self.lores_size}" if self.use_lores else f"main BGR {self.main_size}"
        return f"picamera2 camera {self.camera_num} ({stream})"

    def _open(self) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found]
        except ImportError:
            raise SourceError(
                "picamera2 is not installed: on Raspberry Pi OS run `apt install python3-picamera2` "
                "and create the venv with --system-site-packages"
            ) from None
        deadline = time.monotonic() + self.open_timeout_s
        delays = backoff_delays(self.backoff_min_s, self.backoff_max_s)
        while True:
            try:
                self._cam = self._start(Picamera2)
                return
            except (RuntimeError, OSError, IndexError) as e:
                # libcamera reports a busy/absent camera as RuntimeError / IndexError.
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopping:
                    raise SourceError(
                        f"{self.describe()} did not open within {self.open_timeout_s:g} s: {e}"
                    ) from None
                delay = min(next(delays), remaining)
                log.warning(
                    "%s cannot be opened (%s); retrying in %.1f s", self.describe(), e, delay
                )
                self._stop.wait(delay)

    def _start(self, picamera2_class: Any) -> Any:
        """Open, configure (main BGR + lores YUV420 streams) and start the camera."""
        cam = picamera2_class(self.camera_num)
        controls: dict[str, Any] = {}
        if self.fps:
            controls["FrameRate"] = float(self.fps)
        # picamera2's "RGB888" is B,G,R byte order in numpy: what OpenCV calls BGR.
        config = cam.create_video_configuration(
            main={"size": tuple(self.main_size), "format": "RGB888"},
            lores={"size": tuple(self.lores_size), "format": "YUV420"},
            controls=controls,
            buffer_count=4,
        )
        cam.configure(config)
        cam.start()
        return cam

    def _grab(self) -> np.ndarray | None:
        if self._cam is None:
            return None
        if self.use_lores:
            yuv = self._cam.capture_array("lores")
            w, h = self.lores_size
            # YUV420 planar: the first h rows are Y; rows may be padded past w (stride).
            return np.ascontiguousarray(yuv[:h, :w])
        img: np.ndarray = self._cam.capture_array("main")
        return img

    def _close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
            finally:
                self._cam.close()
                self._cam = None
