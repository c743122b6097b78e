"""Frame sources: the small ABC every camera, stream and file backend implements.

A backend implements three hooks: :meth:`FrameSource._open`, :meth:`FrameSource._grab` (one
image, ``None`` at the end of the stream) and :meth:`FrameSource._close`. The base class turns
them into the public :meth:`~FrameSource.open` / :meth:`~FrameSource.read` /
:meth:`~FrameSource.close` API in one of two modes:

* **live** (cameras, streams, a file replayed in real time): a capture thread grabs frames as
  they come and keeps only the newest one. A slow consumer therefore always sees the freshest
  frame and latency never grows; every frame that was overwritten before it was read counts as
  ``dropped``.
* **every frame** (a file read as fast as possible): :meth:`~FrameSource.read` grabs the next
  frame synchronously, so nothing is ever dropped and results are reproducible.

Live sources with ``reopen_timeout_s > 0`` survive a driver failure (a USB camera unplugged, a
CSI cable reseated, a stream server restarting): the capture thread closes the device and calls
``_open()`` again with exponential backoff (``backoff_min_s`` doubling up to ``backoff_max_s``)
until it works or ``reopen_timeout_s`` has passed since the failure; only then is the failure
final (:meth:`~FrameSource.read` raises :class:`SourceError`). While the device is away no frames
flow, so the pipeline stops feeding the systemd watchdog; a driver that hangs inside a read
(instead of failing) is left to that watchdog, which restarts the service.
"""

from __future__ import annotations

import builtins
import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import numpy as np
from pydantic import BaseModel

from edge.contract import to_gray
from edge.errors import SourceError

log = logging.getLogger(__name__)


@dataclass
class Frame:
    """One captured image.

    Attributes:
        image: The pixels: 2-D gray uint8 or 3-D BGR/BGRA uint8 (what the backend delivered; the
            pipeline validates it before use).
        index: Sequence number of the capture (0-based, counts dropped frames too).
        timestamp: Seconds: media time for files read frame by frame, ``time.monotonic()`` at
            capture for live sources. Tracking uses it for periodic updates.
    """

    image: np.ndarray
    index: int
    timestamp: float
    _gray: np.ndarray | None = field(default=None, repr=False)

    @property
    def gray(self) -> np.ndarray:
        """8-bit grayscale version of :attr:`image` (computed once, free for gray sources)."""
        if self._gray is None:
            self._gray = to_gray(self.image)
        return self._gray


