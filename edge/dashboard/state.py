"""What the web dashboard knows about every device, built from MQTT messages (no web code).

:class:`DashboardState` consumes ``<prefix>/<device>/events|status|stats|state`` messages and
keeps, per device: the status (``online``/``offline``/``stopped``), the faces tracked now (from
the events, each with its emotion, confidence, box and scores; cleared when the status leaves
``online``), the latest stats snapshot, and a
rolling history of the mean score per emotion for the chart. The retained ``state`` topic only
seeds the faces of a device the dashboard has not yet seen an event from (events are not
retained; after a dashboard restart the state tells who is in front of the camera right now).

Liveness: each device carries a :class:`~edge.liveness.Liveness` (the rule ``fer-edge monitor``
shares); ``liveness`` in its JSON is the status to show, ``stale`` once an ``online`` is no longer
refreshed. :meth:`DashboardState.sweep` finds devices that went stale without any message (that
is how silent deaths look) and clears their faces, as for ``offline``.

Everything received is untrusted: payloads are size-limited and validated, strings are bounded,
de-duplication by ``event_id`` drops QoS-1 redeliveries, and the number of devices is capped so
a hostile publisher cannot exhaust memory. The browser renders text with ``textContent`` only.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from edge.events import Event, EventDecodeError, SeenEvents
from edge.liveness import DEFAULT_EXPIRY_S, Liveness
from edge.state import STATE_SCHEMA

log = logging.getLogger(__name__)

#: Largest payload accepted on any topic (events and stats are a few hundred bytes).
MAX_PAYLOAD = 64 * 1024
#: Event ids remembered for de-duplication.
SEEN_IDS = 50_000
#: History points kept per device, whatever the time window.
MAX_POINTS = 3600
KINDS = ("events", "status", "stats", "state")


def _text(value: Any, limit: int = 64) -> str:
    s = "".join(c if c.isprintable() else "?" for c in str(value))
    return s[:limit]


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class DeviceEntry:
    """One device as the dashboard shows it."""

    device_id: str
    status: str | None = None
    status_at: float | None = None
    stats: dict[str, Any] | None = None
    stats_at: float | None = None
    faces: dict[int, dict[str, Any]] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    model: str | None = None
    events: int = 0
    last_seen: float = 0.0
    #: ``(unix time, [mean score per label in `labels` order])``.
    history: deque[tuple[float, list[float]]] = field(
        default_factory=lambda: deque(maxlen=MAX_POINTS)
    )
    live: Liveness = field(default_factory=Liveness)
    #: The shown status at the last :meth:`DashboardState.sweep`.
    shown: str | None = None

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        """JSON-ready view for the browser."""
        shown = self.live.shown(time.time() if now is None else now)
        return {
            "device_id": self.device_id,
            "status": self.status,
            "liveness": None if shown is None else _text(shown, 16),
            "alive_until": self.live.alive_until,
            "status_at": self.status_at,
            "stats": self.stats,
            "stats_at": self.stats_at,
            "faces": [self.faces[k] for k in sorted(self.faces)],
            "labels": list(self.labels),
            "model": self.model,
            "events": self.events,
            "last_seen": self.last_seen,
            "history": [[round(t, 3), v] for t, v in self.history],
        }


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
        max_devices: int = 500,
        stale_after_s: float = DEFAULT_EXPIRY_S,
    ):
        self.prefix = prefix
        self.stale_after_s = stale_after_s
        self.history_s = history_s
        self.max_devices = max_devices
        self.devices: dict[str, DeviceEntry] = {}
        self.bad_payloads = 0
        self.duplicates = 0
        self.ignored = 0
        self._seen = SeenEvents(SEEN_IDS)
        self._got_events: set[str] = set()

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
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        device, _, kind = topic[len(head) :].partition("/")
        if not device or kind not in KINDS:
            return None
        if len(payload) > MAX_PAYLOAD:
            self._bad(topic, f"payload of {len(payload)} bytes is too large")
            return None
        device = _text(device, 128)
        dev = self.devices.get(device)
        created = dev is None
        if dev is None:
            if len(self.devices) >= self.max_devices:
                self.ignored += 1
                return None
            dev = DeviceEntry(device_id=device)
        if not self._apply(dev, kind, topic, payload, now):
            return None
        if created:  # only a message that was applied makes a device appear
            self.devices[device] = dev
        dev.last_seen = now
        dev.live.observe(
            kind,
            now,
            stale_after_s=self.stale_after_s,
            status=dev.status if kind == "status" else None,
            retained=retained,
            expiry_s=expiry_s,
        )
        dev.shown = dev.live.shown(now)
        return device

    def sweep(self, now: float | None = None) -> list[str]:
        """Devices whose shown status changed without a message (went stale); their faces are
        cleared, as a crashed device never sends its ``end`` events.

        Returns:
            Their ids (to push to browsers).
        """
        now = time.time() if now is None else now
        changed = []
        for dev in self.devices.values():
            shown = dev.live.shown(now)
            if shown == dev.shown:
                continue
            dev.shown = shown
            if shown != "online" and dev.faces:
                dev.faces.clear()
                self._sample(dev, now)
            changed.append(dev.device_id)
        return changed

    def _apply(self, dev: DeviceEntry, kind: str, topic: str, payload: bytes, now: float) -> bool:
        if kind == "status":
            dev.status = _text(payload.decode("utf-8", "replace").strip(), 16) or None
            dev.status_at = now
            if dev.status != "online" and dev.faces:
                # offline (Last Will) or stopped: nobody is being watched any more, and a
                # crashed device never sends the 'end' events.
                dev.faces.clear()
                self._sample(dev, now)
            return True
        if kind == "stats":
            stats = self._json_object(topic, payload)
            if stats is None:
                return False
            dev.stats, dev.stats_at = stats, now
            model = stats.get("model")
            if isinstance(model, dict) and isinstance(model.get("name"), str):
                dev.model = _text(model["name"])
            return True
        if kind == "state":
            # Once events flow they are the source of truth (see module docstring).
            if dev.device_id in self._got_events:
                return False
            return self._apply_state(dev, topic, payload, now)
        return self._apply_event(dev, topic, payload, now)

    def snapshot(self) -> dict[str, Any]:
        """Everything, JSON-ready (``/api/state`` and the first SSE message)."""
        now = time.time()
        return {
            "prefix": self.prefix,
            "history_s": self.history_s,
            "server_time": now,
            "bad_payloads": self.bad_payloads,
            "devices": [self.devices[k].to_json(now) for k in sorted(self.devices)],
        }

    # ---------------------------------------------------------------- internals
    def _bad(self, topic: str, why: str) -> None:
        self.bad_payloads += 1
        n = self.bad_payloads
        if n <= 10 or n % 100 == 0:
            log.warning("bad payload #%d on %s: %s", n, _text(topic, 80), _text(why, 120))

    def _json_object(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        try:
            obj = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError) as e:
            self._bad(topic, f"not JSON: {e}")
            return None
        if not isinstance(obj, dict):
            self._bad(topic, "not a JSON object")
            return None
        # Re-encoding proves it is strict JSON (no NaN) before it reaches browsers.
        try:
            json.dumps(obj, allow_nan=False)
        except ValueError as e:
            self._bad(topic, str(e))
            return None
        return obj

    def _apply_event(self, dev: DeviceEntry, topic: str, payload: bytes, now: float) -> bool:
        try:
            ev = Event.from_json(payload)
        except EventDecodeError as e:
            self._bad(topic, str(e))
            return False
        if self._seen.check_and_add(ev.event_id):
            self.duplicates += 1
            return False
        self._got_events.add(dev.device_id)
        dev.events += 1
        dev.model = _text(ev.model.name)
        if list(ev.scores) != dev.labels:
            # A new model (other labels): the old history cannot be drawn with them.
            dev.labels = [_text(k, 32) for k in ev.scores]
            dev.history.clear()
        if ev.type == "end":
            dev.faces.pop(ev.track_id, None)
        else:
            dev.faces[ev.track_id] = {
                "track_id": ev.track_id,
                "emotion": _text(ev.emotion, 32),
                "confidence": ev.confidence,
                "bbox": list(ev.bbox),
                "scores": [ev.scores[k] for k in ev.scores],
                "type": ev.type,
                "ts": _text(ev.ts, 40),
                "updated": now,
            }
        self._sample(dev, now)
        return True

    def _apply_state(self, dev: DeviceEntry, topic: str, payload: bytes, now: float) -> bool:
        st = self._json_object(topic, payload)
        if st is None:
            return False
        tracks = st.get("tracks")
        if st.get("schema") != STATE_SCHEMA or not isinstance(tracks, list):
            self._bad(topic, f"not a {STATE_SCHEMA} object")
            return False
        faces: dict[int, dict[str, Any]] = {}
        for t in tracks[:64]:
            ok = (
                isinstance(t, dict)
                and isinstance(t.get("track_id"), int)
                and isinstance(t.get("emotion"), str)
                and _finite(t.get("confidence"))
                and isinstance(t.get("bbox"), list)
                and len(t["bbox"]) == 4
                and all(_finite(v) for v in t["bbox"])
            )
            if not ok:
                self._bad(topic, "malformed track in state")
                return False
            faces[t["track_id"]] = {
                "track_id": t["track_id"],
                "emotion": _text(t["emotion"], 32),
                "confidence": float(t["confidence"]),
                "bbox": [int(v) for v in t["bbox"]],
                "scores": None,
                "type": "state",
                "ts": _text(st.get("ts"), 40),
                "updated": now,
            }
        dev.faces = faces
        return True

    def _sample(self, dev: DeviceEntry, now: float) -> None:
        """Append the mean score per label over the current faces (zeros when none)."""
        n = len(dev.labels)
        sums = [0.0] * n
        count = 0
        for f in dev.faces.values():
            scores = f.get("scores")
            if isinstance(scores, list) and len(scores) == n:
                for i, v in enumerate(scores):
                    sums[i] += v
                count += 1
        point = [round(s / count, 4) for s in sums] if count else sums
        dev.history.append((now, point))
        cutoff = now - self.history_s
        # Keep one point older than the window: it says what the value was at its left edge.
        while len(dev.history) > 1 and dev.history[1][0] < cutoff:
            dev.history.popleft()
