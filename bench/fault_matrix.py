"""The fault matrix: how a real device, broker and subscribers live through each fault.

Run through ``python bench/faults.py matrix [--rows ...]`` (results in docs/RELIABILITY.md);
``tests/test_fault_matrix.py`` runs the same rows with short timings.

Every row starts, on loopback only: a real mosquitto (persistence as the row needs), a
persistent QoS-1 oracle subscriber (fixed client id, ``clean_session = false``, timestamps every
message), the real ``fer-edge dashboard`` (its ``/api/state`` polled) and the real
``fer-edge monitor`` (its table parsed), then the device: ``fer-edge run`` on the looping sample
video in real time with an MQTT sink and a JSONL sink (the oracle of what was produced). Then
the row's fault. Measured per row:

* ``lost``: produced (unique ids in the JSONL file) minus delivered (unique ids the oracle got)
  minus spilled (undelivered events written to the JSONL file again at shutdown);
* ``reconnect_s``: from the end of the fault until the oracle sees the device's ``online`` (in
  ``kill_in_outage``: from the device's restart, as systemd would do it);
* ``truth_s``: from the fault until BOTH the dashboard and the monitor show what is true (a dead
  or silent device not ``online``: ``stale`` or ``offline``), and ``recovered_s`` until both
  show ``online`` again where the device comes back;
* ``ha_unavailable_s``: when Home Assistant would mark the device's sensors unavailable, derived
  from the oracle's receipt times and HA's documented semantics (``expire_after`` after the last
  ``state`` message, or the ``offline`` will, whichever comes first). There is no Home Assistant
  here: this is computed, not observed;
* ``detect_s`` (half-open row): from the black hole until the device closed its dead connection.

Rows: ``sigkill``, ``sigstop``, ``kill_in_outage`` (broker crash, device SIGKILL while it is
down, broker back, device restarted: its write-ahead spool re-sends the queue), ``broker_restart`` (with persistence), ``broker_restart_volatile`` (without),
``broker_down_at_start``, ``half_open`` (a loopback TCP proxy stops forwarding without closing),
``camera_loss_in_outage`` (an OpenCV stream whose file vanishes while the broker is down).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from faults import _toml, jsonl_ids, log  # noqa: E402

from edge.testing.broker import Mosquitto, Subscriber, TcpProxy, free_port  # noqa: E402
from edge.testing.mqtt import wait_until  # noqa: E402

ROWS = (
    "sigkill",
    "sigstop",
    "kill_in_outage",
    "broker_restart",
    "broker_restart_volatile",
    "broker_down_at_start",
    "half_open",
    "camera_loss_in_outage",
)
NOT_ONLINE = ("stale", "offline")


@dataclass
class Params:
    """Timings of one matrix run (defaults: the shipped config, a fault longer than the expiry).

    Attributes:
        expiry_s: The sink's ``status_expiry_s``; also the subscribers' ``--stale-after-s``.
        keepalive_s: The sink's ``keepalive_s``.
        fault_s: How long a fault lasts (outage, SIGSTOP, black hole, camera away).
        before_s: Seconds of normal running before the fault.
        after_s: Seconds of running after the fault.
        reconnect_min_s: The sink's first reconnect delay.
        reconnect_max_s: The sink's largest reconnect delay.
        settle_s: Longest wait for the subscribers to show the truth.
    """

    expiry_s: int = 45
    keepalive_s: int = 30
    fault_s: float = 60.0
    before_s: float = 5.0
    after_s: float = 10.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    settle_s: float = 90.0


class Oracle:
    """Persistent QoS-1 subscriber to the device's topics, every message timestamped."""

    def __init__(self, url: str, device: str, client_id: str) -> None:
        self.device = device
        self.msgs: list[tuple[float, str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.sub = Subscriber(url, [f"fer/{device}/#"], client_id=client_id, clean=False)
        self.sub.client.reconnect_delay_set(0.1, 0.5)  # back before the device after a restart

        def on_message(c: Any, u: Any, msg: Any) -> None:
            with self._lock:
                self.msgs.append((time.monotonic(), msg.topic, bytes(msg.payload), msg.retain))

        self.sub.client.on_message = on_message

    def on(self, kind: str) -> list[tuple[float, bytes, bool]]:
        """(time, payload, retained) of the messages on ``fer/<device>/<kind>``."""
        topic = f"fer/{self.device}/{kind}"
        with self._lock:
            return [(t, p, r) for t, tp, p, r in self.msgs if tp == topic]

    def event_ids(self) -> list[str]:
        """Every event id received (with repeats)."""
        return [json.loads(p)["event_id"] for _, p, _ in self.on("events")]

    def first_status_after(self, t0: float, payload: bytes) -> float | None:
        """When ``payload`` was first received on the status topic after ``t0`` (live only)."""
        return next((t for t, p, r in self.on("status") if t > t0 and p == payload and not r), None)

    def close(self) -> None:
        """Disconnect."""
        self.sub.close()


class Watchers:
    """The real ``fer-edge dashboard`` and ``fer-edge monitor``, sampled every 0.2 s."""

    def __init__(self, url: str, device: str, stale_after_s: float, work: Path) -> None:
        self.device = device
        self.port = free_port()
        common = ["--mqtt-url", url, "--stale-after-s", str(stale_after_s)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._dlog = (work / "dashboard.log").open("wb")
        self.dash = subprocess.Popen(
            [sys.executable, "-m", "edge", "dashboard", "--port", str(self.port), *common],
            cwd=REPO, stdout=self._dlog, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self.mon = subprocess.Popen(
            [sys.executable, "-m", "edge", "monitor", *common],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
        )  # fmt: skip
        self.dash_seen: list[tuple[float, str | None]] = []
        self.mon_seen: list[tuple[float, str | None]] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._poll_dashboard, daemon=True),
            threading.Thread(target=self._read_monitor, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _poll_dashboard(self) -> None:
        while not self._stop.is_set():
            try:
                url = f"http://127.0.0.1:{self.port}/api/state"
                with urllib.request.urlopen(url, timeout=2) as r:
                    devs = {d["device_id"]: d for d in json.load(r)["devices"]}
                shown = devs[self.device]["liveness"] if self.device in devs else None
                if not self.dash_seen or self.dash_seen[-1][1] != shown:
                    self.dash_seen.append((time.monotonic(), shown))
            except (urllib.error.URLError, ConnectionError, OSError, ValueError, KeyError):
                pass
            self._stop.wait(0.2)

    def _read_monitor(self) -> None:
        assert self.mon.stdout is not None
        for line in self.mon.stdout:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == self.device:
                if not self.mon_seen or self.mon_seen[-1][1] != parts[1]:
                    self.mon_seen.append((time.monotonic(), parts[1]))

    @staticmethod
    def _now(seen: list[tuple[float, str | None]]) -> str | None:
        return seen[-1][1] if seen else None

    def both(self, ok: Callable[[str | None], bool]) -> bool:
        """Whether the dashboard and the monitor both show a status satisfying ``ok`` now."""
        return ok(self._now(self.dash_seen)) and ok(self._now(self.mon_seen))

    @staticmethod
    def _since(
        seen: list[tuple[float, str | None]], ok: Callable[[str | None], bool], t0: float
    ) -> float:
        """When the status last became one satisfying ``ok`` (``t0`` if it already was).

        ``seen`` holds changes only, so the start of its trailing run of ok statuses is the
        moment it became ok (and stayed so).
        """
        t = t0
        for ts, s in reversed(seen):
            if not ok(s):
                break
            t = ts
        return max(t, t0)

    def wait_both(
        self, ok: Callable[[str | None], bool], t0: float, timeout: float
    ) -> float | None:
        """Seconds from ``t0`` until both show (and keep showing) a status satisfying ``ok``,
        from the sampled histories; None if that did not happen within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.both(ok):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        t = max(self._since(self.dash_seen, ok, t0), self._since(self.mon_seen, ok, t0))
        return round(t - t0, 2)

    def close(self) -> None:
        """Stop both subprocesses."""
        self._stop.set()
        for p in (self.dash, self.mon):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._dlog.close()


def _wait(pred: Callable[[], bool], timeout: float) -> bool:
    """Poll every 0.1 s (a row's device and subscribers are whole processes)."""
    return wait_until(pred, timeout, step=0.1)


class Row:
    """One row's broker, oracle, watchers and device (see the module docstring)."""

    def __init__(
        self,
        name: str,
        p: Params,
        work: Path,
        video: Path,
        model: Path,
        *,
        persistence: bool = True,
        autosave_s: int | None = None,
    ) -> None:
        self.name, self.p, self.work = name, p, work
        self.video, self.model = video, model
        # At most 20 characters: the monitor's table shows no more.
        self.device = f"mx-{name.replace('_', '-')}"[:20]
        work.mkdir(parents=True, exist_ok=True)
        self.broker = Mosquitto(work / "broker", persistence=persistence, autosave_s=autosave_s)
        self.broker.start()
        self.oracle = Oracle(self.broker.url, self.device, f"oracle-{self.device}")
        self.watch = Watchers(self.broker.url, self.device, p.expiry_s, work)
        self.proxy: TcpProxy | None = None
        self.jsonl = work / "events.jsonl"
        self.proc: subprocess.Popen[bytes] | None = None
        self.result: dict[str, Any] = {"row": name}

    def start_device(
        self,
        url: str | None = None,
        source: dict[str, Any] | None = None,
        tracking: dict[str, Any] | None = None,
    ) -> None:
        """Start ``fer-edge run`` (stderr to ``device.log``)."""
        cfg = {
            "device_id": self.device,
            "log_level": "INFO",
            "stats_interval_s": 5.0,
            "shutdown_timeout_s": 5.0,
            "model": {"path": str(self.model)},
            "source": source
            or {"type": "file", "path": str(self.video), "realtime": True, "loop": True},
            # One 'update' per face per frame: a steady stream of events to count.
            "tracking": tracking or {"update_interval_s": 0, "update_every_frames": 1},
            "sinks": [
                {
                    "type": "mqtt",
                    "url": url or self.broker.url,
                    "client_id": f"dev-{self.device}",
                    "keepalive_s": self.p.keepalive_s,
                    "status_expiry_s": self.p.expiry_s,
                    "reconnect_min_s": self.p.reconnect_min_s,
                    "reconnect_max_s": self.p.reconnect_max_s,
                    # The write-ahead spool (as in deploy/config.example.toml): a SIGKILL
                    # during an outage loses no queued event.
                    "spool_dir": str(self.work / "spool"),
                    "homeassistant": False,
                },
                {"type": "jsonl", "path": str(self.jsonl)},
            ],
        }
        conf = self.work / "device.toml"
        conf.write_text(_toml(cfg))
        with (self.work / "device.log").open("wb") as fh:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "edge", "run", "--config", str(conf)],
                stdout=subprocess.DEVNULL, stderr=fh, cwd=REPO,
            )  # fmt: skip

    def wait_running(self) -> None:
        """Until events flow, the device is online everywhere, then ``before_s`` more."""
        assert self.proc is not None
        ok = _wait(lambda: len(jsonl_ids(self.jsonl)) >= 10 or self.proc.poll() is not None, 90)
        if not ok or self.proc.poll() is not None:
            raise RuntimeError(f"{self.name}: device did not start:\n{self.device_log()}")
        if self.watch.wait_both(lambda s: s == "online", time.monotonic(), 30) is None:
            raise RuntimeError(
                f"{self.name}: subscribers never showed the device online "
                f"(dashboard {self.watch.dash_seen}, monitor {self.watch.mon_seen})"
            )
        time.sleep(self.p.before_s)

    def device_log(self, full: bool = False) -> str:
        """The device's stderr (its end only unless ``full``)."""
        try:
            text = (self.work / "device.log").read_text(errors="replace")
            return text if full else text[-3000:]
        except OSError:
            return ""

    def truth_dead(self, t0: float) -> None:
        """Record when both subscribers stop showing the dead/silent device as online."""
        self.result["truth_s"] = self.watch.wait_both(
            lambda s: s in NOT_ONLINE, t0, self.p.settle_s
        )
        self.result["shown"] = {
            "dashboard": self.watch._now(self.watch.dash_seen),
            "monitor": self.watch._now(self.watch.mon_seen),
        }
        self.result["ha_unavailable_s"] = self.ha_unavailable(t0)

    def truth_back(self, t0: float) -> None:
        """Record reconnect time and when both subscribers show ``online`` again."""
        seen = _wait(lambda: self.oracle.first_status_after(t0, b"online") is not None, 120)
        t = self.oracle.first_status_after(t0, b"online") if seen else None
        self.result["reconnect_s"] = round(t - t0, 2) if t is not None else None
        self.result["recovered_s"] = self.watch.wait_both(
            lambda s: s == "online", t0, self.p.settle_s
        )

    def ha_unavailable(self, t0: float) -> float | None:
        """HA's sensors' unavailability (derived; see the module docstring), from ``t0``."""
        states = [t for t, _, r in self.oracle.on("state") if not r and t <= t0]
        wills = [t for t, p, r in self.oracle.on("status") if p == b"offline" and t >= t0]
        candidates = ([states[-1] + self.p.expiry_s] if states else []) + wills[:1]
        return round(min(candidates) - t0, 2) if candidates else None

    def stop_device(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the device and wait for it to exit; its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def count(self) -> None:
        """Events: produced, delivered, spilled, lost, duplicated (after the oracle drained)."""
        produced = set(jsonl_ids(self.jsonl))
        _wait(lambda: set(self.oracle.event_ids()) >= produced, 20)
        ids = jsonl_ids(self.jsonl)
        counts = Counter(ids)
        received = self.oracle.event_ids()
        delivered = set(received)
        spilled = {i for i, n in counts.items() if n > 1}
        self.result.update(
            produced=len(set(ids)),
            delivered=len(delivered & set(ids)),
            spilled=len(spilled - delivered),
            lost=len(set(ids) - delivered - spilled),
            duplicated=len(received) - len(delivered),
            unexpected=len(delivered - set(ids)),
        )
        order = list(dict.fromkeys(ids))
        lost = set(order) - delivered - spilled
        # SIGKILL destroys the newest, still queued events: are the lost ones exactly those?
        self.result["lost_are_newest"] = set(order[len(order) - len(lost) :]) == lost
        stats = [json.loads(p) for _, p, _ in self.oracle.on("stats")]
        if stats:
            last = stats[-1]
            mq = last.get("sinks", {}).get("mqtt", {})
            src = last.get("source", {}) if isinstance(last.get("source"), dict) else {}
            self.result["last_stats"] = {
                "dropped": mq.get("dropped"),
                "reconnects": mq.get("reconnects"),
                "half_open": mq.get("half_open"),
                "heartbeats": mq.get("heartbeats"),
                "source_reopens": src.get("reopens"),
                "source_reconnects": src.get("reconnects"),
            }

    def close(self) -> dict[str, Any]:
        """Tear everything down; the row's result."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.watch.close()
        self.oracle.close()
        if self.proxy is not None:
            self.proxy.close()
        self.broker.stop()
        return self.result


def run_row(name: str, p: Params, work: Path, video: Path, model: Path) -> dict[str, Any]:
    """Run one row of the matrix; its measurements (see the module docstring)."""
    if name not in ROWS:
        raise ValueError(f"unknown row {name!r}; valid: {list(ROWS)}")
    volatile = name == "broker_restart_volatile"
    row = Row(
        name,
        p,
        work,
        video,
        model,
        persistence=not volatile,
        autosave_s=1 if name == "kill_in_outage" else None,
    )
    try:
        log(f"{name}: start")
        if name == "broker_down_at_start":
            row.broker.stop()
            row.start_device()
            time.sleep(p.fault_s)
            t_back = time.monotonic()
            row.broker.start()
            row.truth_back(t_back)
            time.sleep(p.after_s)
            row.result["exit_code"] = row.stop_device()
            row.count()
            return row.result
        if name == "half_open":
            row.proxy = TcpProxy(row.broker.host, row.broker.port)
            row.start_device(url=row.proxy.url)
        elif name == "camera_loss_in_outage":
            stream = work / "stream.avi"
            stream.write_bytes(video.read_bytes())
            # A live stream at decoding speed: updates by time, not per frame; reopening waits
            # longer than the camera is away.
            row.start_device(
                source={
                    "type": "opencv",
                    "device": f"file://{stream}",
                    "open_timeout_s": p.fault_s * 2,
                },
                tracking={"update_interval_s": 0.2, "update_every_frames": 0},
            )
        else:
            row.start_device()
        row.wait_running()
        t0 = time.monotonic()
        if name == "sigkill":
            row.stop_device(signal.SIGKILL)
            row.truth_dead(t0)
        elif name == "sigstop":
            assert row.proc is not None
            row.proc.send_signal(signal.SIGSTOP)
            row.truth_dead(t0)
            time.sleep(max(0.0, p.fault_s - (time.monotonic() - t0)))
            t_back = time.monotonic()
            row.proc.send_signal(signal.SIGCONT)
            row.truth_back(t_back)
        elif name == "kill_in_outage":
            time.sleep(1.5)  # one autosave with the retained 'online' in it
            row.broker.kill()  # a crash: no will, nothing saved after the last autosave
            t0 = time.monotonic()  # the silence starts here
            time.sleep(min(2.0, p.fault_s / 4))
            row.stop_device(signal.SIGKILL)
            time.sleep(max(0.0, p.fault_s - (time.monotonic() - t0)))
            row.broker.start()
            row.truth_dead(t0)
            retained = Subscriber(row.broker.url, [f"fer/{row.device}/status"])
            time.sleep(1.0)
            row.result["retained_status_after_restart"] = [
                p.decode() for t, p, r in retained.messages if r
            ]
            retained.close()
            # systemd restarts the killed device: it re-sends what it had spooled.
            t_back = time.monotonic()
            row.start_device()
            row.truth_back(t_back)
        elif name in ("broker_restart", "broker_restart_volatile"):
            row.broker.stop()
            time.sleep(p.fault_s)
            t_back = time.monotonic()
            row.broker.start()
            row.truth_back(t_back)
        elif name == "half_open":
            assert row.proxy is not None
            row.proxy.forward_up = row.proxy.forward_down = False
            closes = len(row.proxy.client_closes)
            row.truth_dead(t0)
            _wait(lambda: len(row.proxy.client_closes) > closes, p.fault_s)  # type: ignore[union-attr]
            after = row.proxy.client_closes[closes:]
            row.result["detect_s"] = round(after[0] - t0, 2) if after else None
            time.sleep(max(0.0, p.fault_s - (time.monotonic() - t0)))
            t_back = time.monotonic()
            row.proxy.forward_up = row.proxy.forward_down = True
            row.truth_back(t_back)
        elif name == "camera_loss_in_outage":
            row.broker.stop()
            stream, away = work / "stream.avi", work / "away.avi"
            time.sleep(p.fault_s / 4)
            stream.rename(away)  # the camera is gone for half the outage
            time.sleep(p.fault_s / 2)
            away.rename(stream)
            time.sleep(p.fault_s / 4)
            t_back = time.monotonic()
            row.broker.start()
            row.truth_back(t_back)
            # The camera really was away: the device failed to open it meanwhile.
            row.result["camera_open_failures"] = row.device_log(full=True).count("cannot be opened")
        if name != "sigkill":
            time.sleep(p.after_s)
            row.result["exit_code"] = row.stop_device()
        row.count()
        return row.result
    finally:
        result = row.close()
        result["params"] = asdict(p)
        if result.get("exit_code") not in (None, 0):
            result["device_log_tail"] = row.device_log()
        log(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'params'})}")


def check_row(r: dict[str, Any], p: Params) -> list[str]:
    """The targets a row missed (empty: every target met)."""
    bad = []
    if r.get("lost", 1) != 0:
        bad.append(f"lost {r.get('lost')} events")
    if r.get("unexpected"):
        bad.append(f"{r['unexpected']} unexpected event ids")
    if "truth_s" in r and (r["truth_s"] is None or r["truth_s"] > min(60.0, p.expiry_s + 5)):
        bad.append(f"truth shown after {r['truth_s']} s")
    if "recovered_s" in r and r["recovered_s"] is None:
        bad.append("subscribers never showed the device online again")
    if r["row"] == "half_open" and (
        r.get("detect_s") is None or r["detect_s"] > 1.5 * p.keepalive_s
    ):
        bad.append(f"half-open link detected after {r.get('detect_s')} s")
    if r.get("exit_code") not in (None, 0):
        bad.append(f"device exit code {r['exit_code']}")
    if r["row"] == "kill_in_outage" and "online" in r.get("retained_status_after_restart", []):
        bad.append("the dead device's retained 'online' survived the broker crash")
    return bad
