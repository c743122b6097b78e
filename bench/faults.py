"""Long fault, load and soak runs of the edge service (run by hand; results in docs/RELIABILITY.md).

Five modes, each writing ``<out>/faults-<mode>.json`` (and the soak a CSV and a PNG)::

    python bench/faults.py outage   --outage-s 30          # real pipeline, broker down 30 s
    python bench/faults.py overflow --queue-size 5         # same with a tiny queue: counted drops
    python bench/faults.py load     --devices 50 --rate 20 --seconds 60
    python bench/faults.py soak     --minutes 30 --png docs/img/soak.png
    python bench/faults.py matrix   [--rows sigkill half_open ...]   # the fault matrix

* **matrix**: one row per fault (device SIGKILL/SIGSTOP, device killed during a broker crash,
  broker restart with/without persistence, broker down at device start, a half-open link, camera
  loss during an outage) with the real device, broker, dashboard and monitor; events lost, time
  to reconnect and time until the subscribers show the truth. See ``bench/fault_matrix.py``.

* **outage / overflow**: ``fer-edge run`` (a subprocess, exactly as on a device) on the bundled
  sample video replayed in real time and looped, publishing an ``update`` event per face per frame
  to a real mosquitto with persistence, plus a JSONL sink (the oracle: every event the device
  produced). A subscriber with a persistent session (fixed client id, clean_session false, QoS 1)
  collects the events; the broker is stopped for ``--outage-s`` seconds and started again on the
  same port; then the device gets SIGTERM. Reported: produced (unique ids in the JSONL file),
  delivered (unique ids received), duplicated (received more than once), spilled (written to the
  JSONL file again at shutdown because undelivered), dropped (the device's own ``dropped`` stat)
  and missing (produced, never delivered, not spilled): missing must equal dropped.
* **load**: ``--devices`` simulated devices (threads in ``--procs`` processes, each its own client
  id and :class:`~edge.publish.mqtt.MqttSink`) publish events at ``--rate``/s for ``--seconds``
  into one broker; one subscriber in this process. Reported: sent, received, lost, duplicates,
  end-to-end latency p50/p95/max from the event's ``ts`` to receipt (same host clock, ms
  resolution).
* **soak**: ``fer-edge run`` at full speed on the looping sample, MQTT + JSONL sinks, for
  ``--minutes``; RSS, open fds and threads of the process are sampled every ``--interval`` s from
  ``/proc`` (CSV as it goes, PNG at the end).

The broker is started from ``edge/testing/broker.py`` (needs ``mosquitto``; ``openssl`` is not needed).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge import atomic  # noqa: E402
from edge.config import default_model_path, default_sample_path  # noqa: E402
from edge.events import Event, ModelRef  # noqa: E402
from edge.testing.broker import Mosquitto, Subscriber  # noqa: E402


def log(msg: str) -> None:
    """Progress line on stderr with a wall-clock stamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def write_json(out: Path, name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` to ``out/name`` atomically and say where."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    atomic.write_json(path, result, sort_keys=True)
    log(f"wrote {path}")
    return path


def machine() -> dict[str, Any]:
    """Host facts that matter for the numbers (load average: other work on the machine)."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "when_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _toml(d: dict[str, Any], prefix: str = "") -> str:
    """A tiny TOML writer for the flat configs used here (tables and [[sinks]])."""
    lines: list[str] = []
    tables: list[str] = []
    for k, v in d.items():
        if isinstance(v, dict):
            tables.append(f"\n[{prefix}{k}]\n" + _toml(v))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                tables.append(f"\n[[{prefix}{k}]]\n" + _toml(item))
        else:
            lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n" + "".join(tables)


def start_device(cfg: dict[str, Any], workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Start ``python -m edge run --config`` with ``cfg``; stderr goes to ``workdir/device.log``."""
    conf = workdir / "device.toml"
    conf.write_text(_toml(cfg))
    conf.chmod(0o600)
    errlog = workdir / "device.log"
    with errlog.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=fh,
            cwd=REPO,
        )
    return proc, errlog


def jsonl_ids(path: Path) -> list[str]:
    """Event ids in a JSONL file, in file order (a torn last line is ignored)."""
    ids = []
    if not path.exists():
        return ids
    for line in path.read_text().splitlines():
        try:
            ids.append(json.loads(line)["event_id"])
        except (ValueError, KeyError):
            continue
    return ids


# ------------------------------------------------------------------------------ outage/overflow
def run_outage(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    """Broker outage with the real pipeline; see the module docstring."""
    host = machine()
    work = Path(tempfile.mkdtemp(prefix=f"fer-faults-{mode}-"))
    broker = Mosquitto(work / "broker", persistence=True)
    broker.start()
    dev = f"faults-{mode}"
    topic = f"fer/{dev}/events"
    sub = Subscriber(
        broker.url, [topic, f"fer/{dev}/stats"], client_id=f"oracle-{mode}", clean=False
    )
    # paho's default reconnect backoff grows to 2 minutes; the oracle must come back promptly.
    sub.client.reconnect_delay_set(0.5, 2)
    jsonl = work / "events.jsonl"
    cfg = {
        "device_id": dev,
        "log_level": "INFO",
        "stats_interval_s": 2.0,
        "shutdown_timeout_s": args.shutdown_timeout_s,
        "model": {"path": str(args.model)},
        "source": {"type": "file", "path": str(args.video), "realtime": True, "loop": True},
        # One 'update' per face per frame: a steady stream of events to count.
        "tracking": {"update_interval_s": 0, "update_every_frames": 1},
        "sinks": [
            {
                "type": "mqtt",
                "url": broker.url,
                "client_id": f"device-{mode}",
                "queue_size": args.queue_size,
                "reconnect_min_s": 0.5,
                "reconnect_max_s": 2.0,
                "keepalive_s": 10,
                "homeassistant": False,
            },
            {"type": "jsonl", "path": str(jsonl)},
        ],
    }
    proc, errlog = start_device(cfg, work)
    t0 = time.monotonic()
    timeline: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 60
        while not jsonl_ids(jsonl):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"device produced no events:\n{errlog.read_text()}")
            time.sleep(0.2)
        log(f"{mode}: device is producing events; warm-up {args.before_s:g} s")
        time.sleep(args.before_s)
        before = len(set(jsonl_ids(jsonl)))
        timeline["broker_stop_s"] = round(time.monotonic() - t0, 2)
        broker.stop()
        log(f"{mode}: broker stopped ({before} events so far); outage {args.outage_s:g} s")
        end = time.monotonic() + args.outage_s
        while time.monotonic() < end:
            time.sleep(min(5.0, max(0.0, end - time.monotonic())))
            log(f"{mode}:   outage, {len(set(jsonl_ids(jsonl)))} events produced")
        broker.start()
        timeline["broker_start_s"] = round(time.monotonic() - t0, 2)
        log(f"{mode}: broker started again; running {args.after_s:g} s more")
        time.sleep(args.after_s)
        timeline["sigterm_s"] = round(time.monotonic() - t0, 2)
        proc.send_signal(signal.SIGTERM)
        t_term = time.monotonic()
        rc = proc.wait(60)
        shutdown_s = time.monotonic() - t_term
        log(f"{mode}: device exited with {rc} after {shutdown_s:.2f} s")
        ids = jsonl_ids(jsonl)
        produced = set(ids)
        # Wait for the oracle to drain what the broker kept for it.
        sub.wait_for(
            lambda s: {json.loads(p)["event_id"] for p in s.on(topic)} >= produced, timeout=20
        )
        received = [json.loads(p)["event_id"] for p in sub.on(topic)]
        stats = [json.loads(p) for p in sub.on(f"fer/{dev}/stats")]
    finally:
        sub.close()
        if proc.poll() is None:
            proc.kill()
        broker.stop()
    counts = Counter(ids)
    delivered = set(received)
    spilled = {i for i, n in counts.items() if n > 1}
    missing = produced - delivered
    missing_not_spilled = missing - spilled
    last = stats[-1] if stats else {}
    mqtt_stats = last.get("sinks", {}).get("mqtt", {})
    result = {
        "mode": mode,
        "machine": host,
        "params": {
            "outage_s": args.outage_s,
            "before_s": args.before_s,
            "after_s": args.after_s,
            "queue_size": args.queue_size,
            "shutdown_timeout_s": args.shutdown_timeout_s,
            "video": str(args.video),
            "model": str(args.model),
        },
        "timeline_s": timeline,
        "exit_code": rc,
        "shutdown_s": round(shutdown_s, 3),
        "produced": len(produced),
        "delivered": len(delivered),
        "received_messages": len(received),
        "duplicated": len(received) - len(delivered),
        "spilled": len(spilled),
        "missing": len(missing),
        "missing_not_spilled": len(missing_not_spilled),
        "dropped_stat": mqtt_stats.get("dropped"),
        "published_stat": mqtt_stats.get("published"),
        "reconnects_stat": mqtt_stats.get("reconnects"),
        "last_stats_uptime_s": last.get("uptime_s"),
        "unexpected_ids": len(delivered - produced),
    }
    ok = result["unexpected_ids"] == 0 and result["exit_code"] == 0
    if mode == "outage":
        ok = ok and result["missing_not_spilled"] == 0
    result["dropped_equals_missing"] = result["dropped_stat"] == result["missing_not_spilled"]
    result["ok"] = bool(ok and result["dropped_equals_missing"])
    for k in ("produced", "delivered", "duplicated", "spilled", "missing_not_spilled"):
        log(f"{mode}: {k} = {result[k]}")
    log(f"{mode}: dropped (device stat) = {result['dropped_stat']}; ok = {result['ok']}")
    return result


# ------------------------------------------------------------------------------ load
def _load_worker(
    url: str, first: int, count: int, rate: float, seconds: float, q: Any
) -> None:  # pragma: no cover - runs in a child process
    """Run ``count`` simulated devices (threads) and put their counters on ``q``."""
    from edge.publish.config import MqttSinkConfig
    from edge.publish.mqtt import MqttSink

    model = ModelRef("load", "0" * 64)
    scores = {"angry": 0.1, "happy": 0.6, "neutral": 0.3}
    sinks = []
    for i in range(first, first + count):
        cfg = MqttSinkConfig(
            type="mqtt",
            url=url,
            client_id=f"load-{i:03d}",
            homeassistant=False,
            reconnect_min_s=0.5,
            reconnect_max_s=2.0,
        )
        sinks.append(MqttSink(cfg, f"load-{i:03d}"))
    for s in sinks:
        s.open()
    for s in sinks:
        s.wait_connected(30)
    start = time.monotonic() + 0.5
    sent = [0] * count

    def device(k: int) -> None:
        sink = sinks[k]
        n = int(rate * seconds)
        for j in range(n):
            due = start + j / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ev = Event.create(
                device_id=sink.device_id,
                frame=j,
                track_id=0,
                type="update",
                bbox=(1, 2, 3, 4),
                scores=scores,
                model=model,
            )
            sink.publish_event(ev)
            sent[k] += 1

    threads = [threading.Thread(target=device, args=(k,), daemon=True) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = []
    for s in sinks:
        s.close(timeout=10)
        st = s.stats()
        stats.append({"published": st["published"], "dropped": st["dropped"], "undelivered": 0})
        stats[-1]["undelivered"] = len(s.drain_undelivered())
    q.put({"sent": sum(sent), "devices": stats})


def run_load(args: argparse.Namespace) -> dict[str, Any]:
    """Many devices, one broker, one subscriber; see the module docstring."""
    host = machine()
    work = Path(tempfile.mkdtemp(prefix="fer-faults-load-"))
    broker = Mosquitto(work / "broker")
    broker.start()
    received: list[tuple[float, bytes]] = []
    lock = threading.Lock()
    sub = Subscriber(broker.url, ["fer/+/events"], client_id="load-oracle", clean=True)

    def on_message(c: Any, u: Any, msg: Any) -> None:
        now = time.time()
        with lock:
            received.append((now, bytes(msg.payload)))

    sub.client.on_message = on_message
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    per = [args.devices // args.procs + (1 if i < args.devices % args.procs else 0)
           for i in range(args.procs)]  # fmt: skip
    procs = []
    first = 0
    t0 = time.monotonic()
    for n in per:
        p = ctx.Process(
            target=_load_worker, args=(broker.url, first, n, args.rate, args.seconds, q)
        )
        p.start()
        procs.append(p)
        first += n
    expected = int(args.devices * int(args.rate * args.seconds))
    log(f"load: {args.devices} devices in {args.procs} processes, {expected} events expected")
    results = []
    try:
        while len(results) < len(procs):
            try:
                results.append(q.get(timeout=5))
            except Exception:  # noqa: BLE001 - queue.Empty: report progress and keep waiting
                with lock:
                    n = len(received)
                log(f"load:   {n} received after {time.monotonic() - t0:.0f} s")
                if time.monotonic() - t0 > args.seconds + 300:
                    raise SystemExit("load: workers did not finish") from None
        for p in procs:
            p.join(30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with lock:
                if len(received) >= expected:
                    break
            time.sleep(0.2)
    finally:
        sub.close()
        broker.stop()
    lat_ms: list[float] = []
    ids: list[str] = []
    for t, payload in received:
        d = json.loads(payload)
        ids.append(d["event_id"])
        ts = datetime.fromisoformat(d["ts"].replace("Z", "+00:00")).timestamp()
        lat_ms.append((t - ts) * 1e3)
    import numpy as np

    lat = np.asarray(lat_ms) if lat_ms else np.zeros(1)
    sent = sum(r["sent"] for r in results)
    devs = [d for r in results for d in r["devices"]]
    unique = len(set(ids))
    result = {
        "mode": "load",
        "machine": host,
        "params": {
            "devices": args.devices,
            "procs": args.procs,
            "rate_per_device": args.rate,
            "seconds": args.seconds,
        },
        "sent": sent,
        "received_messages": len(ids),
        "received_unique": unique,
        "lost": sent - unique,
        "duplicates": len(ids) - unique,
        "dropped_stat_total": sum(d["dropped"] for d in devs),
        "published_stat_total": sum(d["published"] for d in devs),
        "undelivered_at_close": sum(d["undelivered"] for d in devs),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1),
            "p95": round(float(np.percentile(lat, 95)), 1),
            "p99": round(float(np.percentile(lat, 99)), 1),
            "max": round(float(lat.max()), 1),
            "note": "event ts (ms resolution) to receipt, same host clock",
        },
    }
    result["ok"] = result["lost"] == 0 and sent == expected
    log(
        f"load: sent {sent}, received {unique} unique ({result['duplicates']} duplicates), "
        f"lost {result['lost']}; latency p50 {result['latency_ms']['p50']} ms, "
        f"p95 {result['latency_ms']['p95']} ms"
    )
    return result


# ------------------------------------------------------------------------------ soak
def _proc_sample(pid: int) -> tuple[float, int, int, float]:
    """(RSS MB, open fds, threads, CPU seconds) of ``pid`` from /proc."""
    rss_kb = 0
    threads = 0
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/stat") as fh:
        parts = fh.read().rsplit(")", 1)[1].split()
    cpu = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
    return rss_kb / 1024.0, fds, threads, cpu


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline at full speed for ``--minutes``; see the module docstring."""
    host = machine()
    work = Path(tempfile.mkdtemp(prefix="fer-faults-soak-"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    broker = None if args.no_broker else Mosquitto(work / "broker")
    sinks: list[dict[str, Any]] = [{"type": "jsonl", "path": str(work / "events.jsonl")}]
    last_stats: dict[str, Any] = {}
    sub = None
    if broker is not None:
        broker.start()
        sinks.insert(0, {"type": "mqtt", "url": broker.url, "client_id": "soak-device"})
        sub = Subscriber(broker.url, ["fer/soak/stats"], client_id="soak-oracle")

        def on_stats(c: Any, u: Any, msg: Any) -> None:
            last_stats.update(json.loads(msg.payload))

        sub.client.on_message = on_stats
    cfg = {
        "device_id": "soak",
        "log_level": "WARNING",
        "stats_interval_s": float(args.interval),
        "model": {"path": str(args.model)},
        "source": {"type": "file", "path": str(args.video), "loop": True},
        "sinks": sinks,
    }
    proc, errlog = start_device(cfg, work)
    csv_path = out / "faults-soak.csv"
    rows: list[dict[str, float]] = []
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    log(f"soak: pid {proc.pid}, {args.minutes:g} min, sampling every {args.interval:g} s")
    try:
        with csv_path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t_s", "rss_mb", "fds", "threads", "cpu_s", "frames", "fps", "queue"])
            while time.monotonic() < end and proc.poll() is None:
                time.sleep(args.interval)
                try:
                    rss, fds, threads, cpu = _proc_sample(proc.pid)
                except (OSError, ValueError, IndexError):
                    break
                row = {
                    "t_s": round(time.monotonic() - t0, 1),
                    "rss_mb": round(rss, 2),
                    "fds": fds,
                    "threads": threads,
                    "cpu_s": round(cpu, 1),
                    "frames": int(last_stats.get("frames", 0)),
                    "fps": float(last_stats.get("fps", 0.0)),
                    "queue": int(last_stats.get("queue_depth", 0) or 0),
                }
                rows.append(row)
                w.writerow(row.values())
                fh.flush()
                if len(rows) % max(1, int(60 / args.interval)) == 0 or len(rows) == 1:
                    log(
                        f"soak: t={row['t_s']:.0f}s rss={rss:.1f}MB fds={fds} threads={threads} "
                        f"frames={row['frames']} fps={row['fps']:.1f}"
                    )
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if sub is not None:
            sub.close()
        if broker is not None:
            broker.stop()
    warm = [r for r in rows if r["t_s"] >= args.warmup_s] or rows
    rss = [r["rss_mb"] for r in warm]
    import numpy as np

    tt = np.array([r["t_s"] for r in warm])
    slope = float(np.polyfit(tt, rss, 1)[0]) * 3600 if len(warm) > 2 else 0.0
    result = {
        "mode": "soak",
        "machine": host,
        "params": {
            "minutes": args.minutes,
            "interval_s": args.interval,
            "warmup_s": args.warmup_s,
            "video": str(args.video),
            "model": str(args.model),
            "mqtt": broker is not None,
        },
        "duration_s": rows[-1]["t_s"] if rows else 0,
        "samples": len(rows),
        "alive_at_end": alive,
        "exit_code": rc,
        "frames": rows[-1]["frames"] if rows else 0,
        "fps_mean": round(float(np.mean([r["fps"] for r in warm if r["fps"] > 0] or [0])), 2),
        "rss_mb": {
            "first": rows[0]["rss_mb"] if rows else None,
            "after_warmup": rss[0] if rss else None,
            "end": rss[-1] if rss else None,
            "max": max(rss) if rss else None,
            "growth_after_warmup": round(rss[-1] - rss[0], 2) if rss else None,
            "slope_mb_per_hour": round(slope, 3),
        },
        "fds": {"min": min(r["fds"] for r in warm), "max": max(r["fds"] for r in warm)},
        "threads": {
            "min": min(r["threads"] for r in warm),
            "max": max(r["threads"] for r in warm),
        },
        "csv": str(csv_path),
        "device_log_tail": errlog.read_text()[-2000:],
    }
    result["ok"] = bool(
        alive
        and rc == 0
        and result["rss_mb"]["growth_after_warmup"] is not None
        and result["rss_mb"]["growth_after_warmup"] <= 5.0
        and result["fds"]["max"] - result["fds"]["min"] <= 2
        and result["threads"]["max"] - result["threads"]["min"] <= 1
    )
    if args.png:
        plot_soak(rows, Path(args.png), args.warmup_s)
        result["png"] = str(args.png)
    log(
        f"soak: rss {result['rss_mb']}, fds {result['fds']}, threads {result['threads']}, "
        f"ok = {result['ok']}"
    )
    return result


def plot_soak(rows: list[dict[str, float]], png: Path, warmup_s: float) -> None:
    """RSS, fds and threads over time (three stacked panels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    for ax, key, label in zip(
        axes, ("rss_mb", "fds", "threads"), ("RSS (MB)", "open fds", "threads"), strict=True
    ):
        ax.plot(t, [r[key] for r in rows], lw=1.2)
        ax.set_ylabel(label)
        ax.axvline(warmup_s / 60, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3)
    axes[0].set_title("fer-edge soak: full speed on the looping sample video (MQTT + JSONL)")
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, png)
    log(f"wrote {png}")


# ------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    """Arguments of every mode."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default=str(REPO / "bench" / "results"), help="result folder")
    p.add_argument("--model", type=Path, default=default_model_path(), help="int8 .tflite model")
    p.add_argument("--video", type=Path, default=default_sample_path(), help="video to replay")
    sub = p.add_subparsers(dest="mode", required=True)
    for name, queue, outage in (("outage", 10000, 30.0), ("overflow", 5, 10.0)):
        o = sub.add_parser(name, help=f"broker outage with the real pipeline (queue {queue})")
        o.add_argument("--outage-s", type=float, default=outage, help="seconds the broker is down")
        o.add_argument("--before-s", type=float, default=5.0, help="seconds before the outage")
        o.add_argument("--after-s", type=float, default=10.0, help="seconds after the outage")
        o.add_argument("--queue-size", type=int, default=queue, help="MQTT sink queue_size")
        o.add_argument("--shutdown-timeout-s", type=float, default=5.0)
    ld = sub.add_parser("load", help="many simulated devices into one broker")
    ld.add_argument("--devices", type=int, default=50)
    ld.add_argument("--procs", type=int, default=2, help="processes the devices are spread over")
    ld.add_argument("--rate", type=float, default=20.0, help="events per second per device")
    ld.add_argument("--seconds", type=float, default=60.0)
    sk = sub.add_parser("soak", help="full-speed pipeline, RSS/fds/threads sampled")
    sk.add_argument("--minutes", type=float, default=30.0)
    sk.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    sk.add_argument("--warmup-s", type=float, default=60.0, help="growth is measured after this")
    sk.add_argument("--png", help="write the curve here (e.g. docs/img/soak.png)")
    sk.add_argument("--no-broker", action="store_true", help="JSONL sink only")
    mx = sub.add_parser("matrix", help="the fault matrix (bench/fault_matrix.py)")
    mx.add_argument("--rows", nargs="+", help="rows to run (default: all)")
    mx.add_argument("--expiry-s", type=int, default=45, help="status_expiry_s = --stale-after-s")
    mx.add_argument("--keepalive-s", type=int, default=30, help="the device's keepalive_s")
    mx.add_argument("--fault-s", type=float, default=60.0, help="how long each fault lasts")
    mx.add_argument("--after-s", type=float, default=10.0, help="running after the fault")
    return p


def run_matrix(args: argparse.Namespace) -> dict[str, Any]:
    """Every requested row of the fault matrix; see bench/fault_matrix.py."""
    from fault_matrix import ROWS, Params, check_row, run_row

    host = machine()
    p = Params(
        expiry_s=args.expiry_s,
        keepalive_s=args.keepalive_s,
        fault_s=args.fault_s,
        after_s=args.after_s,
    )
    work = Path(tempfile.mkdtemp(prefix="fer-faults-matrix-"))
    rows = []
    for name in args.rows or ROWS:
        r = run_row(name, p, work / name, args.video, args.model)
        r["missed"] = check_row(r, p)
        rows.append(r)
    return {
        "mode": "matrix",
        "machine": host,
        "params": {"video": str(args.video), "model": str(args.model), **vars(p)},
        "rows": rows,
        "ok": all(not r["missed"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    """Run one mode, write its JSON result; exit 0 if its checks passed, 1 if not."""
    args = build_parser().parse_args(argv)
    if args.mode in ("outage", "overflow"):
        result = run_outage(args, args.mode)
    elif args.mode == "load":
        result = run_load(args)
    elif args.mode == "matrix":
        result = run_matrix(args)
    else:
        result = run_soak(args)
    result["command"] = " ".join(["python", "bench/faults.py", *(argv or sys.argv[1:])])
    result["loadavg_end"] = list(os.getloadavg())
    write_json(Path(args.out), f"faults-{args.mode}.json", result)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
