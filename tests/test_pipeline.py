"""End to end: a video made from real FER2013 faces -> fer-edge pipeline -> events.

The video is generated in the test (never stored): two real FER2013 faces, upscaled and placed
with margin on a 640x480 canvas, drift slowly; face A is visible in frames 0-29, face B in
frames 10-39. The pipeline runs with the bundled int8 model (its metadata decides crop size and
labels), in process, as a ``fer-edge run`` subprocess, and against a real mosquitto broker.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.app import Pipeline, frame_problem
from edge.config import load_config
from edge.events import Event
from edge.model_meta import file_sha256, read_metadata
from edge.testing.cli import run_module
from edge.testing.facevideo import Placement, detectable, load_fer_faces, render, write_video

REPO = Path(__file__).resolve().parents[1]
N_FRAMES = 40


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory, fer_slice_csv: Path):
    faces = load_fer_faces(fer_slice_csv, 60)
    a, b = detectable(faces, side=120, want=2)
    placements = [
        Placement(a, range(0, 30), 120, (60, 80), (2, 1)),
        Placement(b, range(10, N_FRAMES), 120, (400, 250), (-1, -1)),
    ]
    path = write_video(
        tmp_path_factory.mktemp("video") / "faces.avi", render(faces, placements, N_FRAMES)
    )
    return path, placements


def _cfg(video: Path, model: Path, jsonl: Path, **extra):
    over = {
        "device_id": "test-device",
        "source": {"type": "file", "path": str(video)},
        "model": {"path": str(model)},
        "sinks": [{"type": "jsonl", "path": str(jsonl)}],
        "tracking": {"update_interval_s": 0, "update_every_frames": 10, "max_missed": 3},
        **extra,
    }
    return load_config(None, over)


def _read_events(path: Path) -> list[Event]:
    return [Event.from_json(line) for line in path.read_text().splitlines() if line.strip()]


def _check_events(events: list[Event], placements: list[Placement], model: Path) -> None:
    meta = read_metadata(model)
    sha = file_sha256(model)
    assert events, "no events"
    for ev in events:
        assert ev.device_id == "test-device"
        assert tuple(ev.scores) == meta.labels  # labels from the model, in its order
        assert ev.model.sha256 == sha and ev.model.name == meta.arch
        assert abs(sum(ev.scores.values()) - 1.0) < 1e-3
    by_track: dict[int, list[Event]] = {}
    for ev in events:
        by_track.setdefault(ev.track_id, []).append(ev)
    assert len(by_track) == 2, {k: [e.type for e in v] for k, v in by_track.items()}
    matched = set()
    for evs in by_track.values():
        types = [e.type for e in evs]
        assert types[0] == "start" and types[-1] == "end" and types.count("start") == 1
        assert set(types) <= {"start", "change", "update", "end"}
        frames = [e.frame for e in evs]
        assert frames == sorted(frames)
        # Each track follows one placed face: boxes are where that face was in that frame.
        for p in placements:
            if all(_near(e.bbox, p.box(min(e.frame, p.frames[-1]))) for e in evs):
                matched.add(p.face_index)
                assert evs[0].frame in p.frames
    assert len(matched) == 2


def _near(bbox, truth) -> bool:
    x, y, w, h = bbox
    tx, ty, tw, th = truth
    return abs(x + w / 2 - (tx + tw / 2)) < tw / 3 and abs(y + h / 2 - (ty + th / 2)) < th / 3


def test_pipeline_in_process(
    scene, model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video, placements = scene
    jsonl = tmp_path / "events.jsonl"
    p = Pipeline(_cfg(video, model_path, jsonl))
    summary = p.run()
    assert summary.frames == N_FRAMES and summary.processed == N_FRAMES and summary.corrupt == 0
    assert summary.stop_reason == "end of source"
    events = _read_events(jsonl)
    _check_events(events, placements, model_path)
    # stdout (added because no broker is configured) carries the same events.
    stdout_events = [Event.from_json(line) for line in capsys.readouterr().out.splitlines()]
    assert [e.event_id for e in stdout_events] == [e.event_id for e in events]
    assert summary.events["start"] == 2 and summary.events["end"] == 2
    stats = p.stats()
    assert set(stats["latency_ms"]) >= {"detect", "crop", "infer", "total"}
    assert stats["faces_total"] >= 50 and stats["events"]["start"] == 2


def test_max_frames_and_corrupt_frames(
    model_path: Path, tmp_path: Path, fer_slice_csv: Path
) -> None:
    faces = load_fer_faces(fer_slice_csv, 60)
    (idx,) = detectable(faces, want=1)
    folder = tmp_path / "frames"
    folder.mkdir()
    canvas = np.full((480, 640), 120, np.uint8)
    canvas[150:270, 200:320] = cv2.resize(faces[idx], (120, 120))
    names = []
    for i in range(12):
        names.append(f"f{i:02d}.png")
        img = canvas if i % 2 else cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)  # gray and BGR mixed
        cv2.imwrite(str(folder / names[-1]), img)
    # Corrupt frames in between: undecodable, 16-bit, tiny, too large.
    (folder / "f03a.png").write_bytes(b"\x89PNG garbage")
    cv2.imwrite(str(folder / "f05a.png"), canvas.astype(np.uint16) * 256)
    cv2.imwrite(str(folder / "f07a.png"), canvas[:4, :4])
    cv2.imwrite(str(folder / "f09a.png"), np.zeros((1200, 1200), np.uint8))
    jsonl = tmp_path / "e.jsonl"
    over = {"max_frame_pixels": 1000 * 1000}
    cfg = _cfg(folder, model_path, jsonl, **over)
    summary = Pipeline(cfg).run()
    assert summary.frames == 16 and summary.corrupt == 4 and summary.processed == 12
    events = _read_events(jsonl)
    assert [e.type for e in events][0] == "start" and events[-1].type == "end"
    assert len({e.track_id for e in events}) == 1  # corrupt frames did not break the track

    cfg = _cfg(folder, model_path, tmp_path / "e2.jsonl", max_frames=5)
    summary = Pipeline(cfg).run()
    assert summary.frames == 5 and summary.stop_reason.startswith("max_frames")


def test_frame_problem_cases() -> None:
    ok = np.zeros((48, 64), np.uint8)
    assert frame_problem(ok, 10**6) is None
    assert frame_problem(np.zeros((48, 64, 4), np.uint8), 10**6) is None
    assert "uint8" in str(frame_problem(ok.astype(np.float32), 10**6))
    assert "shape" in str(frame_problem(np.zeros((48, 64, 2), np.uint8), 10**6))
    assert "small" in str(frame_problem(np.zeros((0, 0), np.uint8), 10**6))
    assert "max_frame_pixels" in str(frame_problem(ok, 100))
    assert "not an array" in str(frame_problem(None, 100))


def _run_cli(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_module("edge", *args, timeout=timeout)


@pytest.mark.slow
def test_cli_run_subprocess_without_tensorflow(scene, model_path: Path, tmp_path: Path) -> None:
    video, placements = scene
    jsonl = tmp_path / "cli.jsonl"
    proc = _run_cli(
        ["run", "--source", str(video), "--model", str(model_path), "--jsonl", str(jsonl),
         "--device-id", "test-device"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stdout_events = [Event.from_json(line) for line in proc.stdout.splitlines()]
    events = _read_events(jsonl)
    assert [e.event_id for e in stdout_events] == [e.event_id for e in events]
    # CLI defaults (time-based updates) still give a clean start/end per face.
    by_track: dict[int, list[str]] = {}
    for e in events:
        by_track.setdefault(e.track_id, []).append(e.type)
    assert len(by_track) == 2 and all(t[0] == "start" and t[-1] == "end" for t in by_track.values())

    # The whole pipeline, in a fresh interpreter, must never import TensorFlow.
    code = (
        "import sys; from edge.cli import main; "
        f"rc = main(['run', '--source', {str(video)!r}, '--model', {str(model_path)!r}, "
        f"'--jsonl', {str(tmp_path / 'tf.jsonl')!r}, '--max-frames', '15']); "
        "print('RC', rc, 'TF', 'tensorflow' in sys.modules, 'KERAS', 'keras' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "RC 0 TF False KERAS False"


@pytest.mark.slow
def test_sigterm_flushes_and_exits_zero(scene, model_path: Path, tmp_path: Path) -> None:
    video, _ = scene
    jsonl = tmp_path / "sig.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--source", str(video), "--model", str(model_path),
         "--jsonl", str(jsonl), "--realtime", "--loop", "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # blocks until the first event
        assert Event.from_json(first).type == "start"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "signal SIGTERM" in err and "Traceback" not in err
    events = _read_events(jsonl)
    open_tracks = {e.track_id for e in events if e.type == "start"}
    ended = {e.track_id for e in events if e.type == "end"}
    assert open_tracks and open_tracks == ended  # every started track got its 'end'


def test_missing_model_is_clean_error(tmp_path: Path) -> None:
    proc = _run_cli(["run", "--model", str(tmp_path / "absent.tflite"), "--max-frames", "1"])
    assert proc.returncode == 2
    assert "absent.tflite" in proc.stderr and "Traceback" not in proc.stderr


def test_info_json(model_path: Path) -> None:
    proc = _run_cli(["info", str(model_path), "--json"])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["sha256"] == file_sha256(model_path)
    assert info["metadata"]["labels"] == list(read_metadata(model_path).labels)
    proc = _run_cli(["info", "/nonexistent/x.tflite"])
    assert proc.returncode == 2 and "does not exist" in proc.stderr


@pytest.mark.broker
def test_events_reach_mqtt_subscriber(scene, model_path: Path, tmp_path: Path, mosquitto) -> None:
    import paho.mqtt.client as mqtt

    video, placements = scene
    received: list[tuple[str, bytes, bool]] = []
    subscribed = threading.Event()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("fer/test-device/#", qos=1)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, m: received.append((m.topic, m.payload, bool(m.retain)))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        assert subscribed.wait(10)
        jsonl = tmp_path / "mqtt.jsonl"
        cfg = _cfg(video, model_path, jsonl)
        cfg = load_config(
            None,
            {
                **cfg.model_dump(mode="json", exclude={"sinks"}),
                "sinks": [
                    {"type": "mqtt", "url": mosquitto.url, "client_id": "pipeline-test"},
                    {"type": "jsonl", "path": str(jsonl)},
                ],
            },
        )
        Pipeline(cfg).run()
        expected = {e.event_id for e in _read_events(jsonl)}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = {json.loads(p)["event_id"] for t, p, _ in received if t.endswith("/events")}
            statuses = [p for t, p, _ in received if t.endswith("/status")]
            if got >= expected and b"stopped" in statuses:
                break
            time.sleep(0.1)
    finally:
        sub.loop_stop()
        sub.disconnect()
    events = [Event.from_json(p) for t, p, _ in received if t == "fer/test-device/events"]
    assert {e.event_id for e in events} == expected
    _check_events(
        sorted(events, key=lambda e: (e.frame, e.type != "start")), placements, model_path
    )
    assert [p for t, p, _ in received if t.endswith("/status")][-1] == b"stopped"
    assert any(t.endswith("/stats") for t, _, _ in received)
    for topic, payload, _ in received:
        # No image data, ever: payloads are small UTF-8 JSON/text with no pixel arrays.
        assert len(payload) < 8192, topic
        text = payload.decode("utf-8")
        assert "pixels" not in text and "image" not in text
        if topic.endswith(("/events", "/stats")):
            json.loads(text)


def test_systemd_ready_watchdog_stopping(
    scene, model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    video, _ = scene
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.2)
    monkeypatch.setenv("NOTIFY_SOCKET", addr)
    monkeypatch.setenv("WATCHDOG_USEC", "1")  # 1 us: every frame may ping
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    msgs: list[str] = []
    done = threading.Event()

    def reader() -> None:
        # Read while the pipeline runs, as systemd does: a unix datagram queue holds only a
        # few messages, and a full queue would block the sender.
        while not done.is_set():
            try:
                msgs.extend(sock.recv(4096).decode().splitlines())
            except TimeoutError:
                continue

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        summary = Pipeline(_cfg(video, model_path, tmp_path / "n.jsonl", max_frames=10)).run()
        time.sleep(0.5)
    finally:
        done.set()
        t.join(2)
        sock.close()
    assert summary.processed == 10
    assert "READY=1" in msgs and "STOPPING=1" in msgs
    ready, stopping = msgs.index("READY=1"), msgs.index("STOPPING=1")
    pings = [i for i, m in enumerate(msgs) if m == "WATCHDOG=1"]
    # Pings come from the frame loop only: after READY, before STOPPING, one per frame at most.
    assert pings and all(ready < i < stopping for i in pings) and len(pings) <= 10


def test_unreachable_broker_keeps_running_and_spills(
    scene, model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    video, _ = scene
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jsonl = tmp_path / "spill.jsonl"
    base = _cfg(video, model_path, jsonl, broker_wait_s=0.2, shutdown_timeout_s=1.0)
    cfg = load_config(
        None,
        {
            **base.model_dump(mode="json", exclude={"sinks"}),
            "sinks": [
                {"type": "mqtt", "url": f"mqtt://127.0.0.1:{port}", "client_id": "unreach"},
                {"type": "jsonl", "path": str(jsonl)},
            ],
        },
    )
    p = Pipeline(cfg)
    with caplog.at_level(logging.WARNING):
        summary = p.run()
    assert summary.processed == N_FRAMES and summary.events["start"] == 2
    assert "broker not reachable" in caplog.text
    stats = p.stats()
    assert stats["connected"] is False and stats["spilled"] == sum(summary.events.values())
    # Every event reached the JSONL file (directly, and again as an undelivered MQTT event).
    ids = [e.event_id for e in _read_events(jsonl)]
    assert len(set(ids)) == sum(summary.events.values())


@pytest.mark.broker
def test_refused_login_fails_start_up_cleanly(
    scene, model_path: Path, tmp_path: Path, mosquitto_factory
) -> None:
    broker = mosquitto_factory(passwords={"cam": "right"})
    video, _ = scene
    proc = _run_cli(
        ["run", "--source", str(video), "--model", str(model_path),
         "--mqtt-url", f"mqtt://cam:wrong@127.0.0.1:{broker.port}"]
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "wrong" not in proc.stderr
    assert proc.stdout == ""  # no event was produced before the failure
