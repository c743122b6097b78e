"""Liveness that expires (edge/liveness.py) and how the sink, monitor, dashboard and HA use it.

The pure rule is tested first; then, with a real mosquitto: the heartbeat carries the MQTT 5
expiry, a silent device (a black-holed link: no FIN, no will yet) is shown ``stale`` by the real
monitor and dashboard subscribers within the expiry, a half-open link is noticed by the device
within 1.5x keepalive without losing an event, and after a broker crash (SIGKILL, with
persistence) the dead device's retained ``online`` has expired instead of living for ever.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.dashboard.state import DashboardState
from edge.errors import ConfigError
from edge.events import Event
from edge.liveness import DEFAULT_EXPIRY_S, Liveness, heartbeat_interval, message_expiry
from edge.monitor import new_fleet, render, run_monitor
from edge.publish.config import MqttSinkConfig
from edge.publish.homeassistant import discovery_configs
from edge.publish.mqtt import MqttSink
from edge.publish.registry import parse_sink_config
from edge.subscribe.link import subscriber_config
from edge.subscribe.messages import Message
from edge.testing.broker import Mosquitto, TcpProxy, free_port
from edge.testing.mqtt import TEST_MODEL, fast_sink_config, wait_until


def event(device: str, frame: int) -> Event:
    """An event with two scores (the dashboard's chart has a series per label seen)."""
    return Event.create(
        device_id=device,
        frame=frame,
        track_id=1,
        type="update",
        bbox=(1, 2, 30, 30),
        scores={"happy": 0.8, "sad": 0.2},
        model=TEST_MODEL,
    )


# ------------------------------------------------------------------------------ the rule
def test_default_meets_the_target_and_heartbeat_is_a_fraction() -> None:
    assert DEFAULT_EXPIRY_S + 1 <= 60  # shown stale <= 60 s after silence (+1 s display tick)
    assert heartbeat_interval(45) == 15
    assert heartbeat_interval(45, keepalive_s=20) == 10  # at most keepalive/2: the probe
    assert MqttSinkConfig().status_expiry_s == DEFAULT_EXPIRY_S
    assert MqttSinkConfig().protocol == "5"


def test_liveness_rule() -> None:
    lv = Liveness()
    assert lv.shown(0) is None
    # A 3.1.1 device (no expiry): every live message counts for the subscriber's stale_after_s.
    lv.observe("status", 100.0, stale_after_s=45, status="online")
    lv.observe("stats", 105.0, stale_after_s=45)
    assert lv.shown(149.9) == "online" and lv.shown(150.1) == "stale"
    # A live MQTT 5 heartbeat announces the device's period: later events count that long.
    lv.observe("status", 160.0, stale_after_s=45, status="online", expiry_s=10)
    assert lv.period == 10 and lv.shown(169.9) == "online" and lv.shown(170.1) == "stale"
    lv.observe("events", 168.0, stale_after_s=45)
    assert lv.shown(177.9) == "online" and lv.shown(178.1) == "stale"
    # A short expiry never cancels evidence already held.
    lv.observe("status", 171.0, stale_after_s=45, status="online", expiry_s=2)
    assert lv.shown(177.9) == "online"
    # Retained non-status messages may be old: no evidence.
    lv.observe("state", 200.0, stale_after_s=45, retained=True)
    assert lv.shown(200.0) == "stale"
    # A retained 'online' counts for what is left of it (MQTT 5), and does not set the period.
    fresh = Liveness()
    fresh.observe("status", 300.0, stale_after_s=45, status="online", retained=True, expiry_s=3)
    assert (
        fresh.period is None and fresh.shown(302.9) == "online" and fresh.shown(303.1) == ("stale")
    )
    # A retained 'online' without expiry (3.1.1) counts once, for stale_after_s.
    old = Liveness()
    old.observe("status", 300.0, stale_after_s=5, status="online", retained=True)
    assert old.shown(304.9) == "online" and old.shown(305.1) == "stale"
    # The will and a clean stop are shown as they are, whatever the age.
    for final in ("offline", "stopped"):
        lv.observe("status", 400.0, stale_after_s=5, status=final)
        assert lv.shown(10_000.0) == final


def test_message_expiry_reads_paho_properties() -> None:
    props = Properties(PacketTypes.PUBLISH)
    assert message_expiry(props) is None
    props.MessageExpiryInterval = 42
    assert message_expiry(props) == 42.0
    assert message_expiry(None) is None


def test_monitor_and_dashboard_share_the_rule() -> None:
    """The same messages give the same shown status in both subscribers, at every time."""
    mon = new_fleet("fer", stale_after_s=6)
    dash = DashboardState("fer", stale_after_s=6)
    ev = event("cam", 1)
    script: list[tuple[float, str, bytes, bool, float | None]] = [
        (0.0, "fer/cam/status", b"online", True, None),
        (1.0, "fer/cam/events", ev.to_json().encode(), False, None),
        (2.0, "fer/cam/status", b"online", False, 4.0),
        (20.0, "fer/cam/status", b"online", False, 4.0),
        (30.0, "fer/cam/stats", b'{"fps": 1.0}', False, None),
        (50.0, "fer/cam/status", b"offline", False, None),
    ]
    times = [t / 2 for t in range(0, 120)]
    shown_mon, shown_dash = [], []
    i = 0
    for now in times:
        while i < len(script) and script[i][0] <= now:
            t, topic, payload, retained, expiry = script[i]
            mon.handle(Message(topic, payload, retained, expiry), now=t)
            dash.handle(topic, payload, now=t, retained=retained, expiry_s=expiry)
            i += 1
        shown_mon.append(mon.shown("cam", now))
        shown_dash.append(dash.device_json("cam", now)["liveness"])  # type: ignore[index]
    assert shown_mon == shown_dash
    assert shown_mon[times.index(6.5)] == "online"  # event at 1 s: evidence until 7 s
    assert shown_mon[times.index(7.5)] == "stale"
    assert shown_mon[times.index(24.5)] == "stale" and shown_mon[times.index(23.5)] == "online"
    assert shown_mon[times.index(33.5)] == "online"  # period 4 s announced by the heartbeat
    assert shown_mon[times.index(34.5)] == "stale"
    assert shown_mon[-1] == "offline"


def test_dashboard_sweep_reports_silent_deaths_and_clears_faces() -> None:
    dash = DashboardState("fer", stale_after_s=5)
    dash.handle("fer/cam/status", b"online", now=0.0)
    dash.handle("fer/cam/events", event("cam", 1).to_json().encode(), now=1.0)
    assert dash.sweep(now=2.0) == [] and dash.fleet.devices["cam"].faces.tracks
    assert dash.sweep(now=6.5) == ["cam"]
    assert dash.fleet.devices["cam"].faces.tracks == {}
    assert dash.device_json("cam", 6.5)["liveness"] == "stale"  # type: ignore[index]
    assert dash.charts["cam"].history[-1] == (6.5, [0.0, 0.0])  # the chart drops to zero
    assert dash.sweep(now=7.0) == []  # reported once
    mon = new_fleet("fer", stale_after_s=5)
    mon.handle(Message("fer/cam/status", b"online"), now=0.0)
    mon.handle(Message("fer/cam/events", event("cam", 1).to_json().encode()), now=0.5)
    assert mon.sweep(now=1.0) == [] and "track 1" in render(mon, "u", now=1.0)
    (swept,) = mon.sweep(now=5.6)
    assert (swept.device, swept.cleared) == ("cam", True) and mon.sweep(now=6.0) == []
    table = render(mon, "u", now=5.6)
    assert "stale" in table and "track 1" not in table  # the monitor shows faces now, too


def test_home_assistant_sensors_expire_and_config_is_validated() -> None:
    cfgs = discovery_configs(
        device_id="cam",
        topic_prefix="fer",
        discovery_prefix="homeassistant",
        model_name="m",
        labels=["happy", "sad"],
        expire_after=45,
    )
    assert {c["expire_after"] for c in cfgs.values()} == {45}
    sink = MqttSink(MqttSinkConfig(status_expiry_s=20), "cam")  # not opened: nothing connects
    assert sink._discovery is not None and sink._discovery.expire_after == 20
    assert sink.heartbeat_s == 20 / 3
    for bad in (0, 2, 86401, "soon"):
        with pytest.raises(ConfigError, match="status_expiry_s"):
            parse_sink_config({"type": "mqtt", "status_expiry_s": bad})
    assert parse_sink_config({"type": "mqtt", "status_expiry_s": 3}).status_expiry_s == 3  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ real broker
class V5Subscriber:
    """An MQTT 5 subscriber recording (monotonic time, topic, payload, retain, expiry)."""

    def __init__(self, broker: Mosquitto, topic: str) -> None:
        self.messages: list[tuple[float, str, bytes, bool, float | None]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)

        def on_message(c: Any, u: Any, msg: Any) -> None:
            with self._lock:
                self.messages.append(
                    (
                        time.monotonic(),
                        msg.topic,
                        bytes(msg.payload),
                        bool(msg.retain),
                        message_expiry(msg.properties),
                    )
                )

        self.client.on_message = on_message
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert ready.wait(10)

    def on(self, topic: str) -> list[tuple[float, bytes, bool, float | None]]:
        with self._lock:
            return [(t, p, r, e) for t, tp, p, r, e in self.messages if tp == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def sink_cfg(url: str, **kw: Any) -> MqttSinkConfig:
    """A sink with a 3 s status expiry (heartbeat every second) and no HA discovery."""
    base = {"reconnect_min_s": 0.2, "reconnect_max_s": 0.5, "keepalive_s": 6}
    return fast_sink_config(url, **{**base, "status_expiry_s": 3, "homeassistant": False, **kw})


@pytest.mark.broker
def test_heartbeat_refreshes_online_and_state_with_mqtt5_expiry(mosquitto: Mosquitto) -> None:
    sub = V5Subscriber(mosquitto, "fer/hb-cam/#")
    sink = MqttSink(sink_cfg(mosquitto.url), "hb-cam")
    try:
        sink.open()
        assert sink.wait_connected(10)
        sink.publish_state({"schema": "fer.state/1", "faces": 0})
        assert sink.heartbeat_s == 1.0  # 3 s expiry / 3
        assert wait_until(lambda: len(sub.on("fer/hb-cam/status")) >= 4, 10)
        status = sub.on("fer/hb-cam/status")
        assert {p for _, p, _, _ in status} == {b"online"}
        assert all(e is not None and 0 < e <= 3 for _, _, _, e in status)
        gaps = [b[0] - a[0] for a, b in zip(status, status[1:], strict=False)]
        assert max(gaps) < 2.0, gaps  # refreshed about every second
        assert wait_until(lambda: len(sub.on("fer/hb-cam/state")) >= 3, 5)
        assert all(e is not None for _, _, _, e in sub.on("fer/hb-cam/state"))
        assert sink.stats()["heartbeats"] >= 3 and sink.stats()["half_open"] == 0
        sink.close(2)
        assert wait_until(lambda: sub.on("fer/hb-cam/status")[-1][1] == b"stopped", 5)
        assert sub.on("fer/hb-cam/status")[-1][3] is None  # 'stopped' never expires
    finally:
        sink.close(2)
        sub.close()


def _dashboard_api(port: int) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=2) as r:
        return dict(json.load(r))


@pytest.mark.broker
@pytest.mark.slow
def test_silent_device_is_stale_everywhere_and_half_open_link_is_noticed(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    """A link that stops forwarding without closing: the monitor and dashboard show the device
    stale within its 3 s expiry (long before the broker's will at 1.5 x 6 s), the device
    notices the dead link within 1.5 x keepalive, and every event reaches the broker after the
    link returns."""
    from edge.dashboard.server import Dashboard, run_dashboard

    broker = mosquitto_factory()
    proxy = TcpProxy(broker.host, broker.port)
    keepalive = 6
    # Subscribers: the real monitor (table on a StringIO) and the real dashboard server.
    out = io.StringIO()
    mon_ready, stop = threading.Event(), threading.Event()
    mon = threading.Thread(
        target=run_monitor,
        args=(broker.url,),
        kwargs={"out": out, "tty": False, "ready": mon_ready, "max_seconds": 45, "refresh_s": 0.2},
        daemon=True,
    )
    mon.start()
    port = free_port()
    dash = Dashboard(subscriber_config("dashboard", broker.url), push_interval_s=0.1)
    dash_ready = threading.Event()
    dt = threading.Thread(
        target=run_dashboard,
        args=(dash, "127.0.0.1", port),
        kwargs={"stop": stop, "ready": dash_ready},
        daemon=True,
    )
    dt.start()
    oracle = V5Subscriber(broker, "fer/ho-cam/#")
    sink = MqttSink(sink_cfg(proxy.url, keepalive_s=keepalive), "ho-cam")
    try:
        assert mon_ready.wait(10) and dash_ready.wait(10)
        sink.open()
        assert sink.wait_connected(10)
        events = [event("ho-cam", i) for i in range(40)]
        for e in events[:20]:
            sink.publish_event(e)
        assert wait_until(lambda: sink.stats()["published"] == 20)

        def monitor_status() -> str | None:
            rows = [ln.split() for ln in out.getvalue().splitlines() if ln.startswith("ho-cam ")]
            return rows[-1][1] if rows else None

        def dash_status() -> str | None:
            devs = {d["device_id"]: d for d in _dashboard_api(port)["devices"]}
            return devs["ho-cam"]["liveness"] if "ho-cam" in devs else None

        assert wait_until(lambda: monitor_status() == "online" and dash_status() == "online")
        proxy.forward_up = proxy.forward_down = False  # half-open: no FIN, nothing arrives
        silent = time.monotonic()
        for e in events[20:]:
            sink.publish_event(e)  # queued / in flight on a dead link
        assert wait_until(lambda: monitor_status() == "stale", 3 + 2.5), out.getvalue()[-500:]
        t_mon = time.monotonic() - silent
        assert wait_until(lambda: dash_status() == "stale", 3 + 2.5)
        t_dash = time.monotonic() - silent
        assert wait_until(lambda: sink.stats()["half_open"] >= 1, 1.5 * keepalive)
        t_detect = time.monotonic() - silent
        assert t_detect <= 1.5 * keepalive
        # The broker's will ('offline') follows at 1.5 x keepalive of silence.
        assert wait_until(lambda: monitor_status() == "offline", 1.5 * keepalive + 3)
        proxy.forward_up = proxy.forward_down = True
        assert wait_until(lambda: sink.stats()["published"] == 40, 20), sink.stats()
        assert wait_until(lambda: monitor_status() == "online", 10)
        got = {Event.from_json(p).event_id for _, p, _, _ in oracle.on("fer/ho-cam/events")}
        assert wait_until(
            lambda: (
                {Event.from_json(p).event_id for _, p, _, _ in oracle.on("fer/ho-cam/events")}
                >= {e.event_id for e in events}
            ),
            10,
        ), len(got)
        assert sink.stats()["dropped"] == 0 and sink.stats()["reconnects"] >= 1
        print(f"stale: monitor {t_mon:.1f} s, dashboard {t_dash:.1f} s; dead link {t_detect:.1f} s")
    finally:
        sink.close(2)
        oracle.close()
        stop.set()
        dt.join(10)
        proxy.close()


@pytest.mark.broker
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_broker_crash_then_device_death_leaves_no_eternal_online(
    mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path, protocol: str
) -> None:
    """The issue's measurement: a broker with persistence crashes (SIGKILL), the device dies
    while it is down, the broker comes back. Over MQTT 5 the retained 'online' has expired; over
    3.1.1 it survives (the broker cannot know), and subscribers show it stale by age."""
    broker = mosquitto_factory(persistence=True, autosave_s=1)
    sink = MqttSink(sink_cfg(broker.url, protocol=protocol, status_expiry_s=4), "crash-cam")
    sink.open()
    assert sink.wait_connected(10)
    time.sleep(2.5)  # an autosave with the retained 'online' in it
    broker.kill()
    sink.close(0.5)  # the device dies during the outage: no 'stopped', no will
    time.sleep(4.5)  # longer than the expiry since the last heartbeat
    broker.start()
    sub = V5Subscriber(broker, "fer/crash-cam/status")
    time.sleep(1.0)
    retained = [p for _, p, r, _ in sub.on("fer/crash-cam/status") if r]
    sub.close()
    if protocol == "5":
        assert retained == []
    else:
        assert retained == [b"online"]  # the 3.1.1 fallback: subscribers judge by age
        mon = new_fleet("fer", stale_after_s=2)
        mon.handle(Message("fer/crash-cam/status", retained[0], retained=True), now=0.0)
        assert mon.shown("crash-cam", 1.9) == "online"
        assert mon.shown("crash-cam", 2.1) == "stale"


def test_device_status_values_are_the_payloads() -> None:
    from edge.liveness import ONLINE, STALE, DeviceStatus

    # The retained status payloads (README, docs/DASHBOARDS.md, dashboard app.js) and 'stale'.
    assert [s.value for s in DeviceStatus] == ["online", "offline", "stopped", "stale"]
    assert ONLINE is DeviceStatus.ONLINE and STALE is DeviceStatus.STALE
    assert (
        json.dumps([DeviceStatus.STOPPED]) == '["stopped"]'
        and f"{DeviceStatus.OFFLINE}" == "offline"
    )
