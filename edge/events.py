"""The emotion event: what a device tells the world about one tracked face.

Events are frozen, versioned dataclasses (``schema = "fer.event/1"``) serialized as JSON. They
never carry image data. The JSON Schema lives in ``docs/event.schema.json`` and a test checks
that it and this class agree.
"""

from __future__ import annotations

import json
import math
import sys
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from edge.errors import FerEdgeError

SCHEMA = "fer.event/1"
if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10 on older devices
    from enum import Enum

    class StrEnum(str, Enum):
        """3.11's StrEnum: members are their values (``==``, hash, str, format, JSON)."""

        __str__ = str.__str__
        __format__ = str.__format__
        __hash__ = str.__hash__


class EventType(StrEnum):
    """What happened to a tracked face (the event's ``type``; see :mod:`edge.track`).

    Members are strings: ``EventType.END == "end"``, JSON writes ``"end"``, and code that
    compares with the plain strings keeps working.
    """

    START = "start"  # a face held long enough to be announced
    CHANGE = "change"  # its dominant emotion changed (and held)
    UPDATE = "update"  # periodic refresh of a live face
    END = "end"  # the face left (or the pipeline stopped)


#: The event types as plain strings, in schema order (docs/event.schema.json's enum).
EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)


class EventDecodeError(FerEdgeError):
    """A JSON payload is not a valid ``fer.event/1`` event."""


def utc_now_iso() -> str:
    """Current UTC time as ISO-8601 with milliseconds and a ``Z`` suffix."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelRef:
    """Which model produced an event."""

    name: str
    sha256: str


@dataclass(frozen=True)
class Event:
    """One per-face emotion event (``fer.event/1``).

    Attributes:
        event_id: Unique id (uuid4 hex string); subscribers de-duplicate QoS-1 redeliveries by it.
        device_id: The publishing device.
        ts: UTC ISO-8601 timestamp.
        frame: Frame number within the run.
        track_id: Id of the face track (stable while the face is followed).
        type: ``start``, ``change``, ``update`` or ``end``.
        bbox: ``[x, y, w, h]`` in frame pixels.
        emotion: Dominant (smoothed) emotion label.
        confidence: Probability of ``emotion`` in ``scores``.
        scores: Smoothed probability per label, in the model's label order.
        model: Model name and sha256.
        schema: Always ``fer.event/1``.
    """

    event_id: str
    device_id: str
    ts: str
    frame: int
    track_id: int
    type: EventType
    bbox: tuple[int, int, int, int]
    emotion: str
    confidence: float
    scores: dict[str, float]
    model: ModelRef
    schema: str = field(default=SCHEMA)

    @classmethod
    def create(
        cls,
        *,
        device_id: str,
        frame: int,
        track_id: int,
        type: EventType,
        bbox: tuple[int, int, int, int] | list[int],
        scores: dict[str, float],
        model: ModelRef,
        ts: str | None = None,
    ) -> Event:
        """Build an event with a fresh id and timestamp; emotion/confidence come from ``scores``."""
        emotion = max(scores, key=lambda k: scores[k])
        return cls(
            event_id=uuid.uuid4().hex,
            device_id=device_id,
            ts=ts or utc_now_iso(),
            frame=int(frame),
            track_id=int(track_id),
            type=type,
            bbox=tuple(int(v) for v in bbox),  # type: ignore[arg-type]
            emotion=emotion,
            confidence=round(float(scores[emotion]), 6),
            scores={k: round(float(v), 6) for k, v in scores.items()},
            model=model,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with ``schema`` first."""
        return {
            "schema": self.schema,
            "event_id": self.event_id,
            "device_id": self.device_id,
            "ts": self.ts,
            "frame": self.frame,
            "track_id": self.track_id,
            "type": self.type,
            "bbox": list(self.bbox),
            "emotion": self.emotion,
            "confidence": self.confidence,
            "scores": dict(self.scores),
            "model": {"name": self.model.name, "sha256": self.model.sha256},
        }

    def to_json(self) -> str:
        """Compact JSON text."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: Any) -> Event:
        """Validate and decode a dict produced by :meth:`to_dict`.

        Raises:
            EventDecodeError: naming the offending key.
        """
        _check_keys(d)
        _check_fields(d)
        bbox, scores, model = d["bbox"], d["scores"], d["model"]
        return cls(
            event_id=d["event_id"],
            device_id=d["device_id"],
            ts=d["ts"],
            frame=d["frame"],
            track_id=d["track_id"],
            type=EventType(d["type"]),
            bbox=tuple(bbox),  # type: ignore[arg-type]
            emotion=d["emotion"],
            confidence=float(d["confidence"]),
            scores={str(k): float(v) for k, v in scores.items()},
            model=ModelRef(model["name"], model["sha256"]),
            schema=d["schema"],
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Decode JSON text; raises :class:`EventDecodeError` for anything malformed."""
        try:
            d = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            # RecursionError: absurdly nested arrays/objects ("[[[[..."), a cheap hostile payload.
            raise EventDecodeError(f"event is not valid JSON: {e}") from None
        return cls.from_dict(d)