class FrameSource(ABC):
    """Base class of every frame source.

    Subclasses set :attr:`type` (the registry key) and implement the three hooks. A source is
    used once: ``open()``, any number of ``read()``, ``close()``; it is also a context manager.
    """

    #: Registry key (``file``, ``opencv``, ``picamera2``): the ``type`` of its ``[source]`` table.
    type: ClassVar[str] = ""
    #: Its ``[source]`` config class (:mod:`edge.camera.config`), the union member for ``type``.
    config_class: ClassVar[builtins.type[BaseModel]]  # `type` is the key here

    def __init__(
        self,
        *,
        live: bool,
        reopen_timeout_s: float = 0.0,
        backoff_min_s: float = 0.25,
        backoff_max_s: float = 2.0,
    ) -> None:
        """Set up the shared state.

        Args:
            live: Capture in a thread and keep only the newest frame.
            reopen_timeout_s: Live sources: after a driver failure, retry ``_open()`` for this
                long before giving up (0: a driver failure is final).
            backoff_min_s: First delay between reopen attempts.
            backoff_max_s: Upper bound of the (doubling) delay between attempts; it bounds how
                long after a device returns the first frame can arrive.
        """
        if backoff_min_s <= 0 or backoff_max_s <= 0:
            raise ValueError(f"backoff delays must be > 0, got {backoff_min_s}, {backoff_max_s}")
        self.reopen_timeout_s = float(reopen_timeout_s)
        # A cap below the first delay simply means: always wait the cap.
        self.backoff_min_s = float(min(backoff_min_s, backoff_max_s))
        self.backoff_max_s = float(backoff_max_s)
        self.reopens = 0
        self._live = live
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._finished = False
        self._error: SourceError | None = None
        self._thread: threading.Thread | None = None
        self._captured = 0
        self._delivered = 0
        self._dropped = 0
        self._opened = False

    @classmethod
    def from_config(cls, cfg: Any) -> FrameSource:
        """Build the (not yet opened) source from its :attr:`config_class` instance.

        Registered backends override it; a source built directly (tests) need not.
        """
        raise NotImplementedError(f"{cls.__name__} is not a configurable source")

    # ---------------------------------------------------------------- backend hooks
    @abstractmethod
    def _open(self) -> None:
        """Open the device/file. Raise :class:`SourceError` when it cannot be opened."""

    @abstractmethod
    def _grab(self) -> np.ndarray | None:
        """Return the next image, or ``None`` at the end of the stream.

        Raise :class:`SourceError` when the source failed for good (after any retries).
        """

    @abstractmethod
    def _close(self) -> None:
        """Release the device/file. Must be safe to call after a failed ``_open``."""

    def _timestamp(self) -> float:
        """Timestamp of the frame just grabbed (live default: monotonic clock)."""
        return time.monotonic()

    def describe(self) -> str:
        """Human-readable description for logs (no credentials)."""
        return self.type

    # ---------------------------------------------------------------- public API
    @property
    def live(self) -> bool:
        """True when a capture thread keeps only the newest frame (frames may be dropped)."""
        return self._live

    @property
    def finished(self) -> bool:
        """True once the stream ended and every delivered frame was read."""
        with self._cond:
            return self._finished and self._latest is None

    @property
    def stopping(self) -> bool:
        """True once :meth:`close` was called; backends poll it to abort retry loops."""
        return self._stop.is_set()

    def open(self) -> None:
        """Open the source and, for live sources, start the capture thread.

        Raises:
            SourceError: naming the source when it cannot be opened.
        """
        try:
            self._open()
        except SourceError:
            self._close()
            raise
        self._opened = True
        log.info("source opened: %s", self.describe())
        if self._live:
            self._thread = threading.Thread(
                target=self._capture_loop, name=f"capture-{self.type}", daemon=True
            )
            self._thread.start()

    def read(self, timeout: float | None = None) -> Frame | None:
        """Return the next frame (live: the newest one), or ``None``.

        ``None`` means no frame arrived within ``timeout`` seconds, or the stream ended (check
        :attr:`finished`).

        Raises:
            SourceError: when the source failed for good (e.g. a camera that never came back).
        """
        if not self._opened:
            raise SourceError(f"source {self.describe()} is not open")
        if not self._live:
            return self._read_sync()
        with self._cond:
            if self._latest is None and not self._finished:
                self._cond.wait_for(lambda: self._latest is not None or self._finished, timeout)
            frame, self._latest = self._latest, None
            if frame is None and self._error is not None:
                err, self._error = self._error, None
                raise err
        if frame is not None:
            self._delivered += 1
        return frame

    def close(self, timeout: float = 2.0) -> None:
        """Stop capturing and release the source (idempotent).

        Args:
            timeout: Seconds to wait for the capture thread to notice the stop request.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                # A driver stuck in a blocking read: the thread is a daemon, so it cannot keep
                # the process alive; say so instead of waiting forever, and do not release the
                # device under its feet.
                log.warning("capture thread did not stop within %.1f s", timeout)
                self._opened = False
            self._thread = None
        if self._opened:
            self._close()
            self._opened = False
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def request_stop(self) -> None:
        """Ask retry loops and the capture thread to give up soon (signal-safe, no joins)."""
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        """Counters: frames captured, delivered to the pipeline and dropped (overwritten), plus
        ``reopens`` for sources that reopen after a failure."""
        out = {"captured": self._captured, "delivered": self._delivered, "dropped": self._dropped}
        if self.reopen_timeout_s > 0:
            out["reopens"] = self.reopens  # driver failures survived by reopening
        return out

    def __enter__(self) -> FrameSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- internals
    def _read_sync(self) -> Frame | None:
        if self._finished:
            return None
        try:
            image = self._grab()
        except (OSError, RuntimeError, ValueError, cv2.error) as e:
            raise SourceError(f"{self.describe()}: reading a frame failed: {e}") from None
        if image is None:
            self._finished = True
            return None
        frame = Frame(image, self._captured, self._timestamp())
        self._captured += 1
        self._delivered += 1
        return frame

    def _grab_or_reopen(self) -> np.ndarray | None:
        """``_grab()``; on a driver failure, reopen with backoff if configured (live only)."""
        while True:
            try:
                return self._grab()
            except (OSError, RuntimeError, ValueError, cv2.error) as e:
                if self.reopen_timeout_s <= 0 or self.stopping:
                    raise
                if not self._reopen(e):
                    return None  # stopped while waiting
                continue

    def _reopen(self, cause: BaseException) -> bool:
        """Close and reopen the device until it works, the budget is spent, or we are stopped.

        Returns:
            True once reopened, False if stopped while retrying.

        Raises:
            SourceError: when the device did not come back within ``reopen_timeout_s``.
        """
        log.warning(
            "%s failed (%s); reopening for up to %g s",
            self.describe(),
            cause,
            self.reopen_timeout_s,
        )
        deadline = time.monotonic() + self.reopen_timeout_s
        delays = backoff_delays(self.backoff_min_s, self.backoff_max_s)
        attempt = 0
        last: BaseException = cause
        while not self.stopping:
            attempt += 1
            error = self._reopen_once()
            if error is None:
                self.reopens += 1
                log.info("%s reopened after %d attempts", self.describe(), attempt)
                return True
            last = error
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SourceError(
                    f"{self.describe()} failed ({cause}) and was not back within "
                    f"{self.reopen_timeout_s:g} s ({attempt} attempts; last: {last})"
                )
            if self._stop.wait(min(next(delays), remaining)):
                break
        return False

    def _reopen_once(self) -> BaseException | None:
        """Close the device and open it again: None when it opened, else the error."""
        self._close()
        try:
            self._open()
        except (SourceError, OSError, RuntimeError, ValueError, cv2.error) as e:
            return e
        return None

    def _capture_loop(self) -> None:
        try:
            while not self._stop.is_set():
                image = self._grab_or_reopen()
                if image is None:
                    break
                frame = Frame(image, self._captured, self._timestamp())
                self._captured += 1
                with self._cond:
                    if self._latest is not None:
                        self._dropped += 1
                    self._latest = frame
                    self._cond.notify_all()
        except SourceError as e:
            log.error("%s", e)
            with self._cond:
                self._error = e
        except (OSError, RuntimeError, ValueError, cv2.error) as e:
            # A driver failure must surface as an error (non-zero exit, systemd restarts us),
            # never as a quiet end of stream.
            log.error("%s: capture failed: %s", self.describe(), e)
            with self._cond:
                self._error = SourceError(f"{self.describe()}: capture failed: {e}")
        finally:
            with self._cond:
                self._finished = True
                self._cond.notify_all()


def backoff_delays(first: float = 0.5, cap: float = 5.0) -> Any:
    """Yield retry delays that double from ``first`` up to ``cap`` seconds, forever."""
    d = first
    while True:
        yield d
        d = min(cap, d * 2.0)
