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

One fold, three users: the pipeline folds its own events to publish the state; the subscribers
(``fer-edge monitor`` and the web dashboard, through ``edge/subscribe/fleet.py``) fold the events
they receive into the same :class:`FaceState` to show who is in front of each camera now. Each
tracked face is kept as a :class:`Face`, which also remembers what only a viewer needs (the last
event's type, scores and timestamp, and when it arrived); :meth:`FaceState.snapshot` publishes
only the ``fer.state/1`` fields.

Pure Python, no MQTT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from edge.events import Event, EventType

STATE_SCHEMA = "fer.state/1"


@dataclass(frozen=True)
class Face:
    """One tracked face as the newest event (or a retained state) described it.

    Attributes:
        track_id: The tracker's id for the face.
        emotion: Its dominant emotion label.
        confidence: Probability of ``emotion``.
        bbox: ``(x, y, w, h)`` in frame pixels.
        scores: Every label's probability in the model's label order, or None when the face
            came from a ``fer.state/1`` object (which carries no scores).
        type: The newest event's type, or ``state`` for a face seeded from a state object.
        ts: The newest event's (or the state's) timestamp, or None.
        updated: When the caller received it (the caller's clock; 0.0 when it does not care).
    """

    track_id: int
    emotion: str
    confidence: float
    bbox: tuple[int, int, int, int]
    scores: tuple[float, ...] | None = None
    type: str = EventType.START
    ts: str | None = None
    updated: float = 0.0

    @classmethod
    def from_event(cls, event: Event, now: float = 0.0) -> Face:
        """The face an event describes, received at ``now``."""
        return cls(
            track_id=event.track_id,
            emotion=event.emotion,
            confidence=event.confidence,
            bbox=event.bbox,
            scores=tuple(event.scores.values()),
            type=event.type,
            ts=event.ts,
            updated=now,
        )

    def track(self) -> dict[str, Any]:
        """Its entry in a ``fer.state/1`` object's ``tracks`` (what the state publishes)."""
        return {
            "track_id": self.track_id,
            "emotion": self.emotion,
            "confidence": self.confidence,
            "bbox": list(self.bbox),
        }


class FaceState:
    """Current faces of one device, updated from its events.

    Args:
        device_id: The device the state describes.
    """

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self._tracks: dict[int, Face] = {}
        self._ts: str | None = None
        self._model: dict[str, str] | None = None

    def apply(self, event: Event, now: float = 0.0) -> bool:
        """Fold one event in.

        ``start``, ``change`` and ``update`` set the track's face (always the newest one, so a
        viewer sees the latest type, scores and time); ``end`` removes the track.

        Args:
            event: The event, in the device's order.
            now: When it was received (kept in :attr:`Face.updated`).

        Returns:
            True if the snapshot changed (an ``end`` for an unknown track changes nothing, nor
            does an event that repeats the track's emotion, confidence and box).
        """
        if event.type == EventType.END:
            if self._tracks.pop(event.track_id, None) is None:
                return False
        else:
            face = Face.from_event(event, now)
            old = self._tracks.get(event.track_id)
            self._tracks[event.track_id] = face
            if old is not None and old.track() == face.track():
                return False
        self._ts = event.ts
        self._model = {"name": event.model.name, "sha256": event.model.sha256}
        return True

    def replace(self, faces: Iterable[Face]) -> None:
        """Make ``faces`` the current faces (a subscriber seeding from a retained state)."""
        self._tracks = {f.track_id: f for f in faces}

    def clear(self) -> bool:
        """Forget every face (e.g. the tracker was reset); True if there were any."""
        had = bool(self._tracks)
        self._tracks.clear()
        return had

    @property
    def faces(self) -> int:
        """Number of tracked faces."""
        return len(self._tracks)

    @property
    def tracks(self) -> Mapping[int, Face]:
        """The current faces by track id (a read-only view: change them through the fold)."""
        return MappingProxyType(self._tracks)

    def dominant(self) -> dict[str, Any] | None:
        """The dominant face (largest box, then most confident, then oldest id), or None."""
        if not self._tracks:
            return None
        face = min(
            self._tracks.values(),
            key=lambda f: (-(f.bbox[2] * f.bbox[3]), -f.confidence, f.track_id),
        )
        return face.track()

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
            "tracks": [self._tracks[k].track() for k in sorted(self._tracks)],
            "model": dict(self._model) if self._model else None,
        }


def build_state(device_id: str, events: Iterable[Event]) -> dict[str, Any]:
    """The state after folding ``events`` in order into an empty :class:`FaceState`."""
    state = FaceState(device_id)
    for ev in events:
        state.apply(ev)
    return state.snapshot()
