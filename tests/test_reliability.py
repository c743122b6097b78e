"""Faults end to end: broker outages with the real pipeline, camera loss and stalls, bad models.

What test_mqtt / test_pipeline already prove at the sink level (queueing while the broker is down
at start, overflow counting on a bare sink, in-flight re-sends, spill on close) is not repeated;
here the whole pipeline runs on a real-time looping video of real FER2013 faces and a persistent
QoS-1 subscriber is the receiving end, with the JSONL sink as the oracle of what was produced.

Vocabulary of the outage tests (all by ``event_id``):

* produced: unique ids in the JSONL file (every event the pipeline made);
* delivered: unique ids the persistent subscriber received; duplicated: messages beyond that;
* spilled: ids written to the JSONL file a second time at shutdown (undelivered MQTT events);
* dropped: the MQTT sink's own ``dropped`` counter (oldest events discarded on queue overflow).

Invariant (exact): ``produced == delivered + dropped + spilled-and-not-delivered`` and the ids
that never arrived and were not spilled are exactly ``dropped`` consecutive events.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import service
from edge.app import Pipeline
from edge.camera import OpenCVSource
from edge.camera.base import FrameSource
from edge.config import default_model_path, load_config
from edge.errors import SourceError
from edge.events import Event
from edge.publish.base import Sink
from edge.testing.broker import Mosquitto, Subscriber
from edge.testing.cli import run_module
from edge.testing.facevideo import Placement, detectable, load_fer_faces, render, write_video
from edge.testing.mqtt import wait_until

REPO = Path(__file__).resolve().parents[1]
FPS = 10.0


@pytest.fixture(scope="module")
def faces_video(tmp_path_factory: pytest.TempPathFactory, fer_slice_csv: Path) -> Path:
    """20 frames (2 s at 10 fps) with two still, detectable FER2013 faces in every frame."""
    faces = load_fer_faces(fer_slice_csv, 60)
    a, b = detectable(faces, side=120, want=2)
    placements = [
        Placement(a, range(0, 20), 120, (60, 80), (0, 0)),
        Placement(b, range(0, 20), 120, (400, 250), (0, 0)),
    ]
    out = tmp_path_factory.mktemp("rel") / "still.avi"
    return write_video(out, render(faces, placements, 20), fps=FPS)


@pytest.fixture(scope="module")
def face_frame(faces_video: Path) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(faces_video))
    ok, img = cap.read()
    cap.release()
    assert ok
    return img


def jsonl_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line)["event_id"])
        except (ValueError, KeyError):
            continue  # a line being written right now
    return out


def mqtt_sink(url: str, client_id: str, **kw: Any) -> dict[str, Any]:
    return {
        "type": "mqtt",
        "url": url,
        "client_id": client_id,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 0.5,
        "keepalive_s": 5,
        "homeassistant": False,
        **kw,
    }


def steady_cfg(video: Path, model: Path, sinks: list[dict[str, Any]], **extra: Any) -> Any:
    """Real-time looping replay with one 'update' per face per frame (~20 events/s)."""
    return load_config(
        None,
        {
            "device_id": "rel-dev",
            "source": {"type": "file", "path": str(video), "realtime": True, "loop": True},
            "model": {"path": str(model)},
            "tracking": {"update_interval_s": 0, "update_every_frames": 1},
            "stats_interval_s": 1.0,
            "broker_wait_s": 5.0,
            "sinks": sinks,
            **extra,
        },
    )


class Runner:
    """Run a pipeline in a thread; re-raise its failure on join."""

    def __init__(self, p: Pipeline) -> None:
        self.p = p
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.p.run()
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            self.error = e

    def stop(self, timeout: float = 30.0) -> None:
        self.p.stop("test done")
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "pipeline did not stop"
        if self.error is not None:
            raise self.error


def _outage_run(
    broker: Mosquitto,
    video: Path,
    model: Path,
    tmp_path: Path,
    name: str,
    outage_s: float,
    **sink_kw: Any,
) -> dict[str, Any]:
    """Pipeline -> MQTT with a broker outage in the middle; returns the counts."""
    topic = "fer/rel-dev/events"
    oracle_id = f"oracle-{name}"
    # Register the persistent session first: the broker then keeps QoS-1 events for it.
    Subscriber(broker.url, [topic], client_id=oracle_id, clean=False).close()
    jsonl = tmp_path / f"{name}.jsonl"
    cfg = steady_cfg(
        video,
        model,
        [mqtt_sink(broker.url, f"dev-{name}", **sink_kw), {"type": "jsonl", "path": str(jsonl)}],
    )
    p = Pipeline(cfg)
    run = Runner(p)
    try:
        assert wait_until(lambda: len(jsonl_ids(jsonl)) >= 20, 60), "no events before the outage"
        broker.stop()
        before = len(jsonl_ids(jsonl))
        time.sleep(outage_s)
        during = len(jsonl_ids(jsonl)) - before
        assert wait_until(lambda: p.stats()["connected"] is False, 5)
        down = p.stats()  # while the broker is away the stats must say so
        broker.start()
        assert wait_until(lambda: p.stats()["connected"] is True, 15), "no reconnect"
        n = len(jsonl_ids(jsonl))
        assert wait_until(lambda: len(jsonl_ids(jsonl)) >= n + 20, 30)  # events after the outage
        # Let the queue drain before stopping, so nothing needs to be spilled.
        assert wait_until(lambda: p.stats()["queue_depth"] == 0, 20)
    finally:
        run.stop()
    ids = jsonl_ids(jsonl)
    produced = list(dict.fromkeys(ids))  # unique, in production order
    counts = Counter(ids)
    spilled = {i for i, c in counts.items() if c > 1}
    mq = p.stats()["sinks"]["mqtt"]
    sub = Subscriber(broker.url, [topic], client_id=oracle_id, clean=False)
    try:
        want = set(produced)
        # At least this many must arrive by the sink's own account (what it did not drop or
        # spill); a loaded machine can pause the stream for a second before that, so a quiet
        # second only ends the wait once they have (then the assertions judge the rest).
        least = len(produced) - mq["dropped"] - len(spilled)
        last, quiet_since, deadline = -1, time.monotonic(), time.monotonic() + 30
        while time.monotonic() < deadline:
            got = sub.on(topic)
            seen = {Event.from_json(x).event_id for x in got}
            if seen >= want:
                break
            if len(got) != last:
                last, quiet_since = len(got), time.monotonic()
            elif time.monotonic() - quiet_since > 1.0 and len(seen) >= least:
                break
            time.sleep(0.1)
        received = [Event.from_json(x).event_id for x in sub.on(topic)]
    finally:
        sub.close()
    return {
        "produced": produced,
        "delivered": set(received),
        "duplicated": len(received) - len(set(received)),
        "duplicated_ids": {i for i, c in Counter(received).items() if c > 1},
        "before": before,
        "spilled": spilled,
        "during": during,
        "down_stats": down,
        "mqtt": mq,
        "summary": p.summary,
    }


@pytest.mark.broker
@pytest.mark.slow
def test_broker_outage_loses_nothing_with_the_real_pipeline(
    mosquitto_factory: Callable[..., Mosquitto], faces_video: Path, model_path: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=True)
    r = _outage_run(broker, faces_video, model_path, tmp_path, "outage", outage_s=3.0)
    produced = r["produced"]
    assert r["during"] >= 20, "the pipeline must keep producing while the broker is down"
    down = r["down_stats"]
    assert down["connected"] is False and down["queue_depth"] > 0 and down["dropped"] == 0
    # Nothing lost: every produced event reached the persistent subscriber, nothing else did.
    assert r["delivered"] == set(produced)
    assert r["mqtt"]["dropped"] == 0 and r["spilled"] == set()
    assert r["mqtt"]["published"] == len(produced)
    assert r["mqtt"]["reconnects"] >= 1
    # At-least-once: a duplicate can only be an event that was in flight (sent, unacknowledged)
    # when the broker went away and was re-sent after the reconnect. So there are at most
    # max_inflight (20) per reconnect, and each was produced before the outage began.
    assert r["duplicated"] <= 20 * r["mqtt"]["reconnects"], r["duplicated"]
    assert r["duplicated_ids"] <= set(produced[: r["before"]]), r["duplicated_ids"]
    assert sum(r["summary"].events.values()) == len(produced)


@pytest.mark.broker
@pytest.mark.slow
def test_tiny_queue_overflow_is_counted_exactly(
    mosquitto_factory: Callable[..., Mosquitto], faces_video: Path, model_path: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=True)
    r = _outage_run(
        broker,
        faces_video,
        model_path,
        tmp_path,
        "tiny",
        outage_s=3.0,
        queue_size=3,
        max_inflight=5,
    )
    produced = r["produced"]
    dropped = r["mqtt"]["dropped"]
    assert dropped > 0 and r["down_stats"]["dropped"] > 0
    missing = [i for i in produced if i not in r["delivered"] and i not in r["spilled"]]
    # Exactly the counted number never arrived, and nothing arrived that was not produced.
    assert len(missing) == dropped
    assert r["delivered"] <= set(produced)
    assert r["mqtt"]["published"] + dropped + len(r["spilled"] - r["delivered"]) == len(produced)
    # The queue drops the OLDEST queued events: one contiguous run from the outage, the newest
    # (the last queue_size of the outage) are kept.
    pos = [produced.index(i) for i in missing]
    assert pos == list(range(pos[0], pos[0] + len(pos)))
    assert pos[-1] < len(produced) - 3


@pytest.mark.broker
@pytest.mark.slow
def test_sigterm_during_outage_is_bounded_and_spills_to_jsonl(
    mosquitto_factory: Callable[..., Mosquitto], faces_video: Path, model_path: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory()
    jsonl = tmp_path / "term.jsonl"
    timeout_s = 2.0
    conf = tmp_path / "term.toml"
    conf.write_text(
        f"""
