"""The MQTT sink against a real mosquitto: delivery, status/LWT, outages, overflow, auth, TLS."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.errors import ConfigError, PublishError
from edge.events import Event
from edge.publish.jsonl import JsonlSink
from edge.publish.mqtt import MqttSink
from edge.publish.registry import SinkGroup
from edge.testing.broker import Mosquitto, Subscriber, TcpProxy
from edge.testing.mqtt import fast_sink_config, make_events, wait_until

pytestmark = pytest.mark.broker

SECRET = "s3cr3t-Pa55word"


def decoded(payloads: list[bytes]) -> list[Event]:
    return [Event.from_json(p) for p in payloads]


def assert_delivered(sink: MqttSink, sub: Subscriber, n: int) -> None:
    """Open ``sink`` and publish ``n`` events: ``sub`` gets all of them, in order."""
    sink.open()
    assert sink.wait_connected(10)
    events = make_events(n, sink.device_id)
    for ev in events:
        sink.publish_event(ev)
    assert sub.wait_for(lambda s: len(s.on(sink.topic_events)) == len(events))
    assert decoded(sub.on(sink.topic_events)) == events


def test_events_arrive_in_order_with_status(mosquitto: Mosquitto) -> None:
    sink = MqttSink(fast_sink_config(mosquitto.url), "dev-arrive")
    sub = Subscriber(mosquitto.url, ["fer/dev-arrive/#"])
    try:
        assert_delivered(sink, sub, 40)
        assert wait_until(lambda: sink.stats()["published"] == 40)
        st = sink.stats()
        assert st["connected"] is True
        assert (st["queue_depth"], st["dropped"], st["reconnects"]) == (0, 0, 0)
        sink.close(timeout=3)
        assert sink.drain_undelivered() == []
        assert sub.wait_for(lambda s: s.on(sink.topic_status)[-1:] == [b"stopped"])
        assert sub.on(sink.topic_status)[0] == b"online"
    finally:
        sub.close()
    # A dashboard that subscribes later gets the retained 'stopped'.
    late = Subscriber(mosquitto.url, ["fer/dev-arrive/status"])
    try:
        assert late.wait_for(lambda s: s.messages != [])
        assert late.messages == [("fer/dev-arrive/status", b"stopped", True)]
    finally:
        late.close()


def test_online_is_retained_while_running(mosquitto: Mosquitto) -> None:
    sink = MqttSink(fast_sink_config(mosquitto.url, topic_prefix="lab/x"), "dev-online")
    sink.open()
    try:
        assert sink.wait_connected(10)
        sub = Subscriber(mosquitto.url, ["lab/x/dev-online/status"])
        try:
            assert sub.wait_for(lambda s: s.messages != [])
            assert sub.messages[0] == ("lab/x/dev-online/status", b"online", True)
        finally:
            sub.close()
    finally:
        sink.close(timeout=2)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from edge.publish.config import MqttSinkConfig
    from edge.publish.mqtt import MqttSink
    sink = MqttSink(MqttSinkConfig(type="mqtt", url=sys.argv[1], keepalive_s=5), "dev-lwt")
    sink.open()
    assert sink.wait_connected(10)
    print("connected", flush=True)
    time.sleep(60)
    """
)


def test_last_will_offline_when_process_is_killed(mosquitto: Mosquitto) -> None:
    sub = Subscriber(mosquitto.url, ["fer/dev-lwt/status"])
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, mosquitto.url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "connected"
        assert sub.wait_for(lambda s: s.on("fer/dev-lwt/status") == [b"online"])
        child.send_signal(signal.SIGKILL)  # no DISCONNECT packet: the broker sends the will
        child.wait(10)
        assert sub.wait_for(lambda s: s.on("fer/dev-lwt/status")[-1:] == [b"offline"])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        sub.close()


def _persistent_subscriber(broker: Mosquitto, topic: str) -> Subscriber:
    return Subscriber(
        broker.url, [topic], client_id="oracle-" + topic.replace("/", "-"), clean=False
    )


