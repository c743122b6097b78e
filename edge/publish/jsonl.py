"""The JSONL sink: events appended to a file, one JSON object per line.

Used as an audit log, as the oracle of reliability tests (every event the device produced) and
as the spill file for events an MQTT sink could not deliver before shutdown.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import IO, Any

from edge.errors import PublishError
from edge.events import Event
from edge.publish.base import Sink
from edge.publish.config import JsonlSinkConfig

log = logging.getLogger(__name__)


class JsonlSink(Sink):
    """Append events to ``path``; flush per event, fsync on close.

    Flushing after each line means a crash of the process loses nothing that was published;
    ``fsync_every`` additionally protects against power loss at the cost of SD-card writes.
    """

    type = "jsonl"
    config_class = JsonlSinkConfig

    @classmethod
    def from_config(cls, cfg: JsonlSinkConfig, device_id: str) -> JsonlSink:
        """Build from a ``[[sinks]]`` table of type ``jsonl``."""
        return cls(cfg.path, fsync_every=cfg.fsync_every)

    def __init__(self, path: str | os.PathLike[str], fsync_every: int = 0) -> None:
        """Create the sink (the file is opened by :meth:`open` or the first event).

        Args:
            path: File to append to; parent folders are created.
            fsync_every: fsync after every N events (0: only on close).
        """
        self.path = Path(path)
        self.fsync_every = int(fsync_every)
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()
        self._published = 0
        self._closed = False

    def open(self) -> None:
        """Create parent folders and open the file for appending.

        Raises:
            PublishError: naming the path if it cannot be opened.
        """
        with self._lock:
            self._open_locked()

    def _open_locked(self) -> IO[str]:
        if self._fh is not None:
            return self._fh
        if self._closed:
            raise PublishError(f"jsonl sink {self.path} is closed")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Line-buffered text; we still flush explicitly after each event.
            self._fh = self.path.open("a", encoding="utf-8", buffering=1)
        except OSError as e:
            raise PublishError(f"jsonl sink cannot open {self.path}: {e.strerror}") from None
        log.info("writing events to %s", self.path)
        return self._fh

    def publish_event(self, event: Event) -> None:
        """Append one event line and flush it.

        Raises:
            PublishError: if the file cannot be opened or written (disk full, removed mount).
        """
        line = event.to_json() + "\n"
        with self._lock:
            fh = self._open_locked()
            try:
                fh.write(line)
                fh.flush()
                if self.fsync_every and (self._published + 1) % self.fsync_every == 0:
                    os.fsync(fh.fileno())
            except OSError as e:
                raise PublishError(f"jsonl sink cannot write {self.path}: {e.strerror}") from None
            self._published += 1

    def stats(self) -> dict[str, Any]:
        """``published``: events written."""
        return {"published": self._published}

    def close(self, timeout: float = 5.0) -> None:
        """Flush, fsync and close the file. Safe to call twice."""
        with self._lock:
            self._closed = True
            fh, self._fh = self._fh, None
            if fh is None:
                return
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as e:
                log.error("jsonl sink: fsync of %s failed: %s", self.path, e.strerror)
            finally:
                fh.close()