device_id = "term-dev"
shutdown_timeout_s = {timeout_s}
stats_interval_s = 1.0
[source]
type = "file"
path = "{faces_video}"
realtime = true
loop = true
[model]
path = "{model_path}"
[tracking]
update_interval_s = 0
update_every_frames = 1
[[sinks]]
type = "mqtt"
url = "{broker.url}"
client_id = "term-dev"
reconnect_min_s = 0.2
reconnect_max_s = 0.5
[[sinks]]
type = "jsonl"
path = "{jsonl}"
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(conf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert wait_until(lambda: len(jsonl_ids(jsonl)) >= 10, 60), "no events"
        broker.stop()
        n = len(jsonl_ids(jsonl))
        assert wait_until(lambda: len(jsonl_ids(jsonl)) >= n + 20, 20)  # queued, not delivered
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout_s + 20)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "signal SIGTERM" in err
    # A bound, not a speed target: the configured flush budget plus slack for the interpreter.
    assert elapsed < timeout_s + 5, elapsed
    counts = Counter(jsonl_ids(jsonl))
    spilled = sum(1 for c in counts.values() if c == 2)
    assert spilled >= 20 and all(c in (1, 2) for c in counts.values())
    assert f"wrote {spilled} undelivered events to {jsonl}" in err
    assert "undelivered events are lost" not in err
    # 'stopped' could not be published (broker down), so no claim of it in the log either.
    assert "all events delivered" not in err


