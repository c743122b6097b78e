"""The per-device face state: what is in front of the camera right now, as one JSON object.

Events (``fer.event/1``) describe changes; dashboards such as Home Assistant want the current
value. :class:`FaceState` folds the device's own events into that value, which the MQTT sink
publishes retained on ``<prefix>/<device_id>/state`` (``fer.state/1``)::

    {"schema": "fer.state/1", "device_id": "door-cam", "ts": "2025-01-01T12:00:00.000Z",
     "faces": 1, "emotion": "happy", "confidence": 0.81, "track_id": 3,
     "tracks": [{"track_id": 3, "emotion": "happy", "confidence": 0.81, "bbox": [10, 20, 64, 64]}],
     "model": {"name": "sepnet", "sha256": "..."}}

``emotion``/``confidence``/``track_id`` describe the *dominant* face: the largest one (bbox
area), ties broken by the higher confidence, then the lower track id; the nearest face is the one
a person in front of the device most likely cares about. They are ``null`` when no face is
tracked. ``ts`` is the timestamp of the last event folded in, so the state is a pure function of
the event sequence (see :func:`build_state`).

Pure Python, no MQTT: the pipeline, the web dashboard and the tests share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.events import Event

STATE_SCHEMA = "fer.state/1"


class FaceState:
    """Current faces of one device, updated from its events.

    Args:
        device_id: The device the state describes.
    """

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self._tracks: dict[int, dict[str, Any]] = {}
        self._ts: str | None = None
        self._model: dict[str, str] | None = None

    def apply(self, event: Event) -> bool:
        """Fold one event in.

        ``start``, ``change`` and ``update`` set the track's emotion, confidence and box;
        ``end`` removes the track.

        Returns:
            True if the snapshot changed (an ``end`` for an unknown track changes nothing).
        """
        if event.type == "end":
            if self._tracks.pop(event.track_id, None) is None:
                return False
        else:
            face = {
                "track_id": event.track_id,
                "emotion": event.emotion,
                "confidence": event.confidence,
                "bbox": list(event.bbox),
            }
            if self._tracks.get(event.track_id) == face:
                return False
            self._tracks[event.track_id] = face
        self._ts = event.ts
        self._model = {"name": event.model.name, "sha256": event.model.sha256}
        return True

    def clear(self) -> bool:
        """Forget every face (e.g. the tracker was reset); True if there were any."""
        had = bool(self._tracks)
        self._tracks.clear()
        return had

    @property
    def faces(self) -> int:
        """Number of tracked faces."""
        return len(self._tracks)

    def dominant(self) -> dict[str, Any] | None:
        """The dominant face (largest box, then most confident, then oldest id), or None."""
        if not self._tracks:
            return None
        return min(
            self._tracks.values(),
            key=lambda f: (-(f["bbox"][2] * f["bbox"][3]), -f["confidence"], f["track_id"]),
        )

    def snapshot(self, ts: str | None = None) -> dict[str, Any]:
        """The ``fer.state/1`` JSON object (see module docstring).

        Args:
            ts: Override the timestamp (default: the last event's ``ts``, or None before any).
        """
        dom = self.dominant()
        return {
            "schema": STATE_SCHEMA,
            "device_id": self.device_id,
            "ts": ts if ts is not None else self._ts,
            "faces": len(self._tracks),
            "emotion": dom["emotion"] if dom else None,
            "confidence": dom["confidence"] if dom else None,
            "track_id": dom["track_id"] if dom else None,
            "tracks": [
                dict(self._tracks[k], bbox=list(self._tracks[k]["bbox"]))
                for k in sorted(self._tracks)
            ],
            "model": dict(self._model) if self._model else None,
        }


def build_state(device_id: str, events: Iterable[Event]) -> dict[str, Any]:
    """The state after folding ``events`` in order into an empty :class:`FaceState`."""
    state = FaceState(device_id)
    for ev in events:
        state.apply(ev)
    return state.snapshot()
