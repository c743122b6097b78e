"""``fer-edge monitor``: the reference dashboard subscriber.

Subscribes to ``<prefix>/+/events``, ``<prefix>/+/status`` and ``<prefix>/+/stats``, decodes
events with :meth:`Event.from_json` (malformed payloads are counted and logged, never a
traceback), drops QoS-1 redeliveries by ``event_id`` and shows a live table per device and per
tracked face. On a terminal the table is redrawn in place with ANSI escapes; otherwise (a pipe, a
log file) the table is printed every ``refresh_s`` seconds when something changed. With
``as_json`` every new event is printed as one JSON line instead.

A device whose ``online`` is no longer refreshed (no heartbeat, stats or events for
``stale_after_s``, or its MQTT 5 status expired) is shown ``stale``: see ``edge/liveness.py``,
the rule the web dashboard shares.

Everything received is untrusted: text shown in the table is stripped of control characters so a
hostile payload cannot drive the terminal.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from edge.errors import ConfigError, PublishError
from edge.events import Event, EventDecodeError, SeenEvents
from edge.liveness import DEFAULT_EXPIRY_S, Liveness, message_expiry
from edge.publish.config import MqttSinkConfig

log = logging.getLogger(__name__)

#: How many event ids are remembered for de-duplication.
SEEN_IDS = 100_000
_CLEAR = "\x1b[H\x1b[2J"


def _clean(text: Any, limit: int = 40) -> str:
    """Printable, single-line, bounded text from untrusted input."""
    s = "".join(c if c.isprintable() else "?" for c in str(text))
    return s if len(s) <= limit else s[: limit - 1] + "~"


@dataclass
class DeviceView:
    """What the monitor knows about one device."""

    status: str | None = None
    stats: dict[str, Any] | None = None
    tracks: dict[int, tuple[Event, float]] = field(default_factory=dict)
    events: int = 0
    last_seen: float = 0.0
    live: Liveness = field(default_factory=Liveness)


@dataclass
class MonitorState:
    """Decoded view of everything received; independent of MQTT for testing."""

    prefix: str = "fer"
    devices: dict[str, DeviceView] = field(default_factory=dict)
    events: int = 0
    duplicates: int = 0
    bad_payloads: int = 0
    last_error: str | None = None
    #: Connection state shown in the header (set from the MQTT thread).
    broker: str = "connecting"
    #: Evidence of life without an MQTT 5 expiry counts this long (``edge/liveness.py``).
    stale_after_s: float = DEFAULT_EXPIRY_S
    _seen: SeenEvents = field(default_factory=lambda: SeenEvents(SEEN_IDS))
    _shown: dict[str, str | None] = field(default_factory=dict)

    def handle(
        self,
        topic: str,
        payload: bytes,
        now: float | None = None,
        *,
        retained: bool = False,
        expiry_s: float | None = None,
    ) -> Event | None:
        """Apply one message; return the event if it is a new (not duplicate) event.

        ``retained`` and ``expiry_s`` (its MQTT 5 message-expiry interval) feed the device's
        :class:`~edge.liveness.Liveness`; ``now`` is on the monotonic clock.
        """
        now = time.monotonic() if now is None else now
        head = self.prefix + "/"
        rest = topic[len(head) :] if topic.startswith(head) else ""
        device, _, kind = rest.partition("/")
        if not device or kind not in ("events", "status", "stats"):
            return None
        view = self.devices.setdefault(device, DeviceView())
        view.last_seen = now
        status = payload.decode("utf-8", "replace").strip() if kind == "status" else None
        view.live.observe(
            kind,
            now,
            stale_after_s=self.stale_after_s,
            status=status,
            retained=retained,
            expiry_s=expiry_s,
        )
        if status is not None:
            view.status = _clean(status, 16)
            return None
        if kind == "stats":
            try:
                stats = json.loads(payload)
                if not isinstance(stats, dict):
                    raise ValueError("not a JSON object")
            except (ValueError, UnicodeDecodeError) as e:
                self._bad(topic, f"stats: {e}")
                return None
            view.stats = stats
            return None
        try:
            event = Event.from_json(payload)
        except EventDecodeError as e:
            self._bad(topic, str(e))
            return None
        if self._seen.check_and_add(event.event_id):
            self.duplicates += 1
            return None
        self.events += 1
        view.events += 1
        if event.type == "end":
            view.tracks.pop(event.track_id, None)
        else:
            view.tracks[event.track_id] = (event, now)
        return event

    def shown_status(self, device: str, now: float | None = None) -> str | None:
        """The status shown for ``device``: ``stale`` once its ``online`` ran out."""
        view = self.devices.get(device)
        if view is None:
            return None
        shown = view.live.shown(time.monotonic() if now is None else now)
        return None if shown is None else _clean(shown, 16)

    def sweep(self, now: float | None = None) -> bool:
        """Whether any device's shown status changed since the last sweep (redraw then)."""
        now = time.monotonic() if now is None else now
        changed = False
        for name in self.devices:
            shown = self.shown_status(name, now)
            if self._shown.get(name) != shown:
                self._shown[name] = shown
                changed = True
        return changed

    def _bad(self, topic: str, why: str) -> None:
        self.bad_payloads += 1
        self.last_error = f"{_clean(topic, 60)}: {_clean(why, 100)}"
        n = self.bad_payloads
        if n <= 10 or n % 100 == 0:
            log.warning("bad payload #%d on %s", n, self.last_error)

    def render(self, url: str, now: float | None = None) -> str:
        """The table as text (no ANSI codes)."""
        now = time.monotonic() if now is None else now
        lines = [
            f"fer-edge monitor  {url} ({self.broker})  prefix {_clean(self.prefix)}  devices "
            f"{len(self.devices)}  events {self.events}  duplicates {self.duplicates}  bad "
            f"{self.bad_payloads}",
        ]
        if self.last_error:
            lines.append(f"last bad payload: {self.last_error}")
        lines.append(
            f"{'DEVICE':<20} {'STATUS':<8} {'FPS':>6} {'P50ms':>6} {'P95ms':>6} {'QUEUE':>6} "
            f"{'DROPPED':>7} {'RECONN':>6} {'UPTIME':>7} {'FACES':>5} {'EVENTS':>7}"
        )
        for name in sorted(self.devices):
            v = self.devices[name]
            st = v.stats or {}
            lat = st.get("latency_ms")
            total = lat.get("total") if isinstance(lat, dict) else None
            total = total if isinstance(total, dict) else {}
            lines.append(
                f"{_clean(name, 20):<20} {self.shown_status(name, now) or '?':<8} "
                f"{_num(st.get('fps')):>6} "
                f"{_num(total.get('p50')):>6} {_num(total.get('p95')):>6} "
                f"{_num(st.get('queue_depth')):>6} {_num(st.get('dropped')):>7} "
                f"{_num(st.get('reconnects')):>6} {_uptime(st.get('uptime_s')):>7} "
                f"{len(v.tracks):>5} {v.events:>7}"
            )
            for tid in sorted(v.tracks):
                ev, seen = v.tracks[tid]
                lines.append(
                    f"    track {tid:<6} {_clean(ev.emotion, 10):<10} {ev.confidence:5.2f} "
                    f"{ev.type:<7} bbox {list(ev.bbox)!s:<22} {now - seen:5.1f}s ago"
                )
        return "\n".join(lines) + "\n"


