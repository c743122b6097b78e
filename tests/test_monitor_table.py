"""``fer-edge monitor``'s table: one aligned row per device with its stats, one row per face."""

from __future__ import annotations

import json

from edge.contract import FER2013_LABELS
from edge.events import Event, ModelRef
from edge.monitor import new_fleet, render
from edge.subscribe.messages import Message


def _event(track: int, emotion: str) -> Event:
    scores = dict.fromkeys(FER2013_LABELS, 0.05)
    scores[emotion] = 0.7
    return Event.create(
        device_id="door-cam",
        frame=3,
        track_id=track,
        type="start",
        bbox=(60, 40, 140, 140),
        scores=scores,
        model=ModelRef("m", "0" * 64),
    )


def test_table_rows_are_aligned_and_show_latency_and_uptime() -> None:
    st = new_fleet()
    st.handle(Message("fer/door-cam/status", b"online"), now=0.0)
    stats = {
        "fps": 14.83, "queue_depth": 2, "dropped": 5, "reconnects": 1, "uptime_s": 3725.2,
        "latency_ms": {"total": {"p50": 41.2, "p95": 63.9}},
    }  # fmt: skip
    st.handle(Message("fer/door-cam/stats", json.dumps(stats).encode()), now=0.0)
    st.handle(Message("fer/door-cam/events", _event(1, "happy").to_json().encode()), now=1.0)
    st.handle(Message("fer/door-cam/events", _event(12, "surprise").to_json().encode()), now=2.0)
    # Malformed stats fields render as '-', never raise.
    lobby_stats = json.dumps({"latency_ms": [1], "uptime_s": 1e300}).encode()
    st.handle(Message("fer/lobby/stats", lobby_stats), now=0.0)
    lines = render(st, "mqtt://h:1883", now=5.0).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("DEVICE"))
    cols = lines[header].split()
    assert cols == [
        "DEVICE", "STATUS", "FPS", "P50ms", "P95ms", "QUEUE", "DROPPED", "RECONN", "UPTIME",
        "FACES", "EVENTS",
    ]  # fmt: skip
    door = lines[header + 1].split()
    assert door == ["door-cam", "online", "14.8", "41.2", "63.9", "2", "5", "1", "1h02m", "2", "2"]
    # Right-aligned columns end where their header ends.
    assert len(lines[header + 1]) == len(lines[header])
    faces = [line for line in lines if line.startswith("    track")]
    assert [f.split()[1:3] for f in faces] == [["1", "happy"], ["12", "surprise"]]
    assert [f.split()[-2] for f in faces] == ["4.0s", "3.0s"]  # since each face's last event
    lobby = next(line for line in lines if line.startswith("lobby"))
    assert lobby.split()[1:9] == ["?", "-", "-", "-", "-", "-", "-", "-"]
