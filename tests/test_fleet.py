"""Fleet path: devices on two site brokers, bridged into one aggregate broker (mosquitto bridge).

The topic layout ``<prefix>/<device_id>/...`` puts the device id in every topic, so brokers can
be bridged (or clustered) by forwarding ``fer/#`` without any topic rewriting, and a dashboard
on the aggregate broker tells devices apart. This is the configuration documented in
docs/PERFORMANCE.md ("Scale past one device"), run for real on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.events import Event
from edge.publish.config import MqttSinkConfig
from edge.publish.mqtt import MqttSink
from edge.testing.broker import Mosquitto, Subscriber
from edge.testing.mqtt import make_events

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def bridge_lines(name: str, site: Mosquitto) -> list[str]:
    """The aggregate broker's side of a bridge that pulls ``fer/#`` from ``site``."""
    return [
        f"connection {name}",
        f"address {site.host}:{site.port}",
        "topic fer/# in 1",  # QoS 1 across the bridge, like the devices' events
        "cleansession false",  # the site queues for the aggregate while the link is down
        f"remote_clientid bridge-{name}",
        "bridge_protocol_version mqttv311",
        "restart_timeout 1",
    ]


def test_events_cross_a_mosquitto_bridge(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "site-a") as site_a, Mosquitto(tmp_path / "site-b") as site_b:
        agg = Mosquitto(tmp_path / "aggregate")
        with agg.conf_path.open("a") as fh:
            fh.write("\n".join(bridge_lines("a", site_a) + bridge_lines("b", site_b)) + "\n")
        with agg:
            sub = Subscriber(agg.url, ["fer/+/events", "fer/+/status"])
            sinks = []
            try:
                for name, broker in (("cam-a1", site_a), ("cam-b1", site_b)):
                    sink = MqttSink(
                        MqttSinkConfig(type="mqtt", url=broker.url, reconnect_min_s=0.1), name
                    )
                    sink.open()
                    assert sink.wait_connected(10)
                    sinks.append(sink)
                # The bridges connect asynchronously: wait until both devices' retained
                # 'online' status is visible on the aggregate broker.
                assert sub.wait_for(
                    lambda s: (
                        {t for t, p, _ in s.messages if p == b"online"}
                        == {"fer/cam-a1/status", "fer/cam-b1/status"}
                    ),
                    timeout=20,
                ), sub.messages
                sent = {s.device_id: make_events(20, s.device_id) for s in sinks}
                for s in sinks:
                    for ev in sent[s.device_id]:
                        s.publish_event(ev)
                for device, evs in sent.items():
                    topic = f"fer/{device}/events"
                    assert sub.wait_for(lambda s, t=topic: len(s.on(t)) == 20, timeout=20)
                    got = [Event.from_json(p) for p in sub.on(topic)]
                    assert got == evs  # complete, in order, and only this device's events
            finally:
                for s in sinks:
                    s.close(timeout=3)
                sub.close()
