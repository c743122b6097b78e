"""``fer-edge monitor``: the reference dashboard subscriber, in a terminal.

Subscribes to ``<prefix>/+/events``, ``<prefix>/+/status`` and ``<prefix>/+/stats`` through the
shared subscriber side (``edge/subscribe``: the connection and its refusals, the message parser
and de-duplicator, the fold into per-device faces and liveness, the rules the web dashboard
shares) and only renders: a live table per device and per tracked face. On a terminal the table
is redrawn in place with ANSI escapes; otherwise (a pipe, a log file) the table is printed every
``refresh_s`` seconds when something changed. With ``as_json`` every new event is printed as one
JSON line instead.

A device whose ``online`` is no longer refreshed (no heartbeat, stats or events for
``stale_after_s``, or its MQTT 5 status expired) is shown ``stale``: see ``edge/liveness.py``.

Everything received is untrusted: text shown in the table is stripped of control characters and
cut to its column (a ``~`` marks a cut), so a hostile payload cannot drive the terminal.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from edge.liveness import DEFAULT_EXPIRY_S
from edge.publish.config import MqttSinkConfig
from edge.subscribe.fleet import DeviceView, Fleet
from edge.subscribe.link import UNREACHABLE, BrokerLink, subscriber_config
from edge.subscribe.messages import Message, printable

log = logging.getLogger(__name__)

#: The kinds the table shows; ``state`` is left out, the events say the same live.
KINDS = ("events", "status", "stats")
#: QoS per subscription: events and status must not be lost, a lost stats snapshot is stale.
QOS = {"events": 1, "status": 1, "stats": 0}
_CLEAR = "\x1b[H\x1b[2J"


def _clean(text: Any, limit: int = 40) -> str:
    """Printable, single-line text cut to ``limit`` with a ``~`` mark (a terminal cell)."""
    return printable(text, limit, mark="~")


def new_fleet(prefix: str = "fer", stale_after_s: float = DEFAULT_EXPIRY_S) -> Fleet:
    """The monitor's fold: events, status and stats under ``prefix``."""
    return Fleet(prefix, kinds=KINDS, stale_after_s=stale_after_s)


def broker_text(link: BrokerLink) -> str:
    """The connection state as the header shows it."""
    if link.state == UNREACHABLE:
        return f"unreachable, {link.attempts} attempts"
    return link.state


def render(fleet: Fleet, url: str, now: float, broker: str = "connecting") -> str:
    """The table as text (no ANSI codes).

    Args:
        fleet: What was received.
        url: The broker URL shown in the header (password masked).
        now: The fleet's clock (monotonic): when the table is drawn.
        broker: The connection state (:func:`broker_text`).
    """
    lines = [
        f"fer-edge monitor  {url} ({broker})  prefix {_clean(fleet.prefix)}  devices "
        f"{len(fleet.devices)}  events {fleet.events}  duplicates {fleet.duplicates}  bad "
        f"{fleet.bad_payloads}",
    ]
    if fleet.last_error:
        lines.append(f"last bad payload: {fleet.last_error}")
    lines.append(
        f"{'DEVICE':<20} {'STATUS':<8} {'FPS':>6} {'P50ms':>6} {'P95ms':>6} {'QUEUE':>6} "
        f"{'DROPPED':>7} {'RECONN':>6} {'UPTIME':>7} {'FACES':>5} {'EVENTS':>7}"
    )
    for name in sorted(fleet.devices):
        lines += _device_rows(fleet.devices[name], fleet.shown(name, now), now)
    return "\n".join(lines) + "\n"


def _device_rows(view: DeviceView, shown: str | None, now: float) -> list[str]:
    """One device's row and one row per face it tracks."""
    st = view.stats or {}
    lat = st.get("latency_ms")
    total = lat.get("total") if isinstance(lat, dict) else None
    total = total if isinstance(total, dict) else {}
    rows = [
        f"{_clean(view.device_id, 20):<20} {_clean(shown or '?', 16):<8} "
        f"{_num(st.get('fps')):>6} "
        f"{_num(total.get('p50')):>6} {_num(total.get('p95')):>6} "
        f"{_num(st.get('queue_depth')):>6} {_num(st.get('dropped')):>7} "
        f"{_num(st.get('reconnects')):>6} {_uptime(st.get('uptime_s')):>7} "
        f"{view.faces.faces:>5} {view.events:>7}"
    ]
    for tid, face in sorted(view.faces.tracks.items()):
        rows.append(
            f"    track {tid:<6} {_clean(face.emotion, 10):<10} {face.confidence:5.2f} "
            f"{face.type:<7} bbox {list(face.bbox)!s:<22} {now - face.updated:5.1f}s ago"
        )
    return rows


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