_EVENT_KEYS = frozenset(
    {
        "schema", "event_id", "device_id", "ts", "frame", "track_id", "type", "bbox",
        "emotion", "confidence", "scores", "model",
    }
)  # fmt: skip


def _check_keys(d: Any) -> None:
    """``d`` is an object with exactly the keys of a ``fer.event/1`` event."""
    if not isinstance(d, dict):
        raise EventDecodeError(f"event must be a JSON object, got {type(d).__name__}")
    missing = _EVENT_KEYS - set(d)
    if missing:
        raise EventDecodeError(f"event is missing keys {sorted(missing)}")
    extra = set(d) - _EVENT_KEYS
    if extra:
        raise EventDecodeError(f"event has unknown keys {sorted(extra)}")
    if d["schema"] != SCHEMA:
        raise EventDecodeError(f"event schema {d['schema']!r} is not {SCHEMA!r}")


def _check_fields(d: dict[str, Any]) -> None:
    """Every value of an event has its type and range (the first problem is reported)."""
    for key in ("event_id", "device_id", "ts", "emotion"):
        if not isinstance(d[key], str) or not d[key]:
            raise EventDecodeError(f"event key {key!r} must be a non-empty string")
    for key in ("frame", "track_id"):
        if not isinstance(d[key], int) or isinstance(d[key], bool) or d[key] < 0:
            raise EventDecodeError(f"event key {key!r} must be a non-negative integer")
    if d["type"] not in EVENT_TYPES:
        raise EventDecodeError(f"event type {d['type']!r} is not one of {list(EVENT_TYPES)}")
    bbox = d["bbox"]
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in bbox)
    ):
        raise EventDecodeError("event key 'bbox' must be a list of 4 integers [x, y, w, h]")
    _check_scores(d)
    model = d["model"]
    if (
        not isinstance(model, dict)
        or set(model) != {"name", "sha256"}
        or not all(isinstance(v, str) for v in model.values())
    ):
        raise EventDecodeError("event key 'model' must be {name: str, sha256: str}")


def _check_scores(d: dict[str, Any]) -> None:
    """Scores are probabilities, the emotion is one of them, the confidence is one too."""
    scores = d["scores"]
    if not isinstance(scores, dict) or not scores:
        raise EventDecodeError("event key 'scores' must be a non-empty object")
    for label, p in scores.items():
        if not _is_prob(p):
            raise EventDecodeError(f"event score for {label!r} must be a number in 0..1")
    if d["emotion"] not in scores:
        raise EventDecodeError(f"event emotion {d['emotion']!r} is not a key of 'scores'")
    if not _is_prob(d["confidence"]):
        raise EventDecodeError("event key 'confidence' must be a number in 0..1")


def _is_prob(v: Any) -> bool:
    # Range first: comparing is exact for any int, while isfinite()/float() overflow on a
    # 400-digit JSON integer.
    return (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and 0.0 <= v <= 1.0
        and math.isfinite(v)
    )


class SeenEvents:
    """Bounded memory of event ids, for subscribers that de-duplicate QoS-1 redeliveries.

    Args:
        capacity: Ids remembered; the oldest is forgotten first.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def check_and_add(self, event_id: str) -> bool:
        """Return True if ``event_id`` was seen before; otherwise remember it and return False."""
        if event_id in self._ids:
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False