def test_broker_down_at_start_then_up_delivers_everything(
    mosquitto_factory: Callable[..., Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic = "fer/dev-late/events"
    # Register a persistent QoS-1 session, so the broker keeps what arrives while it is away.
    _persistent_subscriber(broker, topic).close()
    broker.stop()

    sink = MqttSink(fast_sink_config(broker.url), "dev-late")
    with caplog.at_level(logging.WARNING, logger="edge.publish.mqtt"):
        sink.open()  # must not raise although nothing listens
        events = make_events(30, "dev-late")
        for ev in events:
            sink.publish_event(ev)
        assert wait_until(lambda: sink.stats()["connect_failures"] >= 2)
    st = sink.stats()
    assert st["connected"] is False
    assert (st["queue_depth"], st["dropped"], st["published"]) == (30, 0, 0)
    assert any("unreachable" in r.getMessage() for r in caplog.records)

    broker.start()
    try:
        assert wait_until(lambda: sink.stats()["published"] == 30)
        assert sink.stats()["connected"] is True
        sub = _persistent_subscriber(broker, topic)
        try:
            assert sub.wait_for(lambda s: len(s.on(topic)) >= 30)
            assert sorted(e.event_id for e in decoded(sub.on(topic))) == sorted(
                e.event_id for e in events
            )
        finally:
            sub.close()
    finally:
        sink.close(timeout=2)
    assert sink.drain_undelivered() == []


def test_tiny_queue_counts_drops_exactly_and_keeps_the_newest(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic = "fer/dev-tiny/events"
    _persistent_subscriber(broker, topic).close()
    broker.stop()

    sink = MqttSink(fast_sink_config(broker.url, queue_size=5), "dev-tiny")
    sink.open()
    events = make_events(12, "dev-tiny")
    for ev in events:
        sink.publish_event(ev)
    st = sink.stats()
    assert (st["dropped"], st["queue_depth"]) == (7, 5)

    broker.start()
    try:
        assert wait_until(lambda: sink.stats()["published"] == 5)
        sub = _persistent_subscriber(broker, topic)
        try:
            assert sub.wait_for(lambda s: len(s.on(topic)) >= 5)
            time.sleep(0.2)  # nothing beyond the 5 kept events may arrive
            assert decoded(sub.on(topic)) == events[-5:]
        finally:
            sub.close()
        assert sink.stats()["dropped"] == 7
    finally:
        sink.close(timeout=2)


def test_in_flight_events_are_resent_after_a_dropped_connection(mosquitto: Mosquitto) -> None:
    proxy = TcpProxy(mosquitto.host, mosquitto.port)
    sink = MqttSink(fast_sink_config(proxy.url), "dev-inflight")
    sub = Subscriber(mosquitto.url, ["fer/dev-inflight/events"])
    try:
        sink.open()
        assert sink.wait_connected(10)
        proxy.forward_up = False  # PUBLISH packets leave the device but never reach the broker
        events = make_events(8, "dev-inflight")
        for ev in events:
            sink.publish_event(ev)
        assert wait_until(lambda: sink.stats()["inflight"] == 8)
        assert sink.stats()["published"] == 0
        proxy.cut()
        proxy.forward_up = True
        assert wait_until(lambda: sink.stats()["published"] == 8)
        assert sink.stats()["reconnects"] >= 1
        assert sub.wait_for(lambda s: len(s.on(sink.topic_events)) >= 8)
        assert {e.event_id for e in decoded(sub.on(sink.topic_events))} == {
            e.event_id for e in events
        }
    finally:
        sink.close(timeout=2)
        sub.close()
        proxy.close()


def test_stats_topic_is_strict_json_without_secrets(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    broker = mosquitto_factory(passwords={"dev": SECRET})
    sink = MqttSink(fast_sink_config(f"mqtt://dev:{SECRET}@127.0.0.1:{broker.port}"), "dev-stats")
    assert SECRET not in repr(sink)
    sub = Subscriber(broker.url, ["fer/dev-stats/stats"], username="dev", password=SECRET)
    try:
        sink.open()
        assert sink.wait_connected(10)
        sink.publish_stats({"fps": 12.5, "latency_ms": {"p95": float("nan")}, **sink.stats()})
        assert sub.wait_for(lambda s: s.on("fer/dev-stats/stats") != [])
        raw = sub.on("fer/dev-stats/stats")[0]
        assert SECRET.encode() not in raw
        st = json.loads(raw)
        assert st["fps"] == 12.5
        assert st["latency_ms"] == {"p95": None}
        assert st["connected"] is True
        assert st["url"] == f"mqtt://***@127.0.0.1:{broker.port}"
        assert {"queue_depth", "dropped", "reconnects", "published"} <= set(st)
    finally:
        sink.close(timeout=2)
        sub.close()


def test_wrong_password_is_a_clear_fatal_error(
    mosquitto_factory: Callable[..., Mosquitto], caplog: pytest.LogCaptureFixture
) -> None:
    broker = mosquitto_factory(passwords={"dev": SECRET})
    wrong = "not-the-" + SECRET
    sink = MqttSink(fast_sink_config(broker.url, username="dev", password=wrong), "dev-auth")
    with caplog.at_level(logging.DEBUG):
        sink.open()
        with pytest.raises(PublishError, match="bad user name or password|not authorized"):
            sink.wait_connected(10)
        assert sink.fatal_error is not None
        assert "retrying cannot help" in str(sink.fatal_error)
        ev = make_events(1, "dev-auth")[0]
        with pytest.raises(PublishError):
            sink.publish_event(ev)
        st = sink.stats()
        assert st["connected"] is False and st["error"]
        sink.close(timeout=2)
    assert sink.drain_undelivered() == [ev]  # the event is handed back, not lost
    assert wrong not in caplog.text and wrong not in json.dumps(st)


def test_password_from_env_and_from_file(
    mosquitto_factory: Callable[..., Mosquitto],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    broker = mosquitto_factory(passwords={"dev": SECRET})
    monkeypatch.setenv("FER_EDGE_MQTT_PASSWORD", SECRET)
    by_env = MqttSink(fast_sink_config(broker.url, username="dev"), "dev-env")
    pw = tmp_path / "mqtt-password"
    pw.write_text(SECRET + "\n")
    monkeypatch.setenv("CREDS", str(tmp_path))
    by_file = MqttSink(
        fast_sink_config(broker.url, username="dev", password_file="${CREDS}/mqtt-password"),
        "dev-file",
    )
    for sink in (by_env, by_file):
        sink.open()
        try:
            assert sink.wait_connected(10)
        finally:
            sink.close(timeout=2)
    missing = MqttSink(
        fast_sink_config(broker.url, username="dev", password_file=tmp_path / "nope"), "d"
    )
    with pytest.raises(ConfigError, match="nope"):
        missing.open()


def test_tls_with_password(mosquitto_factory: Callable[..., Mosquitto]) -> None:
    broker = mosquitto_factory(tls=True, passwords={"dev": SECRET})
    assert broker.url.startswith("mqtts://") and broker.ca_file is not None
    sink = MqttSink(
        fast_sink_config(broker.url, username="dev", password=SECRET, ca_file=broker.ca_file),
        "dev-tls",
    )
    sub = Subscriber(
        broker.url,
        ["fer/dev-tls/events"],
        username="dev",
        password=SECRET,
        ca_file=broker.ca_file,
    )
    try:
        assert_delivered(sink, sub, 3)
    finally:
        sink.close(timeout=2)
        sub.close()
    # Without the test CA the broker certificate is untrusted: not fatal, keeps retrying.
    untrusted = MqttSink(fast_sink_config(broker.url, username="dev", password=SECRET), "dev-tls2")
    untrusted.open()
    try:
        assert wait_until(lambda: untrusted.stats()["connect_failures"] >= 2)
        assert untrusted.fatal_error is None and not untrusted.connected
    finally:
        untrusted.close(timeout=0.5)


def test_close_during_outage_spills_undelivered_to_jsonl(
    mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    sink = MqttSink(fast_sink_config(broker.url), "dev-spill")
    spill = tmp_path / "events.jsonl"
    group = SinkGroup([sink, JsonlSink(tmp_path / "audit.jsonl")], spill_path=spill)
    group.open()
    assert sink.wait_connected(10)
    broker.stop()
    assert wait_until(lambda: not sink.connected)
    events = make_events(10, "dev-spill")
    for ev in events:
        group.publish_event(ev)
    assert group.stats()["queue_depth"] == 10
    group.close(timeout=0.5)
    # The JSONL sink of the group holds every event once as audit and once more as spill.
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert [Event.from_json(x) for x in lines] == events + events
    assert group.spilled == 10 and not spill.exists()


def test_spill_path_when_group_has_no_jsonl(
    mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    broker = mosquitto_factory(start=False)
    sink = MqttSink(fast_sink_config(broker.url), "dev-spill2")
    group = SinkGroup([sink], spill_path=tmp_path / "spill" / "undelivered.jsonl")
    group.open()
    events = make_events(4, "dev-spill2")
    for ev in events:
        group.publish_event(ev)
    group.close(timeout=0.3)
    lines = (tmp_path / "spill" / "undelivered.jsonl").read_text().splitlines()
    assert [Event.from_json(x) for x in lines] == events


def test_mqtt5_protocol(mosquitto_factory: Callable[..., Mosquitto]) -> None:
    broker = mosquitto_factory(passwords={"dev": SECRET})
    sink = MqttSink(
        fast_sink_config(broker.url, protocol="5", username="dev", password=SECRET), "dev-v5"
    )
    sub = Subscriber(broker.url, ["fer/dev-v5/#"], username="dev", password=SECRET)
    try:
        assert_delivered(sink, sub, 5)
    finally:
        sink.close(timeout=2)
    assert sub.wait_for(lambda s: s.on(sink.topic_status)[-1:] == [b"stopped"])
    sub.close()
    bad = MqttSink(
        fast_sink_config(broker.url, protocol="5", username="dev", password="nope"), "dev-v5b"
    )
    bad.open()
    try:
        with pytest.raises(PublishError, match="bad user name or password|not authorized"):
            bad.wait_connected(10)
    finally:
        bad.close(timeout=1)


def test_a_message_published_while_disconnected_is_acknowledged_after_connecting(
    mosquitto: Mosquitto,
) -> None:
    # paho keeps a QoS 1 message published before (or between) connections and sends it once
    # connected, but its own is_published() raises for it forever (the first attempt's rc is
    # NO_CONN). The sink reaps in-flight messages with `acknowledged`, which must neither raise
    # (that crashed the sender and lost the queue at shutdown) nor report the message early.
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

    from edge.publish.client import acknowledged

    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    info = client.publish("fer/test/ack", b"x", qos=1)
    assert info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
    with pytest.raises(RuntimeError):
        info.is_published()
    assert acknowledged(info) is False
    client.connect("127.0.0.1", mosquitto.port)
    client.loop_start()
    try:
        assert wait_until(lambda: acknowledged(info), 10)
        sent = client.publish("fer/test/ack", b"y", qos=1)  # connected: paho's own path
        assert wait_until(lambda: acknowledged(sent), 10)
    finally:
        client.disconnect()
        client.loop_stop()
