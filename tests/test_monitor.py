"""``fer-edge monitor`` logic: decoding, de-duplication, bad payloads, and a real broker run."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.errors import ConfigError, PublishError
from edge.events import Event, ModelRef
from edge.monitor import new_fleet, render, run_monitor
from edge.publish.config import MqttSinkConfig
from edge.publish.mqtt import MqttSink
from edge.subscribe.fleet import Fleet
from edge.subscribe.messages import Message
from edge.testing.broker import Mosquitto

MODEL = ModelRef("m", "f" * 64)


def ev(device: str, track: int, kind: str = "start", emotion: str = "happy") -> Event:
    scores = {"happy": 0.1, "sad": 0.1, "neutral": 0.1}
    scores[emotion] = 0.8
    return Event.create(
        device_id=device,
        frame=1,
        track_id=track,
        type=kind,  # type: ignore[arg-type]
        bbox=(1, 2, 3, 4),
        scores=scores,
        model=MODEL,
    )


def new_event(st: Fleet, topic: str, payload: bytes) -> Event | None:
    """What the monitor prints in JSON mode for one message: the new event, or None."""
    update = st.handle(Message(topic, payload), now=0.0)
    return None if update is None else update.event


def test_state_dedups_counts_bad_and_tracks_faces() -> None:
    st = new_fleet("fer")
    a, b = ev("cam1", 1), ev("cam1", 2, emotion="sad")
    assert new_event(st, "fer/cam1/events", a.to_json().encode()) == a
    assert new_event(st, "fer/cam1/events", a.to_json().encode()) is None  # QoS-1 redelivery
    assert new_event(st, "fer/cam1/events", b.to_json().encode()) == b
    assert new_event(st, "fer/cam1/events", b"{not json") is None
    assert new_event(st, "fer/cam1/events", json.dumps({"schema": "x"}).encode()) is None
    assert new_event(st, "fer/cam1/events", b"\xff\xfe") is None
    assert new_event(st, "fer/cam1/stats", b"[1, 2]") is None
    new_event(st, "fer/cam1/status", b"online")
    new_event(st, "fer/cam1/stats", json.dumps({"fps": 9.5, "queue_depth": 3}).encode())
    assert (st.events, st.duplicates, st.bad_payloads) == (2, 1, 4)
    view = st.devices["cam1"]
    assert view.status == "online" and sorted(view.faces.tracks) == [1, 2]
    new_event(st, "fer/cam1/events", ev("cam1", 1, kind="end").to_json().encode())
    assert sorted(view.faces.tracks) == [2]
    table = render(st, "mqtt://h:1883", now=0.0)
    assert "cam1" in table and "sad" in table and "9.5" in table and "bad 4" in table
    assert "last bad payload: fer/cam1/stats: not a JSON object" in table
    # Topics outside the prefix or with an unknown kind are ignored, not counted as bad; the
    # monitor leaves the retained state out (the events say the same, live).
    assert new_event(st, "other/cam1/events", b"x") is None
    assert new_event(st, "fer/cam1/images", b"x") is None
    assert new_event(st, "fer/cam1/state", b"x") is None
    assert st.bad_payloads == 4


def test_hostile_text_cannot_reach_the_terminal() -> None:
    st = new_fleet()
    new_event(st, "fer/cam\x1b[2J/status", b"\x1b]0;pwned\x07online")
    new_event(st, "fer/cam\x1b[2J/stats", b'{"fps": 1.5')  # bad: quoted in the header
    out = render(st, "mqtt://h:1883", now=0.0)
    assert "\x1b" not in out and "\x07" not in out
    assert "cam?[2J" in out and "?]0;pwned?online" in out  # control codes shown as ?


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="scheme"):
        run_monitor("http://localhost:1883", max_seconds=0)


def _run_in_thread(**kw: object) -> tuple[threading.Thread, io.StringIO, threading.Event]:
    out = io.StringIO()
    ready = threading.Event()
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["rc"] = run_monitor(out=out, ready=ready, **kw)  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 - surfaced by the assertion on the result
            result["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.result = result  # type: ignore[attr-defined]
    return t, out, ready


@pytest.mark.broker
def test_json_mode_prints_each_event_once(mosquitto: Mosquitto) -> None:
    t, out, ready = _run_in_thread(
        url=mosquitto.url, prefix="mon", as_json=True, max_events=6, max_seconds=20
    )
    assert ready.wait(10)
    sink = MqttSink(MqttSinkConfig(type="mqtt", url=mosquitto.url, topic_prefix="mon"), "cam-j")
    sink.open()
    raw = mqtt.Client(CallbackAPIVersion.VERSION2)
    raw.connect(mosquitto.host, mosquitto.port)
    raw.loop_start()
    try:
        assert sink.wait_connected(10)
        events = [ev("cam-j", i % 2) for i in range(6)]
        for e in events[:3]:
            sink.publish_event(e)
        # A redelivered duplicate and garbage must not show up as events.
        raw.publish("mon/cam-j/events", events[0].to_json(), qos=1).wait_for_publish(5)
        raw.publish("mon/cam-j/events", b"garbage", qos=1).wait_for_publish(5)
        for e in events[3:]:
            sink.publish_event(e)
        t.join(20)
        assert not t.is_alive()
        assert t.result == {"rc": 0}  # type: ignore[attr-defined]
        lines = out.getvalue().splitlines()
        assert [Event.from_json(x) for x in lines] == events
    finally:
        sink.close(timeout=2)
        raw.disconnect()
        raw.loop_stop()


@pytest.mark.broker
def test_table_mode_shows_devices_and_faces(mosquitto: Mosquitto) -> None:
    t, out, ready = _run_in_thread(
        url=mosquitto.url, prefix="tab", max_events=2, max_seconds=20, refresh_s=0.1, tty=False
    )
    assert ready.wait(10)
    sink = MqttSink(MqttSinkConfig(type="mqtt", url=mosquitto.url, topic_prefix="tab"), "cam-t")
    sink.open()
    try:
        assert sink.wait_connected(10)
        sink.publish_event(ev("cam-t", 7, emotion="surprise"))
        sink.publish_event(ev("cam-t", 8, emotion="sad"))
        t.join(20)
        assert not t.is_alive()
    finally:
        sink.close(timeout=2)
    text = out.getvalue()
    assert "\x1b" not in text  # no ANSI codes when not a terminal
    last = text.strip().split("fer-edge monitor")[-1]
    assert "cam-t" in last and "online" in last
    assert "track 7" in last and "surprise" in last and "track 8" in last


@pytest.mark.broker
def test_wrong_password_raises(mosquitto_factory: Callable[..., Mosquitto]) -> None:
    broker = mosquitto_factory(passwords={"u": "right"})
    with pytest.raises(PublishError, match="refused"):
        run_monitor(broker.url, username="u", password="wrong", max_seconds=10, out=io.StringIO())