# ------------------------------------------------------------------------------ camera faults
class FlakyCamera(FrameSource):
    """A live camera test double that can vanish (errors) or stall (frames stop, no error).

    It serves one real face frame at ~25 fps. ``present`` cleared: reads fail with OSError and
    opening fails (a USB camera unplugged). ``flowing`` cleared: reads block (a stalled stream).
    """

    type = "flaky-test"

    def __init__(self, image: np.ndarray, **kw: Any) -> None:
        super().__init__(live=True, **kw)
        self.image = image
        self.present = threading.Event()
        self.present.set()
        self.flowing = threading.Event()
        self.flowing.set()
        self.opens = 0

    def _open(self) -> None:
        if not self.present.is_set():
            raise SourceError("flaky camera: no such device")
        self.opens += 1

    def _grab(self) -> np.ndarray | None:
        while not self.flowing.is_set() and not self.stopping:
            self.flowing.wait(0.05)
        if not self.present.is_set():
            raise OSError("flaky camera: device vanished")
        self._stop.wait(0.04)
        return self.image

    def _close(self) -> None:
        pass


class TimedSink(Sink):
    """Records (monotonic time, event) for every event."""

    type = "timed"

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []

    def publish_event(self, event: Event) -> None:
        self.events.append((time.monotonic(), event))

    def close(self, timeout: float = 5.0) -> None:
        pass


