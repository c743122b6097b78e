"""A write-ahead file of the MQTT sink's undelivered events: a crash loses none of them.

The sink's outage queue lives in memory. A clean shutdown spills what is left to a JSONL file,
but a device killed outright (SIGKILL, the OOM killer, a watchdog reset) while its broker is away
loses the queue. With ``spool_dir`` set, the sink also appends every event to
``<spool_dir>/<client id>.queue.jsonl`` before queueing it and the id of every event that is
finished with (acknowledged by the broker, or dropped on overflow) to ``<client id>.done``;
the next start re-queues, oldest first, every spooled event that is not done, so an event is
delivered at least once across crashes (subscribers de-duplicate by ``event_id``).

Both files are flushed after every write (a process crash loses nothing); ``fsync`` also
survives a power cut at the cost of SD-card wear. They are emptied when nothing is pending and
at least :data:`EMPTY_AFTER` events are done, so they stay small while the broker is reachable,
and rewritten when the done file grows large during a long outage.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from edge.errors import PublishError
from edge.events import Event, EventDecodeError

log = logging.getLogger(__name__)

#: Done ids after which the files are emptied once nothing is pending: a rewrite per batch, not
#: per event (each rewrite costs a file replace; an SD card wears).
EMPTY_AFTER = 1_000
#: Done ids after which the files are rewritten with only the pending events (a long outage).
COMPACT_AFTER = 50_000


class Spool:
    """The write-ahead files of one MQTT client (see the module docstring).

    Args:
        folder: Where the files live (created if missing).
        name: File name stem, unique per sink (the MQTT client id).
        fsync: Also fsync after every write.
    """

    def __init__(self, folder: Path, name: str, fsync: bool = False) -> None:
        self.folder = Path(folder)
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        self.queue_path = self.folder / f"{safe}.queue.jsonl"
        self.done_path = self.folder / f"{safe}.done"
        self.fsync = fsync
        self._queue: TextIO | None = None
        self._done: TextIO | None = None
        self._done_count = 0

    def load(self) -> list[Event]:
        """The spooled events not yet done, oldest first, each once; then open for appending.

        A torn last line (the crash hit a write) is skipped.

        Raises:
            PublishError: if the folder or files cannot be created or read.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            done = set()
            if self.done_path.exists():
                done = set(self.done_path.read_text(encoding="utf-8").split())
            events: dict[str, Event] = {}
            if self.queue_path.exists():
                for line in self.queue_path.read_text(encoding="utf-8").splitlines():
                    try:
                        ev = Event.from_json(line)
                    except EventDecodeError:
                        continue
                    if ev.event_id not in done:
                        events.setdefault(ev.event_id, ev)
            pending = list(events.values())
            self._rewrite(pending)
        except OSError as e:
            raise PublishError(f"mqtt spool {self.folder} is not usable: {e}") from None
        return pending

    def add(self, event: Event) -> None:
        """Record an event before it is queued."""
        self._write(self._queue, event.to_json() + "\n")

    def done(self, ids: Iterable[str]) -> None:
        """Record events that need no delivery any more (acknowledged or dropped)."""
        text = "".join(f"{i}\n" for i in ids)
        if text:
            self._write(self._done, text)
            self._done_count += text.count("\n")

    @property
    def large(self) -> bool:
        """Whether the done file is long enough to be worth a rewrite."""
        return self._done_count >= COMPACT_AFTER

    def settle(self, pending: list[Event]) -> None:
        """Keep the files small: empty them when nothing is pending, rewrite when large."""
        if (not pending and self._done_count >= EMPTY_AFTER) or self.large:
            try:
                self._rewrite(pending)
            except OSError as e:
                log.warning("mqtt spool %s: compaction failed: %s", self.folder, e)

    def close(self) -> None:
        """Close the files (their content stays for the next start)."""
        for fh in (self._queue, self._done):
            if fh is not None:
                fh.close()
        self._queue = self._done = None

    def _rewrite(self, pending: list[Event]) -> None:
        self.close()
        tmp = self.queue_path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(ev.to_json() + "\n" for ev in pending)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        # Queue first, then an empty done file: a crash in between only repeats done ids.
        os.replace(tmp, self.queue_path)
        self._done = self.done_path.open("w", encoding="utf-8")
        self._queue = self.queue_path.open("a", encoding="utf-8")
        self._done_count = 0

    def _write(self, fh: TextIO | None, text: str) -> None:
        if fh is None:
            return
        try:
            fh.write(text)
            fh.flush()
            if self.fsync:
                os.fsync(fh.fileno())
        except OSError as e:
            # A full disk must not stop the frame loop: the in-memory queue still works.
            log.warning("mqtt spool %s: write failed: %s", self.folder, e)
