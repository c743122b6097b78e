"""The MQTT sink's write-ahead spool (edge/publish/spool.py): a crash loses no queued event.

A "crash" here is a sink that is abandoned without close() (its network loop stopped, its files
left as the killed process would leave them); bench/fault_matrix.py's ``kill_in_outage`` row
does the same with a real SIGKILL of ``fer-edge run``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.events import Event
from edge.publish.config import MqttSinkConfig
from edge.publish.mqtt import MqttSink
from edge.publish.spool import Spool
from edge.testing.broker import Mosquitto, Subscriber
from edge.testing.mqtt import make_events

pytestmark = pytest.mark.broker


def events(n: int, start: int = 0) -> list[Event]:
    return make_events(n, "sp", start)


def cfg(url: str, spool: Path, **kw: object) -> MqttSinkConfig:
    return MqttSinkConfig(
        url=url,
        client_id="spool-dev",
        spool_dir=spool,
        homeassistant=False,
        reconnect_min_s=0.1,
        reconnect_max_s=0.3,
        keepalive_s=5,
        **kw,  # type: ignore[arg-type]
    )


def crash(sink: MqttSink) -> None:
    """Abandon the sink as SIGKILL would: no flush, no 'stopped', no spill, no file cleanup."""
    assert sink._client is not None
    sink._stop.set()
    sink._client.loop_stop()
    sock = sink._client.socket()
    if sock is not None:
        sock.close()


def test_crash_during_outage_then_restart_delivers_everything(
    mosquitto_factory: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=True)
    topic = "fer/sp/events"
    Subscriber(broker.url, [topic], client_id="spool-oracle", clean=False).close()
    first = MqttSink(cfg(broker.url, tmp_path / "spool"), "sp")
    first.open()
    assert first.wait_connected(10)
    before, during = events(5), events(7, start=5)
    for ev in before:
        first.publish_event(ev)
    deadline = time.monotonic() + 10
    while first.stats()["published"] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.stats()["published"] == 5
    broker.stop()
    for ev in during:
        first.publish_event(ev)
    crash(first)
    # The acknowledged events are done, the queued ones wait on disk.
    assert [e.event_id for e in Spool(tmp_path / "spool", "spool-dev").load()] == [
        e.event_id for e in during
    ]
    broker.start()
    second = MqttSink(cfg(broker.url, tmp_path / "spool"), "sp")
    sub = Subscriber(broker.url, [topic], client_id="spool-oracle", clean=False)
    try:
        second.open()
        assert second.wait_connected(10)
        want = {e.event_id for e in before + during}
        assert sub.wait_for(
            lambda s: {Event.from_json(p).event_id for p in s.on(topic)} >= want, 10
        )
        assert {Event.from_json(p).event_id for p in sub.on(topic)} == want
        # Nothing pending: a restart would re-send nothing.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and second.stats()["queue_depth"]:
            time.sleep(0.05)
        second.close(2)
        assert Spool(tmp_path / "spool", "spool-dev").load() == []
    finally:
        second.close(2)
        sub.close()


def test_spool_skips_torn_lines_done_ids_and_overflow(tmp_path: Path) -> None:
    sp = Spool(tmp_path, "x")
    assert sp.load() == []
    evs = events(6)
    for ev in evs:
        sp.add(ev)
    sp.done([evs[0].event_id, evs[2].event_id])
    sp.close()
    with (tmp_path / "x.queue.jsonl").open("a") as fh:
        fh.write('{"schema": "fer.event/1", "event_id": "tor')  # the crash hit a write
    again = Spool(tmp_path, "x").load()
    assert [e.event_id for e in again] == [evs[i].event_id for i in (1, 3, 4, 5)]
    # A sink re-queues at most queue_size of them, dropping (and counting) the oldest.
    sink = MqttSink(cfg("mqtt://127.0.0.1:1", tmp_path, queue_size=2), "sp")
    sink._spool = Spool(tmp_path, "x")
    sink._requeue(sink._spool.load())
    assert sink.stats()["queued"] == 2 and sink.stats()["dropped"] == 2
    sink.close(0.2)
    assert [e.event_id for e in sink.drain_undelivered()] == [evs[4].event_id, evs[5].event_id]
    assert [e.event_id for e in Spool(tmp_path, "x").load()] == [evs[4].event_id, evs[5].event_id]


def test_spool_is_emptied_in_batches(tmp_path: Path) -> None:
    from edge.publish.spool import EMPTY_AFTER

    sp = Spool(tmp_path, "b")
    sp.load()
    evs = events(EMPTY_AFTER)
    for ev in evs[:-1]:
        sp.add(ev)
    sp.done(e.event_id for e in evs[:-1])
    sp.settle([])
    assert (tmp_path / "b.queue.jsonl").stat().st_size > 0  # not yet worth a rewrite
    sp.add(evs[-1])
    sp.done([evs[-1].event_id])
    sp.settle([])
    assert (tmp_path / "b.queue.jsonl").stat().st_size == 0
    assert (tmp_path / "b.done").stat().st_size == 0
    sp.close()