@pytest.fixture
def notify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[float, str]]]:
    """A fake systemd notify socket read concurrently; yields [(monotonic time, message)]."""
    addr = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(addr)
    sock.settimeout(0.1)
    monkeypatch.setenv("NOTIFY_SOCKET", addr)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s: a ping at most every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setattr(service, "_last_ping", None)
    msgs: list[tuple[float, str]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                data = sock.recv(4096).decode()
            except TimeoutError:
                continue
            now = time.monotonic()
            msgs.extend((now, m) for m in data.splitlines())

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        yield msgs
    finally:
        done.set()
        t.join(2)
        sock.close()


def _pings(msgs: list[tuple[float, str]], start: float, end: float) -> int:
    return sum(1 for t, m in msgs if m == "WATCHDOG=1" and start <= t <= end)


def _first_event_after(sink: TimedSink, t: float) -> float | None:
    return next((ts for ts, _ in list(sink.events) if ts > t), None)


@pytest.mark.slow
def test_camera_vanishes_and_stalls_then_recovers_within_5s(
    face_frame: np.ndarray, model_path: Path, tmp_path: Path, notify: list[tuple[float, str]]
) -> None:
    cam = FlakyCamera(face_frame, reopen_timeout_s=30, backoff_max_s=1.0)
    sink = TimedSink()
    cfg = steady_cfg(tmp_path / "unused.avi", model_path, [])
    p = Pipeline(cfg, source=cam, sinks=[sink])
    run = Runner(p)
    try:
        assert wait_until(lambda: len(sink.events) >= 10, 60)
        assert wait_until(lambda: _pings(notify, 0, time.monotonic()) >= 3, 5)

        # 1. The device vanishes for 3 s (reads fail, reopening fails), then comes back.
        cam.present.clear()
        gone = time.monotonic()
        time.sleep(3.0)
        cam.present.set()
        back = time.monotonic()
        assert wait_until(lambda: _first_event_after(sink, back) is not None, 5.0)
        recovered = _first_event_after(sink, back)
        assert recovered is not None and recovered - back < 5.0
        assert wait_until(lambda: _pings(notify, back, time.monotonic()) >= 1, 5.0)
        # No frames, no watchdog: nothing between (shortly after) the loss and the return.
        assert _pings(notify, gone + 0.5, back) == 0
        assert cam.stats()["reopens"] == 1 and cam.opens >= 2

        # 2. The stream stalls for 3 s without any error, then frames flow again.
        cam.flowing.clear()
        stalled = time.monotonic()
        time.sleep(3.0)
        cam.flowing.set()
        resumed = time.monotonic()
        assert wait_until(lambda: _first_event_after(sink, resumed) is not None, 5.0)
        assert _pings(notify, stalled + 0.5, resumed) == 0
        assert wait_until(lambda: _pings(notify, resumed, time.monotonic()) >= 1, 5.0)
        assert p.stats()["source"]["reopens"] == 1  # a stall is not a failure
    finally:
        run.stop()
    assert p.summary.stop_reason == "test done"
    assert wait_until(lambda: any(m == "STOPPING=1" for _, m in notify), 3)
    messages = [m for _, m in notify]
    assert "READY=1" in messages and "STOPPING=1" in messages


def test_camera_that_never_returns_fails_cleanly(
    face_frame: np.ndarray, model_path: Path, tmp_path: Path
) -> None:
    cam = FlakyCamera(face_frame, reopen_timeout_s=1.0, backoff_max_s=0.2)
    sink = TimedSink()
    p = Pipeline(steady_cfg(tmp_path / "unused.avi", model_path, []), source=cam, sinks=[sink])
    run = Runner(p)
    assert wait_until(lambda: len(sink.events) >= 2, 60)
    cam.present.clear()
    run.thread.join(30)
    assert not run.thread.is_alive()
    assert isinstance(run.error, SourceError)
    assert "not back within 1 s" in str(run.error) and "device vanished" in str(run.error)
    # Shut down cleanly anyway: every started track got its 'end'.
    types = [e.type for _, e in sink.events]
    assert types.count("end") == types.count("start") > 0


def test_opencv_stream_file_that_vanishes_is_reopened(faces_video: Path, tmp_path: Path) -> None:
    """A real OpenCV (FFmpeg) source on a file:// URL whose file disappears and comes back."""
    path = tmp_path / "stream.avi"
    path.write_bytes(faces_video.read_bytes())
    src = OpenCVSource(f"file://{path}", open_timeout_s=20, backoff_max_s=0.5)
    src.open()
    try:
        assert src.read(timeout=5) is not None
        path.rename(tmp_path / "away.avi")
        # The open handle plays to its end, then reopening fails while the file is away.
        assert wait_until(lambda: src.read(timeout=0.2) is None, 10)
        time.sleep(1.5)
        assert src.read(timeout=0.2) is None
        (tmp_path / "away.avi").rename(path)
        back = time.monotonic()
        frame = None
        while frame is None and time.monotonic() - back < 5.0:
            frame = src.read(timeout=0.2)
        assert frame is not None, "no frame within 5 s of the stream returning"
        assert src.stats()["reconnects"] >= 1
    finally:
        src.close()


# ------------------------------------------------------------------------------ model faults
def _bad_models(tmp: Path) -> dict[str, Path]:
    from test_model_meta import make_meta, make_tflite

    from edge.contract import FERPLUS_LABELS
    from edge.model_meta import embed_metadata

    good = default_model_path().read_bytes()
    models = {
        "empty": b"",
        "junk": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "truncated": good[: len(good) // 2],
        "no-metadata": make_tflite(),
        "wrong-input-shape": embed_metadata(make_tflite(size=64), make_meta(), check=False),
        "wrong-label-count": embed_metadata(
            make_tflite(n_classes=7), make_meta(labels=FERPLUS_LABELS), check=False
        ),
    }
    out = {}
    for name, data in models.items():
        p = tmp / f"{name}.tflite"
        p.write_bytes(data)
        out[name] = p
    return out


_MODEL_MESSAGES = {
    "empty": "",
    "junk": "",
    "truncated": "",
    "no-metadata": "no 'fer_edge' metadata",
    "wrong-input-shape": "input shape",
    "wrong-label-count": "8 labels",
}


@pytest.mark.parametrize("name", sorted(_MODEL_MESSAGES))
def test_bad_model_is_one_clear_error_exit_2(
    name: str, tmp_path: Path, faces_video: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    bad = _bad_models(tmp_path)[name]
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        rc = main(["run", "--model", str(bad), "--source", str(faces_video), "--max-frames", "1"])
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""  # no event was produced
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    assert bad.name in errors[0] and _MODEL_MESSAGES[name] in errors[0]
    assert "Traceback" not in err


@pytest.mark.slow
def test_bad_model_through_the_console_script(tmp_path: Path) -> None:
    bad = _bad_models(tmp_path)["truncated"]
    proc = run_module(
        "edge",
        "run",
        "--model",
        str(bad),
        "--max-frames",
        "1",
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr
    assert proc.stdout == ""


# ------------------------------------------------------------------------------ bench script
@pytest.mark.broker
@pytest.mark.slow
def test_bench_faults_help_and_a_tiny_load_run(tmp_path: Path) -> None:
    """bench/faults.py stays runnable: --help, and a 2-device, 1-second load run."""
    script = REPO / "bench" / "faults.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "outage" in proc.stdout and "soak" in proc.stdout
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "load", "--devices", "2",
         "--procs", "1", "--rate", "10", "--seconds", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "faults-load.json").read_text())
    assert result["sent"] == 20 and result["lost"] == 0 and result["ok"] is True
