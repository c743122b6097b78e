"""The stdout sink: one JSON event per line, the default when no broker is configured."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any, TextIO

from edge.errors import PublishError
from edge.events import Event
from edge.publish.base import Sink
from edge.publish.config import StdoutSinkConfig

log = logging.getLogger(__name__)


class StdoutSink(Sink):
    """Write each event as compact JSON on its own line and flush at once.

    Logs go to stderr (configured by the CLI), so stdout stays pure JSON lines that ``jq`` or
    another program can consume. Stats are not printed: they are not events.
    """

    type = "stdout"
    config_class = StdoutSinkConfig

    @classmethod
    def from_config(cls, cfg: StdoutSinkConfig, device_id: str) -> StdoutSink:
        """Build from a ``[[sinks]]`` table of type ``stdout`` (it has no settings)."""
        return cls()

    def __init__(self, stream: TextIO | None = None) -> None:
        """Create the sink.

        Args:
            stream: Where to write (default: ``sys.stdout`` looked up at write time, so pytest's
                capture and redirections made after construction are honoured).
        """
        self._stream = stream
        self._lock = threading.Lock()
        self._published = 0
        self._closed = False

    def publish_event(self, event: Event) -> None:
        """Write one event line.

        Raises:
            PublishError: if stdout was closed (e.g. the reading end of a pipe went away).
        """
        stream = self._stream if self._stream is not None else sys.stdout
        line = event.to_json() + "\n"
        with self._lock:
            if self._closed:
                raise PublishError("stdout sink is closed")
            try:
                stream.write(line)
                stream.flush()
            except (BrokenPipeError, ValueError) as e:
                # ValueError: write to a closed file object. Either way no reader is left.
                self._closed = True
                raise PublishError(f"stdout is closed, events cannot be written: {e}") from None
            self._published += 1

    def stats(self) -> dict[str, Any]:
        """``published``: events written."""
        return {"published": self._published}

    def close(self, timeout: float = 5.0) -> None:
        """Flush stdout (never closes it: it belongs to the process)."""
        stream = self._stream if self._stream is not None else sys.stdout
        with self._lock:
            self._closed = True
            try:
                stream.flush()
            except (BrokenPipeError, ValueError) as e:
                log.debug("stdout flush on close failed: %s", e)