class _Screen:
    """Where the monitor writes: JSON lines, or the table redrawn at most every ``refresh_s``."""

    def __init__(self, stream: TextIO, redraw: bool, refresh_s: float, as_json: bool, url: str):
        self.stream, self.redraw, self.refresh_s = stream, redraw, refresh_s
        self.as_json, self.url = as_json, url
        self.dirty = True
        self._next = time.monotonic()

    def event(self, line: str) -> None:
        """Print one new event as a JSON line (JSON mode only)."""
        if self.as_json:
            self.stream.write(line + "\n")
            self.stream.flush()

    def tick(self, fleet: Fleet, broker: str, now: float) -> None:
        """Draw the table when due and something changed (on a terminal: when due)."""
        if self.as_json or now < self._next or not (self.dirty or self.redraw):
            return
        self.draw(fleet, broker, now)
        self.dirty = False
        self._next = now + self.refresh_s

    def draw(self, fleet: Fleet, broker: str, now: float) -> None:
        """Draw the table now (in place on a terminal, appended otherwise)."""
        if self.as_json:
            return
        table = render(fleet, self.url, now, broker)
        self.stream.write((_CLEAR + table) if self.redraw else (table + "\n"))
        self.stream.flush()


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
    stream = out if out is not None else sys.stdout
    redraw = tty if tty is not None else bool(getattr(stream, "isatty", lambda: False)())
    cfg = subscriber_config(
        "monitor", url, prefix, username=username, password=password,
        ca_file=ca_file, cert_file=cert_file, key_file=key_file,
    )  # fmt: skip
    fleet = new_fleet(prefix, stale_after_s)
    screen = _Screen(stream, redraw, refresh_s, as_json, cfg.safe_url())
    _watch(cfg, fleet, screen, client_id, ready, (max_seconds, max_events))
    return 0


def _watch(
    cfg: MqttSinkConfig,
    fleet: Fleet,
    screen: _Screen,
    client_id: str | None,
    ready: threading.Event | None,
    limits: tuple[float | None, int | None],
) -> None:
    """Subscribe, follow until a limit or Ctrl-C, draw the last table and log what was dropped.

    Raises:
        PublishError: if the broker refuses the login (retrying cannot help).
    """
    inbox: queue.Queue[Message] = queue.Queue()  # paho's thread -> this one
    link = BrokerLink(
        cfg,
        [(fleet.topics.wildcard(k), QOS[k]) for k in KINDS],
        inbox.put,
        who="monitor",
        hint="--mqtt-url credentials",
        client_id=client_id,
        on_ready=ready.set if ready is not None else None,
    )
    link.start()
    try:
        _follow(link, inbox, fleet, screen, *limits)
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
    screen.draw(fleet, broker_text(link), time.monotonic())
    if fleet.bad_payloads or fleet.duplicates:
        log.warning(
            "monitor: %d events, %d duplicates dropped, %d bad payloads",
            fleet.events,
            fleet.duplicates,
            fleet.bad_payloads,
        )


def _follow(
    link: BrokerLink,
    inbox: queue.Queue[Message],
    fleet: Fleet,
    screen: _Screen,
    max_seconds: float | None,
    max_events: int | None,
) -> None:
    """Fold what arrives and keep the screen current until a limit is reached.

    Raises:
        PublishError: once the broker refused the login for good.
    """
    start = time.monotonic()
    while True:
        link.check()
        if max_seconds is not None and time.monotonic() - start >= max_seconds:
            return
        if max_events is not None and fleet.events >= max_events:
            return
        try:
            msg = inbox.get(timeout=0.1)
        except queue.Empty:
            pass
        else:
            update = fleet.handle(msg, time.monotonic())
            screen.dirty = True
            if update is not None and update.event is not None:
                screen.event(update.event.to_json())
        # One instant for the sweep and the table, so a device swept stale is drawn stale.
        now = time.monotonic()
        if fleet.sweep(now):
            screen.dirty = True  # a device went stale: silence changes the table too
        screen.tick(fleet, broker_text(link), now)
