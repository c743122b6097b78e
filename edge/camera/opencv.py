"""OpenCV source: a USB camera by index, a GStreamer pipeline (Jetson CSI) or an RTSP/HTTP URL.

Cameras and streams come and go (a loose USB cable, a restarting IP camera), so opening is
retried with exponential backoff until ``open_timeout_s`` has passed; only then does it fail with
a :class:`SourceError`. A stream that stops delivering frames while running is reopened the same
way from the capture thread.

Jetson CSI example (``device`` value)::

    nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1
    ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR
    ! appsink drop=true max-buffers=1
"""

from __future__ import annotations

import logging
import re
import time

import numpy as np

from edge.camera.base import FrameSource, backoff_delays
from edge.camera.config import OpenCVSourceConfig
from edge.errors import SourceError
from edge.redact import mask_url

log = logging.getLogger(__name__)

_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


def device_kind(device: int | str) -> str:
    """Classify an OpenCV device spec as ``index``, ``gstreamer`` or ``url``.

    Raises:
        SourceError: for a string that is none of them.
    """
    if isinstance(device, int) or (isinstance(device, str) and device.isdigit()):
        return "index"
    if "!" in device:
        return "gstreamer"
    if _URL_RE.match(device):
        return "url"
    raise SourceError(
        f"opencv source device {device!r} is not a camera index, a GStreamer pipeline "
        "(contains '!') or a URL (rtsp://, http://, ...)"
    )


class OpenCVSource(FrameSource):
    """Live frames through ``cv2.VideoCapture`` with a newest-frame capture thread.

    Args:
        device: Camera index (``0``), GStreamer pipeline string ending in ``appsink``, or URL.
        width: Requested capture width (USB cameras; ignored when unsupported).
        height: Requested capture height.
        fps: Requested capture frame rate.
        open_timeout_s: Give up (SourceError) when the device has not opened for this long.
        backoff_max_s: Upper bound of the doubling delay between (re)open attempts.
    """

    type = "opencv"
    config_class = OpenCVSourceConfig

    def __init__(
        self,
        device: int | str = 0,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        open_timeout_s: float = 30.0,
        backoff_max_s: float = 2.0,
    ) -> None:
        # A driver error while reading (cv2.error) is handled by the base class reopen; a stream
        # that merely stops delivering is reopened by _grab below, with the same backoff.
        super().__init__(live=True, reopen_timeout_s=open_timeout_s, backoff_max_s=backoff_max_s)
        self.kind = device_kind(device)
        self.device: int | str = int(device) if self.kind == "index" else device
        self.width = width
        self.height = height
        self.fps = fps
        self.open_timeout_s = open_timeout_s
        self._cap: object | None = None
        self.reconnects = 0

    @classmethod
    def from_config(cls, cfg: OpenCVSourceConfig) -> OpenCVSource:
        """Build from a ``[source]`` table of type ``opencv``."""
        return cls(
            cfg.device,
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            open_timeout_s=cfg.open_timeout_s,
            backoff_max_s=cfg.backoff_max_s,
        )

    def describe(self) -> str:
        """Device description without credentials."""
        if self.kind == "url":
            return f"opencv url {mask_url(str(self.device))}"
        return f"opencv {self.kind} {self.device}"

    def _try_open(self) -> bool:
        import cv2

        if self.kind == "index":
            cap = cv2.VideoCapture(int(self.device))
        elif self.kind == "gstreamer":
            cap = cv2.VideoCapture(str(self.device), cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(str(self.device), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            return False
        if self.kind == "index":
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
            # A one-frame driver queue: old frames must not pile up in front of the newest.
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap
        return True

    def _open_with_backoff(self) -> None:
        deadline = time.monotonic() + self.open_timeout_s
        delays = backoff_delays(self.backoff_min_s, self.backoff_max_s)
        attempt = 0
        while True:
            attempt += 1
            if self._try_open():
                if attempt > 1:
                    log.info("%s opened after %d attempts", self.describe(), attempt)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.stopping:
                raise SourceError(
                    f"{self.describe()} did not open within {self.open_timeout_s:g} s "
                    f"({attempt} attempts); check the device/URL and permissions (video group)"
                )
            delay = min(next(delays), remaining)
            log.warning("%s cannot be opened; retrying in %.1f s", self.describe(), delay)
            if self._stop.wait(delay):
                raise SourceError(f"{self.describe()}: stopped while waiting to open")

    def _open(self) -> None:
        self._open_with_backoff()

    def _grab(self) -> np.ndarray | None:
        while not self.stopping:
            cap = self._cap
            if cap is not None:
                ok, img = cap.read()  # type: ignore[attr-defined]
                if ok and img is not None:
                    return img
                log.warning("%s stopped delivering frames; reopening", self.describe())
                self._close()
            self.reconnects += 1
            try:
                self._open_with_backoff()
            except SourceError:
                if self.stopping:
                    return None
                raise
        return None

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()  # type: ignore[attr-defined]
            self._cap = None

    def stats(self) -> dict[str, int]:
        """Base counters plus ``reconnects``."""
        s = super().stats()
        s["reconnects"] = self.reconnects
        return s
