"""Received MQTT messages: one parser and sanitizer for everything a subscriber is sent.

Everything received is untrusted: any client allowed on the broker may publish under the prefix.
So every payload is size-limited (:data:`MAX_PAYLOAD`), decoded strictly and either turned into
a value or rejected with :class:`BadPayload` naming what is wrong; subscribers count those and
never let one raise. Text a subscriber shows goes through :func:`printable` (no control
characters, bounded), so a hostile payload can drive neither a terminal nor a page layout.

Payloads by kind (the last topic level, see ``edge/topics.py``):

* ``status``: a plain UTF-8 string (:func:`decode_status`);
* ``stats``: a strict JSON object, no NaN or Infinity (:func:`decode_object`): it is passed on to
  browsers as it is;
* ``events``: a ``fer.event/1`` event (:func:`decode_event`, i.e. :meth:`Event.from_json`);
* ``state``: a ``fer.state/1`` object, turned into :class:`~edge.state.Face` records
  (:func:`decode_state`).

Pure Python, no MQTT.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from edge.errors import FerEdgeError
from edge.events import Event, EventDecodeError
from edge.state import STATE_SCHEMA, Face

#: Largest payload accepted on any topic (events and stats are a few hundred bytes).
MAX_PAYLOAD = 64 * 1024
#: Tracks read from one ``fer.state/1`` object at most (a device tracks a handful).
MAX_STATE_TRACKS = 64


class BadPayload(FerEdgeError):
    """A received payload is malformed; subscribers count it and carry on."""


@dataclass(frozen=True)
class Message:
    """One received MQTT message, as the broker delivered it.

    Attributes:
        topic: Its topic.
        payload: Its payload (untrusted).
        retained: Whether it came from the broker's retained store (then it may be old).
        expiry_s: Its MQTT 5 message-expiry interval (the remaining lifetime), or None.
    """

    topic: str
    payload: bytes
    retained: bool = False
    expiry_s: float | None = None


def printable(value: Any, limit: int, *, mark: str = "") -> str:
    """Printable, single-line text of at most ``limit`` characters from untrusted input.

    Args:
        value: Anything; ``str(value)`` is cleaned.
        limit: Characters kept at most.
        mark: Put in place of the last kept character when the text was cut (``~`` in a
            terminal table says "there was more"); empty: cut silently.

    Returns:
        The text with every non-printable character (control codes, newlines, escapes)
        replaced by ``?``.
    """
    s = "".join(c if c.isprintable() else "?" for c in str(value))
    if len(s) <= limit:
        return s
    return s[: limit - len(mark)] + mark


def finite(value: Any) -> bool:
    """Whether ``value`` is a finite JSON number (an int or float, never a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_size(payload: bytes) -> None:
    """Refuse a payload larger than :data:`MAX_PAYLOAD` before anything parses it.

    Raises:
        BadPayload: naming its size.
    """
    if len(payload) > MAX_PAYLOAD:
        raise BadPayload(f"payload of {len(payload)} bytes is too large")


def decode_status(payload: bytes) -> str | None:
    """A status payload as printable text (at most 16 characters), or None when empty."""
    return printable(payload.decode("utf-8", "replace").strip(), 16) or None


def decode_object(payload: bytes) -> dict[str, Any]:
    """A strict JSON object (no NaN/Infinity, so it can be passed on to browsers as it is).

    Raises:
        BadPayload: if it is not JSON, not an object, or not strict JSON.
    """
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        # RecursionError: absurdly nested arrays ("[[[[..."), a cheap hostile payload.
        raise BadPayload(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise BadPayload("not a JSON object")
    try:
        # Re-encoding proves it is strict JSON: Python's parser accepts NaN, browsers do not.
        json.dumps(obj, allow_nan=False)
    except ValueError as e:
        raise BadPayload(str(e)) from None
    return obj


def decode_event(payload: bytes) -> Event:
    """A ``fer.event/1`` event.

    Raises:
        BadPayload: with :class:`~edge.events.EventDecodeError`'s reason.
    """
    try:
        return Event.from_json(payload)
    except EventDecodeError as e:
        raise BadPayload(str(e)) from None


def decode_state(payload: bytes, now: float = 0.0) -> list[Face]:
    """The faces of a ``fer.state/1`` object (type ``state``, no scores), received at ``now``.

    Raises:
        BadPayload: if it is not a ``fer.state/1`` object or a track is malformed.
    """
    st = decode_object(payload)
    tracks = st.get("tracks")
    if st.get("schema") != STATE_SCHEMA or not isinstance(tracks, list):
        raise BadPayload(f"not a {STATE_SCHEMA} object")
    ts = st.get("ts")
    return [_state_face(t, ts, now) for t in tracks[:MAX_STATE_TRACKS]]


def _state_face(track: Any, ts: Any, now: float) -> Face:
    """One entry of a state's ``tracks`` as a :class:`Face` (see :meth:`Face.track`)."""
    ok = (
        isinstance(track, dict)
        and isinstance(track.get("track_id"), int)
        and isinstance(track.get("emotion"), str)
        and finite(track.get("confidence"))
        and isinstance(track.get("bbox"), list)
        and len(track["bbox"]) == 4
        and all(finite(v) for v in track["bbox"])
    )
    if not ok:
        raise BadPayload("malformed track in state")
    x, y, w, h = (int(v) for v in track["bbox"])
    return Face(
        track_id=track["track_id"],
        emotion=track["emotion"],
        confidence=float(track["confidence"]),
        bbox=(x, y, w, h),
        scores=None,
        type="state",
        ts=None if ts is None else printable(ts, 40),
        updated=now,
    )
