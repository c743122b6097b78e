"""Sink registry, sink configs, stdout and JSONL sinks, SinkGroup (no broker needed)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from edge.errors import ConfigError, PublishError
from edge.events import Event
from edge.publish.config import MqttSinkConfig, parse_mqtt_url
from edge.publish.jsonl import JsonlSink
from edge.publish.mqtt import MqttSink
from edge.publish.registry import SPILL_NAME, SinkGroup, create_sink, create_sinks
from edge.publish.stdout import StdoutSink
from edge.redact import mask_url
from edge.testing.mqtt import make_events


def events(n: int) -> list[Event]:
    return make_events(n, "d")


def test_registry_builds_each_type(tmp_path: Path) -> None:
    assert isinstance(create_sink({"type": "stdout"}), StdoutSink)
    j = create_sink({"type": "jsonl", "path": str(tmp_path / "e.jsonl")})
    assert isinstance(j, JsonlSink) and j.path == tmp_path / "e.jsonl"
    m = create_sink({"type": "mqtt", "url": "mqtt://h"}, device_id="cam1")
    assert isinstance(m, MqttSink)
    assert (m.topic_events, m.topic_status, m.topic_stats) == (
        "fer/cam1/events",
        "fer/cam1/status",
        "fer/cam1/stats",
    )
    assert m.client_id == "fer-edge-cam1"
    defaults = create_sinks([])
    assert len(defaults) == 1 and isinstance(defaults[0], StdoutSink)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"type": "kafka"},
            "unknown sink type 'kafka'; valid types: \\['jsonl', 'mqtt', 'stdout'\\]",
        ),
        ({}, "no 'type' key; valid types"),
        ({"type": "stdout", "colour": True}, "colour"),
        ({"type": "jsonl"}, "path"),
        ({"type": "mqtt", "url": "http://h:1883"}, "scheme 'http'"),
        ({"type": "mqtt", "url": "mqtt://"}, "no host"),
        ({"type": "mqtt", "url": "mqtt://h:99999"}, "invalid"),
        ({"type": "mqtt", "url": "mqtt://h/topic"}, "path"),
        ({"type": "mqtt", "qos": 3}, "qos"),
        ({"type": "mqtt", "queue_size": 0}, "queue_size"),
        ({"type": "mqtt", "topic_prefix": "a/#"}, "topic_prefix"),
        ({"type": "mqtt", "cert_file": "/c.pem"}, "together"),
    ],
)
def test_bad_sink_config_is_a_clear_config_error(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_sink(raw, device_id="d")


def test_bad_device_id_for_topics() -> None:
    with pytest.raises(ConfigError, match="device_id"):
        create_sink({"type": "mqtt"}, device_id="a/b")


def test_url_parsing_and_masking() -> None:
    assert parse_mqtt_url("mqtt://broker") == ("mqtt", "broker", 1883, None, None)
    assert parse_mqtt_url("mqtts://u:p@broker:9000") == ("mqtts", "broker", 9000, "u", "p")
    # The one masker (edge/redact.py) hides the whole user:password@ part, user name included
    # (a token is often passed as the user name alone).
    assert mask_url("mqtts://u:p4ss@broker:9000") == "mqtts://***@broker:9000"
    assert mask_url("mqtt://tok3n@broker") == "mqtt://***@broker"
    assert mask_url("mqtt://broker:1") == "mqtt://broker:1"
    # An unencoded "@" in the password: everything up to the last "@" of the authority goes.
    assert mask_url("mqtt://u:p@ss@broker/x@y") == "mqtt://***@broker/x@y"
    # URLs inside a longer string (a GStreamer pipeline) are masked too.
    assert (
        mask_url("rtspsrc location=rtsp://a:pw@cam/s ! decodebin ! appsink")
        == "rtspsrc location=rtsp://***@cam/s ! decodebin ! appsink"
    )
    with pytest.raises(ValueError) as e:
        parse_mqtt_url("ftp://u:hunter2@broker")
    assert "hunter2" not in str(e.value)


def test_password_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FER_EDGE_MQTT_PASSWORD", raising=False)
    assert MqttSinkConfig(type="mqtt").resolve_password() is None
    monkeypatch.setenv("FER_EDGE_MQTT_PASSWORD", "from-env")
    assert MqttSinkConfig(type="mqtt").resolve_password() == "from-env"
    assert MqttSinkConfig(type="mqtt", url="mqtt://u:from-url@h").resolve_password() == "from-url"
    f = tmp_path / "pw"
    f.write_text("from-file\nignored\n")
    c = MqttSinkConfig(type="mqtt", password_file=f, username="u")
    assert c.resolve_password() == "from-file" and c.resolve_username() == "u"
    c = MqttSinkConfig(type="mqtt", password="explicit")  # type: ignore[arg-type]
    assert c.resolve_password() == "explicit"
    assert "explicit" not in repr(c) and "explicit" not in c.model_dump_json()


def test_stdout_sink_writes_json_lines() -> None:
    buf = io.StringIO()
    sink = StdoutSink(buf)
    evs = events(3)
    for e in evs:
        sink.publish_event(e)
    sink.close()
    assert [Event.from_json(x) for x in buf.getvalue().splitlines()] == evs
    assert sink.stats() == {"published": 3}
    with pytest.raises(PublishError):
        sink.publish_event(evs[0])


def test_stdout_sink_broken_pipe_is_a_publish_error() -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(PublishError, match="stdout is closed"):
        StdoutSink(Broken()).publish_event(events(1)[0])


def test_jsonl_sink_appends_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "events.jsonl"
    evs = events(4)
    sink = JsonlSink(path, fsync_every=2)
    sink.open()
    sink.publish_event(evs[0])
    # Flushed per event: readable before close.
    assert [Event.from_json(x) for x in path.read_text().splitlines()] == evs[:1]
    sink.publish_event(evs[1])
    sink.close()
    sink.close()  # twice is fine
    again = JsonlSink(path)
    for e in evs[2:]:
        again.publish_event(e)  # opens lazily, appends
    again.close()
    assert [Event.from_json(x) for x in path.read_text().splitlines()] == evs


def test_jsonl_sink_unwritable_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PublishError, match="cannot open"):
        JsonlSink(blocker / "events.jsonl").open()


def test_group_fans_out_and_sums_stats(tmp_path: Path) -> None:
    buf = io.StringIO()
    a, b = JsonlSink(tmp_path / "a.jsonl"), StdoutSink(buf)
    group = SinkGroup([a, b, JsonlSink(tmp_path / "c.jsonl")])
    group.open()
    for e in events(2):
        group.publish_event(e)
    st = group.stats()
    assert set(st["sinks"]) == {"jsonl", "stdout", "jsonl#2"}
    assert st["sinks"]["jsonl"] == {"published": 2}
    assert (st["queue_depth"], st["dropped"], st["connected"]) == (0, 0, None)
    group.close()
    assert len(buf.getvalue().splitlines()) == 2


def test_group_keeps_publishing_when_one_sink_fails(tmp_path: Path) -> None:
    dead = StdoutSink(io.StringIO())
    dead.close()
    ok = JsonlSink(tmp_path / "ok.jsonl")
    group = SinkGroup([dead, ok])
    with pytest.raises(PublishError):
        group.publish_event(events(1)[0])
    assert ok.stats()["published"] == 1
    group.close()


def test_group_spills_to_systemd_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path}:/elsewhere")
    # A never-opened MQTT sink hands back everything it was given.
    sink = MqttSink(MqttSinkConfig(type="mqtt", url="mqtt://127.0.0.1:9"), "d")
    group = SinkGroup([sink])
    assert group.spill_path == tmp_path / SPILL_NAME
    evs = events(3)
    for e in evs:
        group.publish_event(e)
    group.close(timeout=0.1)
    lines = (tmp_path / SPILL_NAME).read_text().splitlines()
    assert [Event.from_json(x) for x in lines] == evs
    assert json.loads(lines[0])["schema"] == "fer.event/1"
