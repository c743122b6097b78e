"""What the web dashboard shows about every device, as JSON for the browser (no web code).

The fold of received messages into devices, faces and liveness is the shared subscriber side's
(:class:`~edge.subscribe.fleet.Fleet`, every kind including the retained ``state``, whose rules
``fer-edge monitor`` shares); this module adds only what the page draws:

* per device, a rolling history of the mean score per emotion over the faces tracked now (one
  point per event, and one when the faces are cleared), for the chart; a device whose model
  changes labels starts a new history, as the old one cannot be drawn with them;
* the JSON the browser renders (:meth:`DashboardState.device_json`,
  :meth:`DashboardState.snapshot`); ``liveness`` in it is the status to show (``stale`` once an
  ``online`` is no longer refreshed).

Everything received is untrusted: the fleet bounds payloads, devices and text, and the strings
here are cut again to what the page has room for. The browser renders text with
``textContent`` only.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from edge.events import Event
from edge.liveness import DEFAULT_EXPIRY_S
from edge.state import Face
from edge.subscribe.fleet import MAX_DEVICES, DeviceView, Fleet
from edge.subscribe.messages import Message, printable

#: Event ids remembered for de-duplication.
SEEN_IDS = 50_000
#: History points kept per device, whatever the time window.
MAX_POINTS = 3600


@dataclass
class Chart:
    """One device's chart: its labels and ``(unix time, [mean score per label])`` points."""

    labels: list[str] = field(default_factory=list)
    history: deque[tuple[float, list[float]]] = field(
        default_factory=lambda: deque(maxlen=MAX_POINTS)
    )


class DashboardState:
    """Per-device view of everything received under ``<prefix>/+/...``.

    Args:
        prefix: Topic prefix the devices use.
        history_s: Seconds of per-emotion history kept for the chart.
        max_devices: Devices tracked at most; messages for further devices are ignored.
        stale_after_s: Evidence of life without an MQTT 5 expiry counts this long.
    """

    def __init__(
        self,
        prefix: str = "fer",
        history_s: float = 600.0,
        max_devices: int = MAX_DEVICES,
        stale_after_s: float = DEFAULT_EXPIRY_S,
    ):
        self.fleet = Fleet(
            prefix, stale_after_s=stale_after_s, max_devices=max_devices, seen_ids=SEEN_IDS
        )
        self.history_s = history_s
        self.charts: dict[str, Chart] = {}

    def handle(
        self,
        topic: str,
        payload: bytes,
        now: float | None = None,
        *,
        retained: bool = False,
        expiry_s: float | None = None,
    ) -> str | None:
        """Apply one MQTT message.

        Args:
            topic: The message's topic.
            payload: Its payload (untrusted).
            now: Receipt time (unix time; default: now).
            retained: Whether it came from the broker's retained store.
            expiry_s: Its MQTT 5 message-expiry interval (remaining), or None.

        Returns:
            The id of the device whose view changed, or None (ignored, bad or duplicate).
        """
        now = time.time() if now is None else now
        update = self.fleet.handle(Message(topic, payload, retained, expiry_s), now)
        if update is None:
            return None
        if update.event is not None:
            self._relabel(update.device, update.event)
        if update.event is not None or update.cleared:
            self._sample(update.device, now)
        return update.device

    def sweep(self, now: float | None = None) -> list[str]:
        """Devices whose shown status changed without a message (went stale; faces cleared).

        Returns:
            Their ids (to push to browsers).
        """
        now = time.time() if now is None else now
        updates = self.fleet.sweep(now)
        for update in updates:
            if update.cleared:
                self._sample(update.device, now)
        return [u.device for u in updates]

    def device_json(self, device: str, now: float | None = None) -> dict[str, Any] | None:
        """JSON-ready view of one device for the browser, or None for an unknown device."""
        view = self.fleet.devices.get(device)
        if view is None:
            return None
        return _device_json(view, self.charts.get(device, Chart()), now)

    def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-ready (``/api/state`` and the first SSE message)."""
        now = time.time()
        devices = self.fleet.devices
        return {
            "prefix": self.fleet.prefix,
            "history_s": self.history_s,
            "server_time": now,
            "bad_payloads": self.fleet.bad_payloads,
            "devices": [
                _device_json(devices[k], self.charts.get(k, Chart()), now) for k in sorted(devices)
            ],
        }

    def _relabel(self, device: str, event: Event) -> None:
        """A new model (other labels): the old history cannot be drawn with them."""
        chart = self.charts.setdefault(device, Chart())
        labels = [printable(k, 32) for k in event.scores]
        if labels != chart.labels:
            chart.labels = labels
            chart.history.clear()

    def _sample(self, device: str, now: float) -> None:
        """Append the mean score per label over the current faces (zeros when none)."""
        chart = self.charts.setdefault(device, Chart())
        n = len(chart.labels)
        sums = [0.0] * n
        count = 0
        for face in self.fleet.devices[device].faces.tracks.values():
            if face.scores is not None and len(face.scores) == n:
                for i, v in enumerate(face.scores):
                    sums[i] += v
                count += 1
        chart.history.append((now, [round(s / count, 4) for s in sums] if count else sums))
        cutoff = now - self.history_s
        # Keep one point older than the window: it says what the value was at its left edge.
        while len(chart.history) > 1 and chart.history[1][0] < cutoff:
            chart.history.popleft()


def _device_json(view: DeviceView, chart: Chart, now: float | None = None) -> dict[str, Any]:
    """One device as the browser draws it."""
    faces = view.faces.tracks
    return {
        "device_id": view.device_id,
        "status": view.status,
        "liveness": view.live.shown(time.time() if now is None else now),
        "alive_until": view.live.alive_until,
        "status_at": view.status_at,
        "stats": view.stats,
        "stats_at": view.stats_at,
        "faces": [_face_json(faces[k]) for k in sorted(faces)],
        "labels": list(chart.labels),
        "model": view.model,
        "events": view.events,
        "last_seen": view.last_seen,
        "history": [[round(t, 3), v] for t, v in chart.history],
    }


def _face_json(face: Face) -> dict[str, Any]:
    """One face as the browser draws it (``scores`` None and type ``state`` when seeded)."""
    return {
        "track_id": face.track_id,
        "emotion": printable(face.emotion, 32),
        "confidence": face.confidence,
        "bbox": list(face.bbox),
        "scores": None if face.scores is None else list(face.scores),
        "type": str(face.type),
        "ts": None if face.ts is None else printable(face.ts, 40),
        "updated": face.updated,
    }
