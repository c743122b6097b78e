"""Home Assistant MQTT discovery and the retained face state, against a real mosquitto broker.

Labels always come from the bundled model's metadata (never a literal list). The end-to-end test
runs the real pipeline on a video made from real FER2013 faces and checks that every state
message on ``fer/<device>/state`` is the fold of the events published before it.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import jinja2
import pytest

from edge import __version__
from edge.config import load_config
from edge.contract import FERPLUS_LABELS
from edge.events import Event, ModelRef
from edge.model_meta import read_metadata
from edge.publish.config import MqttSinkConfig
from edge.publish.homeassistant import OBJECT_IDS, discovery_configs, node_id
from edge.publish.mqtt import MqttSink
from edge.state import STATE_SCHEMA, FaceState, build_state
from edge.testing.broker import Mosquitto, Subscriber


@pytest.fixture(scope="module")
def labels() -> tuple[str, ...]:
    """An 8-class label set: what a sink is told by set_model_info, not a 7-label literal."""
    return FERPLUS_LABELS


def _ev(labels, track: int, kind: str, emotion: str, p: float, bbox=(10, 10, 50, 50)) -> Event:
    rest = (1.0 - p) / (len(labels) - 1)
    scores = {lab: (p if lab == emotion else rest) for lab in labels}
    return Event.create(
        device_id="cam",
        frame=track,
        track_id=track,
        type=kind,  # type: ignore[arg-type]
        bbox=bbox,
        scores=scores,
        model=ModelRef("sepnet", "a" * 64),
    )


# ---------------------------------------------------------------- pure state / configs


def test_state_folds_events_and_picks_the_largest_face(labels) -> None:
    a, b = labels[0], labels[1]
    evs = [
        _ev(labels, 1, "start", a, 0.6, bbox=(0, 0, 40, 40)),
        _ev(labels, 2, "start", b, 0.9, bbox=(100, 0, 80, 80)),  # larger: dominant
        _ev(labels, 1, "change", b, 0.7, bbox=(2, 2, 40, 40)),
    ]
    st = build_state("cam", evs)
    assert st["schema"] == STATE_SCHEMA and st["device_id"] == "cam"
    assert st["faces"] == 2 and st["ts"] == evs[-1].ts
    assert (st["emotion"], st["confidence"], st["track_id"]) == (b, 0.9, 2)
    assert st["tracks"] == [
        {"track_id": 1, "emotion": b, "confidence": 0.7, "bbox": [2, 2, 40, 40]},
        {"track_id": 2, "emotion": b, "confidence": 0.9, "bbox": [100, 0, 80, 80]},
    ]
    # The large face leaves: the small one becomes dominant; then nobody is left.
    st = build_state("cam", [*evs, _ev(labels, 2, "end", b, 0.9)])
    assert (st["faces"], st["emotion"], st["track_id"]) == (1, b, 1)
    st = build_state("cam", [*evs, _ev(labels, 2, "end", b, 0.9), _ev(labels, 1, "end", b, 0.7)])
    assert (st["faces"], st["emotion"], st["confidence"], st["tracks"]) == (0, None, None, [])


def test_state_apply_reports_changes_only(labels) -> None:
    fs = FaceState("cam")
    start = _ev(labels, 1, "start", labels[0], 0.8)
    assert fs.apply(start) is True
    assert fs.apply(_ev(labels, 1, "update", labels[0], 0.8)) is False  # nothing new
    assert fs.apply(_ev(labels, 7, "end", labels[0], 0.8)) is False  # unknown track
    assert fs.apply(_ev(labels, 1, "update", labels[0], 0.9)) is True
    assert fs.faces == 1


def test_discovery_configs_follow_ha_conventions(labels) -> None:
    cfgs = discovery_configs(
        device_id="door.cam 1",
        topic_prefix="fer",
        discovery_prefix="homeassistant",
        model_name="sepnet",
        labels=labels,
    )
    assert node_id("door.cam 1") == "door_cam_1"
    assert sorted(cfgs) == sorted(f"homeassistant/sensor/door_cam_1/{o}/config" for o in OBJECT_IDS)
    ids = set()
    for cfg in cfgs.values():
        json.dumps(cfg, allow_nan=False)
        ids.add(cfg["unique_id"])
        assert cfg["state_topic"] == "fer/door.cam 1/state"
        assert cfg["availability"][0]["topic"] == "fer/door.cam 1/status"
        assert cfg["device"]["identifiers"] == ["fer_edge_door_cam_1"]
        assert cfg["device"]["sw_version"] == __version__
        assert cfg["origin"]["name"] == "fer-edge"
    assert len(ids) == 3
    emo = cfgs["homeassistant/sensor/door_cam_1/emotion/config"]
    assert emo["device_class"] == "enum" and emo["options"] == list(labels)


def test_value_templates_render_like_home_assistant(labels) -> None:
    """HA renders these with Jinja2; the same templates must give states HA accepts."""
    cfgs = discovery_configs(
        device_id="cam", topic_prefix="fer", discovery_prefix="ha", model_name="m", labels=labels
    )
    env = jinja2.Environment()
    by_obj = {t.split("/")[-2]: c for t, c in cfgs.items()}

    def render(tpl: str, **ctx) -> str:
        return env.from_string(tpl).render(**ctx).strip()

    busy = build_state("cam", [_ev(labels, 1, "start", labels[2], 0.8125)])
    empty = build_state("cam", [])
    assert render(by_obj["emotion"]["value_template"], value_json=busy) == labels[2]
    assert render(by_obj["emotion"]["value_template"], value_json=empty) == "None"  # unknown
    assert float(render(by_obj["confidence"]["value_template"], value_json=busy)) == 81.2
    assert render(by_obj["confidence"]["value_template"], value_json=empty) == "None"
    assert render(by_obj["faces"]["value_template"], value_json=busy) == "1"
    attrs = render(by_obj["emotion"]["json_attributes_template"], value_json=busy)
    assert json.loads(attrs)["tracks"][0]["emotion"] == labels[2]
    avail = by_obj["faces"]["availability"][0]
    # 'stopped' (clean shutdown) must make the entities unavailable too, like 'offline'.
    for status, key in (
        ("online", "payload_available"),
        ("offline", "payload_not_available"),
        ("stopped", "payload_not_available"),
    ):
        assert render(avail["value_template"], value=status) == avail[key]


# ---------------------------------------------------------------- real broker


def _sink(broker: Mosquitto, device: str, **extra) -> MqttSink:
    cfg = MqttSinkConfig(
        type="mqtt",
        url=broker.url,
        client_id=f"ha-{device}",
        discovery_delay_s=0,
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
        **extra,
    )
    return MqttSink(cfg, device)


@pytest.mark.broker
def test_configs_are_retained_and_republished_on_ha_birth(mosquitto: Mosquitto, labels) -> None:
    prefix = f"ha{uuid.uuid4().hex[:8]}"  # private discovery prefix on the shared broker
    sink = _sink(mosquitto, "ha-cam", discovery_prefix=prefix)
    sink.set_model_info("sepnet", labels, "c" * 64)
    sink.open()
    try:
        assert sink.wait_connected(10)
        topics = [f"{prefix}/sensor/ha-cam/{o}/config" for o in OBJECT_IDS]
        # Give the broker time to store them, then a late subscriber must get them retained.
        probe = Subscriber(mosquitto.url, [f"{prefix}/sensor/#"])
        assert probe.wait_for(lambda s: all(s.on(t) for t in topics)), probe.messages
        probe.close()
        sub = Subscriber(mosquitto.url, [f"{prefix}/sensor/#"])
        try:
            assert sub.wait_for(lambda s: all(s.on(t) for t in topics))
            assert all(retained for _, _, retained in sub.messages)
            for t in topics:
                cfg = json.loads(sub.on(t)[0])
                for key in ("name", "unique_id", "state_topic", "availability", "device", "origin"):
                    assert key in cfg, (t, key)
                assert cfg["availability"][0]["topic"] == "fer/ha-cam/status"
                assert cfg["state_topic"] == "fer/ha-cam/state"
                assert cfg["device"]["model"] == "sepnet"
                assert {"identifiers", "name", "model", "sw_version"} <= set(cfg["device"])
                assert cfg["origin"]["sw_version"] == __version__
            emotion = json.loads(sub.on(topics[0])[0])
            assert emotion["device_class"] == "enum"
            assert emotion["options"] == list(labels)
            # HA restarts: its birth message makes the device publish everything again.
            n = len(sub.messages)
            sub.client.publish(f"{prefix}/status", "online", qos=1)
            assert sub.wait_for(lambda s: all(len(s.on(t)) == 2 for t in topics)), sub.messages
            assert len(sub.messages) == n + 3
            assert not any(retained for _, _, retained in sub.messages[n:])  # live, not replay
            # Another payload ('offline', HA's last will) does not trigger a re-publish.
            sub.client.publish(f"{prefix}/status", "offline", qos=1)
            sink.publish_state(build_state("ha-cam", []))
            probe = Subscriber(mosquitto.url, ["fer/ha-cam/state"])
            assert probe.wait_for(lambda s: s.on("fer/ha-cam/state"))
            probe.close()
            assert all(len(sub.on(t)) == 2 for t in topics)
        finally:
            sub.close()
    finally:
        sink.close(2.0)


@pytest.mark.broker
def test_disabled_publishes_no_configs(mosquitto: Mosquitto, labels) -> None:
    prefix = f"ha{uuid.uuid4().hex[:8]}"
    sub = Subscriber(mosquitto.url, [f"{prefix}/#", "fer/ha-off/state"])
    sink = _sink(mosquitto, "ha-off", discovery_prefix=prefix, homeassistant=False)
    sink.set_model_info("m", labels, "b" * 64)
    sink.open()
    try:
        assert sink.wait_connected(10)
        sink.publish_state(build_state("ha-off", [_ev(labels, 1, "start", labels[0], 0.9)]))
        # The state comes after where discovery would have been (same client, in order).
        assert sub.wait_for(lambda s: s.on("fer/ha-off/state"))
        sub.client.publish(f"{prefix}/status", "online", qos=1)
        assert sub.wait_for(lambda s: s.on(f"{prefix}/status"))
        time.sleep(0.3)  # a re-publish would be immediate (discovery_delay_s = 0)
        assert [t for t, _, _ in sub.messages if t.endswith("/config")] == []
    finally:
        sink.close(2.0)
        sub.close()


@pytest.mark.broker
def test_state_is_resent_after_reconnect(mosquitto_factory, labels) -> None:
    broker = mosquitto_factory()
    sink = _sink(broker, "ha-re", homeassistant=False)
    sink.open()
    try:
        assert sink.wait_connected(10)
        broker.stop()  # not persistent: the retained state is gone with it
        state = build_state("ha-re", [_ev(labels, 4, "start", labels[3], 0.7)])
        sink.publish_state(state)  # while disconnected: kept, not queued
        broker.start()
        sub = Subscriber(broker.url, ["fer/ha-re/state"])
        try:
            assert sub.wait_for(lambda s: s.on("fer/ha-re/state"), timeout=15)
            assert json.loads(sub.on("fer/ha-re/state")[-1]) == state
        finally:
            sub.close()
    finally:
        sink.close(2.0)


@pytest.mark.broker
def test_pipeline_state_topic_matches_events(
    mosquitto: Mosquitto, model_path: Path, fer_slice_csv: Path, tmp_path: Path
) -> None:
    from edge.app import Pipeline
    from edge.testing.facevideo import Placement, detectable, load_fer_faces, render, write_video

    faces = load_fer_faces(fer_slice_csv, 60)
    a, b = detectable(faces, side=120, want=2)
    video = write_video(
        tmp_path / "faces.avi",
        render(
            faces,
            [
                Placement(a, range(0, 30), 120, (60, 80), (2, 1)),
                Placement(b, range(10, 40), 120, (400, 250), (-1, -1)),
            ],
            40,
        ),
    )
    prefix = f"ha{uuid.uuid4().hex[:8]}"
    device = f"ha-e2e-{uuid.uuid4().hex[:6]}"
    sub = Subscriber(mosquitto.url, [f"fer/{device}/state", f"{prefix}/#"])
    jsonl = tmp_path / "events.jsonl"
    cfg = load_config(
        None,
        {
            "device_id": device,
            "source": {"type": "file", "path": str(video)},
            "model": {"path": str(model_path)},
            "tracking": {"update_interval_s": 0, "update_every_frames": 10, "max_missed": 3},
            "sinks": [
                {"type": "mqtt", "url": mosquitto.url, "client_id": device,
                 "discovery_prefix": prefix, "discovery_delay_s": 0},
                {"type": "jsonl", "path": str(jsonl)},
            ],
        },
    )  # fmt: skip
    try:
        Pipeline(cfg).run()
        events = [Event.from_json(x) for x in jsonl.read_text().splitlines() if x.strip()]
        assert {e.type for e in events} >= {"start", "end"}
        # Expected: one state per event that changed the fold, in publication order.
        fs, expected = FaceState(device), []
        for ev in events:
            if fs.apply(ev):
                expected.append(fs.snapshot())
        topic = f"fer/{device}/state"
        assert sub.wait_for(lambda s: len(s.on(topic)) >= len(expected)), sub.messages
        got = [json.loads(p) for p in sub.on(topic)]
        assert got == expected
        assert got[-1]["faces"] == 0 and got[-1]["emotion"] is None
        assert max(s["faces"] for s in got) == 2
        emotion_cfg = json.loads(sub.on(f"{prefix}/sensor/{device}/emotion/config")[0])
        assert emotion_cfg["options"] == list(read_metadata(model_path).labels)
    finally:
        sub.close()
