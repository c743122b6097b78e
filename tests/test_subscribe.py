"""The shared subscriber side (edge/subscribe, edge/topics.py, the fold in edge/state.py).

Pure pieces are tested directly: the topic layout both ends of the broker share, the payload
parser and sanitizer, and the fleet fold's rules. :class:`BrokerLink` is tested against a real
mosquitto: subscriptions, retained and MQTT 5 expiry on delivery, states, and a refusal that
retrying cannot fix.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.errors import ConfigError, PublishError
from edge.events import Event, ModelRef
from edge.monitor import broker_text
from edge.publish.homeassistant import discovery_configs
from edge.publish.mqtt import MqttSink
from edge.state import Face, FaceState, build_state
from edge.subscribe.fleet import Fleet
from edge.subscribe.link import (
    CONNECTED,
    REFUSED,
    UNREACHABLE,
    BrokerLink,
    client_id_for,
    subscriber_config,
)
from edge.subscribe.messages import (
    MAX_PAYLOAD,
    BadPayload,
    Message,
    decode_event,
    decode_object,
    decode_state,
    decode_status,
    printable,
)
from edge.testing.broker import Mosquitto, free_port
from edge.testing.mqtt import wait_until
from edge.topics import KINDS, Topics, check_topic_part

MODEL = ModelRef("m", "e" * 64)


def ev(
    device: str, track: int, kind: str = "start", emotion: str = "happy", box: int = 10
) -> Event:
    kw = {"frame": 1, "model": MODEL, "bbox": (0, 0, box, box)}
    scores = {"happy": 0.1, "sad": 0.1, emotion: 0.9}
    return Event.create(device_id=device, track_id=track, type=kind, scores=scores, **kw)  # type: ignore[arg-type]


def msg(topic: str, payload: bytes | str, **kw: object) -> Message:
    raw = payload.encode() if isinstance(payload, str) else payload
    return Message(topic, raw, **kw)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ topics
def test_topics_round_trip_and_are_what_sink_and_home_assistant_use() -> None:
    t = Topics("site/fer")
    dt = t.device("cam-1")
    assert (dt.events, dt.status, dt.stats, dt.state) == tuple(f"site/fer/cam-1/{k}" for k in KINDS)
    for kind in KINDS:
        assert t.parse(t.of("cam-1", kind)) == ("cam-1", kind)
    assert t.wildcard("events") == "site/fer/+/events" and t.wildcard() == "site/fer/+/#"
    for foreign in ("fer/cam/events", "site/fer//events", "site/fer/cam/images",
                    "site/fer/cam/events/x", "site/fer/cam", "site/ferx/cam/events"):  # fmt: skip
        assert t.parse(foreign) is None, foreign
    for bad in ("", "a/b", "a+", "a#", "a\0"):
        with pytest.raises(ConfigError, match="device_id"):
            t.device(bad)
    assert check_topic_part("device_id", "door cam.1") == "door cam.1"
    # One layout: the sink publishes where subscribers and Home Assistant look.
    sink = MqttSink(subscriber_config("test", "mqtt://h", "site/fer"), "cam-1")
    assert (sink.topic_events, sink.topic_status, sink.topic_stats, sink.topic_state) == (
        dt.events,
        dt.status,
        dt.stats,
        dt.state,
    )
    ha = discovery_configs(device_id="cam-1", topic_prefix="site/fer",
                           discovery_prefix="homeassistant", model_name="m", labels=["a"])  # fmt: skip
    for cfg in ha.values():
        assert cfg["state_topic"] == dt.state
        assert cfg["availability"][0]["topic"] == dt.status


# ------------------------------------------------------------------------------ messages
def test_printable_replaces_control_characters_and_bounds_length() -> None:
    assert printable("ok", 5) == "ok"
    assert printable("a\x1b[2J\nb\x00", 20) == "a?[2J?b?"
    assert printable("abcdefgh", 4) == "abcd"
    assert printable("abcdefgh", 4, mark="~") == "abc~"
    assert printable("abcd", 4, mark="~") == "abcd"  # not cut: no mark
    assert printable(None, 10) == "None" and printable(3.5, 10) == "3.5"


def test_decoders_accept_the_contract_and_reject_everything_else() -> None:
    assert decode_status(b"  online\n") == "online"
    assert decode_status(b"") is None and decode_status(b"\xff") == "\ufffd"
    assert decode_status(b"x" * 100) == "x" * 16
    assert decode_object(b'{"fps": 1.5, "m": {"name": "n"}}') == {"fps": 1.5, "m": {"name": "n"}}
    for bad, why in [
        (b"{nope", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"fps": NaN}', "Out of range"),
        (b"[" * 100_000, "not JSON"),  # recursion, not a crash
    ]:
        with pytest.raises(BadPayload, match=why):
            decode_object(bad)
    e = ev("cam", 1)
    assert decode_event(e.to_json().encode()) == e
    with pytest.raises(BadPayload, match="missing keys"):
        decode_event(b'{"schema": "fer.event/1"}')


def test_decode_state_gives_faces_without_scores() -> None:
    state = build_state("cam", [ev("cam", 4, emotion="sad", box=20)])
    (face,) = decode_state(json.dumps(state).encode(), now=7.0)
    assert face == Face(
        track_id=4,
        emotion="sad",
        confidence=0.9,
        bbox=(0, 0, 20, 20),
        scores=None,
        type="state",
        ts=state["ts"],
        updated=7.0,
    )
    assert face.track() == state["tracks"][0]  # the round trip is exact
    for bad in (
        dict(state, schema="fer.state/2"),
        dict(state, tracks="x"),
        dict(state, tracks=[dict(state["tracks"][0], bbox=[1, 2, 3])]),
        dict(state, tracks=[dict(state["tracks"][0], confidence=True)]),
    ):
        with pytest.raises(BadPayload):
            decode_state(json.dumps(bad).encode())


# ------------------------------------------------------------------------------ the fold
def test_face_state_fold_keeps_the_newest_face_but_reports_state_changes_only() -> None:
    fs = FaceState("cam")
    first = ev("cam", 1, "start")
    assert fs.apply(first, now=1.0) is True
    again = ev("cam", 1, "update")  # same emotion, confidence and box: the state is unchanged
    assert fs.apply(again, now=2.0) is False
    face = fs.tracks[1]
    assert (face.type, face.updated, face.ts) == ("update", 2.0, again.ts)  # but a viewer sees it
    assert fs.snapshot()["ts"] == first.ts  # the published state is a function of its changes
    assert face.scores == (0.9, 0.1)
    assert fs.apply(ev("cam", 2, "start", "sad", box=30), now=3.0) is True
    assert fs.dominant() == {"track_id": 2, "emotion": "sad", "confidence": 0.9,
                             "bbox": [0, 0, 30, 30]}  # fmt: skip
    assert fs.apply(ev("cam", 9, "end"), now=4.0) is False  # unknown track
    assert fs.apply(ev("cam", 2, "end"), now=4.0) is True and sorted(fs.tracks) == [1]
    with pytest.raises(TypeError):
        fs.tracks[5] = face  # type: ignore[index]  # read-only: only the fold changes it
    fs.replace([Face(7, "sad", 0.5, (1, 2, 3, 4), type="state")])
    assert sorted(fs.tracks) == [7] and fs.faces == 1


def test_fleet_applies_only_good_messages_and_counts_the_rest() -> None:
    fleet = Fleet("fer", stale_after_s=10)
    e = ev("cam", 1)
    assert fleet.handle(msg("fer/cam/events", b"{bad"), now=0.0) is None
    assert fleet.devices == {} and fleet.bad_payloads == 1  # no device, no evidence of life
    assert fleet.last_error is not None and fleet.last_error.startswith(
        "fer/cam/events: event is not valid JSON"
    )
    up = fleet.handle(msg("fer/cam/events", e.to_json()), now=1.0)
    assert up is not None and (up.device, up.kind, up.event) == ("cam", "events", e)
    assert fleet.handle(msg("fer/cam/events", e.to_json()), now=2.0) is None
    assert (fleet.events, fleet.duplicates) == (1, 1)
    assert fleet.devices["cam"].last_seen == 1.0  # a redelivery is not applied
    big = b"{" + b" " * MAX_PAYLOAD + b"}"
    assert fleet.handle(msg("fer/cam/stats", big), now=3.0) is None and fleet.bad_payloads == 2
    # Deep nesting is a bad payload, not a RecursionError out of the subscriber's loop (the
    # monitor's own stats parser let it escape before the parsers became one).
    assert fleet.handle(msg("fer/cam/stats", b"[" * 100_000), now=3.0) is None
    assert fleet.bad_payloads == 3
    stats = {"fps": 2.0, "model": {"name": "sep\x1bnet"}}
    assert fleet.handle(msg("fer/cam/stats", json.dumps(stats)), now=4.0) is not None
    view = fleet.devices["cam"]
    assert (view.stats, view.stats_at, view.model) == (stats, 4.0, "sep?net")
    # Other prefixes, kinds and levels are not ours: not counted at all.
    for topic in ("x/cam/events", "fer/cam/images", "fer/cam/events/more"):
        assert fleet.handle(msg(topic, b"{bad"), now=5.0) is None
    assert fleet.bad_payloads == 3 and list(fleet.devices) == ["cam"]


def test_fleet_status_state_and_liveness_rules() -> None:
    fleet = Fleet("fer", stale_after_s=10)
    state = json.dumps(build_state("door", [ev("door", 5)]))
    assert fleet.handle(msg("fer/door/state", state, retained=True), now=0.0) is not None
    door = fleet.devices["door"]
    assert sorted(door.faces.tracks) == [5] and door.live.alive_until is None  # retained: old
    assert fleet.handle(msg("fer/door/status", "online", expiry_s=3.0), now=1.0) is not None
    assert fleet.shown("door", 3.9) == "online" and fleet.shown("door", 4.1) == "stale"
    assert fleet.handle(msg("fer/door/events", ev("door", 6).to_json()), now=2.0) is not None
    # Once events flow a state is ignored (neither applied nor bad).
    assert fleet.handle(msg("fer/door/state", state), now=2.5) is None
    assert sorted(door.faces.tracks) == [5, 6] and fleet.bad_payloads == 0
    up = fleet.handle(msg("fer/door/status", "offline"), now=3.0)
    assert up is not None and up.cleared and door.faces.tracks == {}
    up = fleet.handle(msg("fer/door/status", "offline"), now=3.5)
    assert up is not None and not up.cleared  # nothing left to clear
    assert fleet.sweep(now=100.0) == [] and fleet.shown("door", 100.0) == "offline"
    assert fleet.shown("nobody", 0.0) is None


def test_fleet_caps_devices_and_folds_only_its_kinds() -> None:
    fleet = Fleet("fer", kinds=("status",), max_devices=2)
    for name in ("a", "b", "c"):
        fleet.handle(msg(f"fer/{name}/status", "online"), now=0.0)
    assert sorted(fleet.devices) == ["a", "b"] and fleet.ignored == 1
    assert fleet.handle(msg("fer/a/events", ev("a", 1).to_json()), now=0.0) is None
    assert fleet.events == 0 and fleet.bad_payloads == 0
    fleet.handle(msg("fer/" + "d\x07" * 100 + "/status", "online"), now=0.0)  # over the cap
    wide = Fleet("fer")
    wide.handle(msg("fer/" + "d\x07" * 100 + "/status", "online"), now=0.0)
    assert list(wide.devices) == [("d?" * 64)]  # printable, 128 characters at most


# ------------------------------------------------------------------------------ link
def test_subscriber_config_names_the_command_and_retries_fast() -> None:
    cfg = subscriber_config("monitor", "mqtt://u@h:1884", "p")
    assert (cfg.topic_prefix, cfg.homeassistant, cfg.reconnect_min_s) == ("p", False, 0.5)
    with pytest.raises(ConfigError, match="^dashboard: .*scheme"):
        subscriber_config("dashboard", "http://h")
    with pytest.raises(ConfigError, match="^monitor: .*topic_prefix"):
        subscriber_config("monitor", "mqtt://h", "a/#")
    assert client_id_for("monitor").startswith("fer-edge-monitor-")
    assert client_id_for("monitor") != client_id_for("monitor")


@pytest.mark.broker
def test_link_subscribes_and_delivers_messages_with_retain_and_expiry(
    mosquitto: Mosquitto,
) -> None:
    got: list[Message] = []
    ready = threading.Event()
    states: list[str] = []
    link = BrokerLink(
        subscriber_config("test", mosquitto.url, "lk"),
        [(Topics("lk").wildcard("status"), 1)],
        got.append,
        who="test",
        hint="nothing",
        on_change=lambda lk: states.append(lk.state),
        on_ready=ready.set,
    )
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(mosquitto.host, mosquitto.port)
    pub.loop_start()
    try:
        pub.publish("lk/old/status", "online", qos=1, retain=True).wait_for_publish(5)
        link.start()
        assert ready.wait(10) and states[-1] == CONNECTED and link.attempts == 0
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = 30
        pub.publish("lk/new/status", "online", qos=1, properties=props).wait_for_publish(5)
        pub.publish("lk/new/stats", "{}", qos=1).wait_for_publish(5)  # not subscribed
        assert wait_until(lambda: len(got) >= 2)
        old, new = got[:2]
        assert (old.topic, old.payload, old.retained, old.expiry_s) == (
            "lk/old/status", b"online", True, None
        )  # fmt: skip
        assert (new.topic, new.retained) == ("lk/new/status", False)
        assert new.expiry_s is not None and 28 <= new.expiry_s <= 30
        link.check()  # nothing refused
    finally:
        link.stop()
        link.stop()  # twice is fine
        pub.publish("lk/old/status", b"", retain=True)
        pub.disconnect()
        pub.loop_stop()


@pytest.mark.broker
def test_link_counts_unreachable_attempts_then_stops_on_a_refusal(
    mosquitto_factory: Callable[..., Mosquitto],
) -> None:
    absent = BrokerLink(
        subscriber_config("test", f"mqtt://127.0.0.1:{free_port()}"), [], print,
        who="test", hint="nothing",
    )  # fmt: skip
    absent.start()
    try:
        assert wait_until(lambda: absent.attempts >= 2) and absent.state == UNREACHABLE
        assert broker_text(absent).startswith("unreachable, ")  # the monitor counts attempts
        absent.check()  # unreachable is not fatal: it keeps retrying
    finally:
        absent.stop()
    broker = mosquitto_factory(passwords={"u": "right"})
    cfg = subscriber_config("test", broker.url, username="u", password="wrong")
    refused = BrokerLink(cfg, [], print, who="monitor", hint="--mqtt-url credentials")
    refused.start()
    try:
        assert wait_until(lambda: refused.state == REFUSED)
        with pytest.raises(PublishError) as err:
            refused.check()
        text = str(err.value)
        # mosquitto says "not authorized" (MQTT 5 code 135) for a wrong password.
        assert refused.fatal in ("bad user name or password", "not authorized")
        assert refused.fatal in text
        if importlib.util.find_spec("aiohttp") is not None:  # the dashboard extra
            from edge.dashboard.server import _broker as dashboard_broker

            assert dashboard_broker(refused) == f"refused: {refused.fatal}"
        assert "refused the monitor's connection" in text and "--mqtt-url credentials" in text
        assert "wrong" not in text and "FER_EDGE_MQTT_PASSWORD" in text
        time.sleep(1.5)  # longer than the 0.5 s backoff: no retry flips the state back
        assert refused.state == REFUSED
    finally:
        refused.stop()