def _uptime(v: Any) -> str:
    """Seconds as a short duration (``42s``, ``5m03s``, ``3h07m``, ``2d04h``)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1e10:
        return "-"
    s = int(v)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, int):
        return str(v)
    return "-"


def run_monitor(
    url: str,
    prefix: str = "fer",
    as_json: bool = False,
    *,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
    client_id: str | None = None,
    max_seconds: float | None = None,
    max_events: int | None = None,
    refresh_s: float = 1.0,
    out: TextIO | None = None,
    tty: bool | None = None,
    ready: threading.Event | None = None,
    stale_after_s: float = DEFAULT_EXPIRY_S,
) -> int:
    """Subscribe to a broker and show what fer-edge devices publish, until stopped.

    Args:
        url: Broker URL (``mqtt://host:1883`` or ``mqtts://host:8883``).
        prefix: Topic prefix the devices use.
        as_json: Print each new event as one JSON line instead of the table.
        username: Broker user (or in the URL).
        password: Broker password (default: ``$FER_EDGE_MQTT_PASSWORD``).
        ca_file: CA for ``mqtts``; cert_file/key_file: client certificate.
        client_id: MQTT client id (default: a random ``fer-edge-monitor-...``).
        max_seconds: Stop after this long (None: until Ctrl-C).
        max_events: Stop after this many new events (None: no limit).
        refresh_s: Table refresh period.
        out: Output stream (default ``sys.stdout``).
        tty: Force ANSI redraw on/off (default: whether ``out`` is a terminal).
        ready: Set once the subscriptions are acknowledged (for tests and scripts).
        stale_after_s: Show an ``online`` device as ``stale`` after this long without any sign
            of life (heartbeat, stats, events) unless its MQTT 5 status expiry says otherwise.

    Returns:
        0 (Ctrl-C is the normal way to leave).

    Raises:
        ConfigError: for a malformed URL or unreadable credentials.
        PublishError: if the broker refuses the login (retrying cannot help).
    """
    from edge.publish.client import FATAL_CONNACK, make_client

    stream = out if out is not None else sys.stdout
    redraw = tty if tty is not None else bool(getattr(stream, "isatty", lambda: False)())
    try:
        cfg = MqttSinkConfig(
            type="mqtt",
            url=url,
            username=username,
            password=password,  # type: ignore[arg-type]  # pydantic coerces str to SecretStr
            ca_file=Path(ca_file) if ca_file else None,
            cert_file=Path(cert_file) if cert_file else None,
            key_file=Path(key_file) if key_file else None,
            topic_prefix=prefix,
            reconnect_min_s=0.5,
            reconnect_max_s=10.0,
        )
    except ValidationError as e:
        msgs = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        raise ConfigError(f"monitor: {msgs}") from None
    cid = client_id or f"fer-edge-monitor-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    client, host, port, _ = make_client(cfg, cid)
    inbox: queue.Queue[tuple[str, bytes, bool, float | None]] = queue.Queue()
    fatal: list[str] = []
    connected = threading.Event()
    failures = [0]
    state = MonitorState(prefix=prefix, stale_after_s=stale_after_s)
    subs = [(f"{prefix}/+/events", 1), (f"{prefix}/+/status", 1), (f"{prefix}/+/stats", 0)]

    def on_connect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            code = int(rc.value)
            if code in FATAL_CONNACK:
                fatal.append(FATAL_CONNACK[code])
                c.disconnect()
            else:
                log.warning("broker %s refused the connection (%s); retrying", cfg.safe_url(), rc)
            return
        connected.set()
        failures[0] = 0
        state.broker = "connected"
        c.subscribe(subs)

    def on_subscribe(c: Any, u: Any, mid: Any, rcs: Any, props: Any) -> None:
        if ready is not None:
            ready.set()

    def on_connect_fail(c: Any, u: Any) -> None:
        failures[0] += 1
        n = failures[0]
        state.broker = f"unreachable, {n} attempts"
        if n & (n - 1) == 0:  # 1, 2, 4, 8, ...
            log.warning("broker %s unreachable (%d attempts); retrying", cfg.safe_url(), n)

    def on_disconnect(c: Any, u: Any, flags: Any, rc: Any, props: Any) -> None:
        if connected.is_set():
            log.warning("lost connection to %s (%s); reconnecting", cfg.safe_url(), rc)
        connected.clear()
        state.broker = "reconnecting"

    def on_message(c: Any, u: Any, msg: Any) -> None:
        expiry = message_expiry(getattr(msg, "properties", None))
        inbox.put((str(msg.topic), bytes(msg.payload), bool(msg.retain), expiry))

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_connect_fail = on_connect_fail
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    safe = cfg.safe_url()
    client.connect_async(host, port, keepalive=30)
    client.loop_start()
    start = time.monotonic()
    next_draw = start
    dirty = True
    try:
        while True:
            now = time.monotonic()
            if fatal:
                raise PublishError(
                    f"MQTT broker {safe} refused the monitor's connection: {fatal[0]}; check "
                    "--mqtt-url credentials or $FER_EDGE_MQTT_PASSWORD"
                )
            if max_seconds is not None and now - start >= max_seconds:
                break
            if max_events is not None and state.events >= max_events:
                break
            try:
                topic, payload, retained, expiry = inbox.get(timeout=0.1)
            except queue.Empty:
                pass
            else:
                ev = state.handle(topic, payload, retained=retained, expiry_s=expiry)
                dirty = True
                if ev is not None and as_json:
                    stream.write(ev.to_json() + "\n")
                    stream.flush()
            if state.sweep():
                dirty = True  # a device went stale: silence changes the table too
            if not as_json and (now >= next_draw) and (dirty or redraw):
                _draw(stream, state.render(safe), redraw)
                dirty = False
                next_draw = now + refresh_s
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    if not as_json:
        _draw(stream, state.render(safe), redraw)
    if state.bad_payloads or state.duplicates:
        log.warning(
            "monitor: %d events, %d duplicates dropped, %d bad payloads",
            state.events,
            state.duplicates,
            state.bad_payloads,
        )
    return 0


def _draw(stream: TextIO, table: str, redraw: bool) -> None:
    stream.write((_CLEAR + table) if redraw else (table + "\n"))
    stream.flush()
