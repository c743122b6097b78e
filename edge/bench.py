"""``fer-edge bench``: what each pipeline stage costs on this machine, measured on a real run.

The benchmark runs the ordinary :class:`~edge.app.Pipeline` (same source, detector schedule,
classifier, tracker and sinks as ``fer-edge run``) for ``N`` frames of a file source read frame
by frame (nothing dropped), and collects, per frame, the wall time and the process CPU time
of each stage (:data:`edge.app.STAGES`): ``capture`` (read/decode + validation +
colour conversion), ``detect``, ``crop``, ``infer``, ``track``, ``publish``. It reports p50/p95
and mean of each, end-to-end frames per second, process CPU per frame (all threads), resident
memory (peak and steady state) and the start-up time from process start to the first processed
frame and to the first published event.

Events go to a JSONL file in a temporary folder (deleted afterwards) unless the config names
sinks, so the publish stage does real serialization and I/O without flooding stdout.
"""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.app import STAGES, FrameRecord, Pipeline
from edge.config import EdgeConfig
from edge.detect import FaceFinder
from edge.errors import ConfigError
from edge.publish.base import Sink

log = logging.getLogger(__name__)

#: Stages reported per frame (``total`` is their sum).
BENCH_STAGES: tuple[str, ...] = tuple(s for s in STAGES if s != "total")
#: Top-level keys of the JSON report (the unit test checks them).
REPORT_KEYS: tuple[str, ...] = (
    "version",
    "host",
    "source",
    "model",
    "config",
    "frames",
    "stages",
    "per_frame_cpu_ms",
    "fps",
    "rss_mb",
    "startup_s",
    "detector",
    "faces",
)

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_RSS_EVERY = 10  # frames between RSS samples (reading /proc costs ~20 us)


def process_start_time() -> float | None:
    """When this process started, on the ``CLOCK_BOOTTIME`` clock (Linux), else ``None``.

    Start-up is measured from here, so interpreter start and imports are included, as a
    systemd restart would see them.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            stat = fh.read()
        # Field 22 (starttime, clock ticks since boot); the command name may contain spaces,
        # so count from the closing parenthesis.
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _boottime() -> float:
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


def current_rss_mb() -> float | None:
    """Resident set size now, in MiB (Linux ``/proc/self/statm``), else ``None``."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


@dataclass
class _Collector:
    """Receives :class:`FrameRecord` s from the pipeline's frame loop."""

    t_origin: float
    wall: list[tuple[float, ...]] = field(default_factory=list)
    cpu: list[tuple[float, ...]] = field(default_factory=list)
    boxes: list[tuple[int, list[list[float]]]] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    first_frame_s: float | None = None
    first_event_s: float | None = None
    loop_t0: float = 0.0
    loop_t1: float = 0.0
    keep_boxes: bool = False

    def __call__(self, rec: FrameRecord) -> None:
        now = _boottime()
        if self.first_frame_s is None:
            self.first_frame_s = now - self.t_origin
            self.loop_t0 = time.perf_counter() - sum(rec.wall_s)
        if rec.events and self.first_event_s is None:
            self.first_event_s = now - self.t_origin
        self.wall.append(rec.wall_s)
        self.cpu.append(rec.cpu_s)
        if self.keep_boxes:
            self.boxes.append((rec.index, [[round(v, 1) for v in b] for b in rec.boxes]))
        if len(self.wall) % _RSS_EVERY == 0:
            rss = current_rss_mb()
            if rss is not None:
                self.rss.append(rss)
        self.loop_t1 = time.perf_counter()


def _dist(values_s: np.ndarray) -> dict[str, float]:
    ms = values_s * 1e3
    p50, p95 = np.percentile(ms, [50, 95])
    return {
        "p50": round(float(p50), 4),
        "p95": round(float(p95), 4),
        "mean": round(float(ms.mean()), 4),
    }


def bench_config(cfg: EdgeConfig, frames: int, events_dir: Path) -> EdgeConfig:
    """The config the benchmark runs: ``cfg`` with ``max_frames``, a looping file source read
    frame by frame, and a JSONL sink in ``events_dir`` when ``cfg`` names no sinks.

    Raises:
        ConfigError: if the source is not a file (a live camera drops frames and cannot be
            replayed; benchmark a recording of it instead).
    """
    if cfg.source.type != "file":
        raise ConfigError(
            f"fer-edge bench needs a file source (a video or image folder), not "
            f"{cfg.source.type!r}: record a clip from the camera and benchmark that"
        )
    update: dict[str, Any] = {
        "max_frames": frames,
        # Every frame, synchronously: nothing dropped, so N frames really are N frames.
        "source": cfg.source.model_copy(update={"realtime": False, "loop": True}),
        "stats_interval_s": 1e9,  # stats snapshots are not part of the per-frame cost
    }
    if not cfg.sinks:
        from edge.publish.config import JsonlSinkConfig

        update["sinks"] = [JsonlSinkConfig(type="jsonl", path=events_dir / "events.jsonl")]
    return cfg.model_copy(update=update)


def bench_sinks(cfg: EdgeConfig, user_sinks: bool) -> list[Sink]:
    """The sinks of a benchmark run: the configured ones (plus stdout where ``fer-edge run``
    would add it) when the user named sinks, otherwise only the JSONL file of
    :func:`bench_config`, so events do not flood the report on stdout."""
    from edge.publish.registry import create_sinks

    chosen = cfg.effective_sinks() if user_sinks else list(cfg.sinks)
    return create_sinks(chosen, device_id=cfg.device_id)


def run_bench(
    cfg: EdgeConfig, frames: int, *, keep_boxes: bool = False
) -> tuple[dict[str, Any], list[tuple[int, list[list[float]]]]]:
    """Run the pipeline for ``frames`` frames and measure it.

    Args:
        cfg: Validated configuration (its source must be a file).
        frames: Frames to process (the file is replayed from the start if it is shorter).
        keep_boxes: Also return each frame's face boxes (for detection recall).

    Returns:
        ``(report, boxes)``: the report dict (keys :data:`REPORT_KEYS`) and, if requested,
        ``[(frame_index, [[x, y, w, h], ...]), ...]``.

    Raises:
        FerEdgeError: as :meth:`Pipeline.run` does, or ConfigError for a non-file source.
    """
    if frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {frames}")
    origin = process_start_time()
    origin_known = origin is not None
    t_origin = origin if origin is not None else _boottime()
    with tempfile.TemporaryDirectory(prefix="fer-edge-bench-") as tmp:
        run_cfg = bench_config(cfg, frames, Path(tmp))
        col = _Collector(t_origin=t_origin, keep_boxes=keep_boxes)
        sinks = bench_sinks(run_cfg, user_sinks=bool(cfg.sinks))
        pipeline = Pipeline(run_cfg, sinks=sinks, frame_hook=col)
        cpu0 = time.process_time()
        summary = pipeline.run()
        cpu_total = time.process_time() - cpu0
    n = len(col.wall)
    if n == 0:
        raise ConfigError(f"source {cfg.source.resolved_path()} delivered no usable frame")  # type: ignore[union-attr]
    wall = np.asarray(col.wall)
    cpu = np.asarray(col.cpu)
    loop_s = max(1e-9, col.loop_t1 - col.loop_t0)
    model_paths = run_cfg.model.resolved_paths()
    report: dict[str, Any] = {
        "version": __version__,
        "host": _host(),
        "source": str(run_cfg.source.resolved_path()),  # type: ignore[union-attr]
        # Every averaged model, first one first (the default runs a pair), and its views.
        "model": {
            "path": str(model_paths[0]),
            "ensemble": [str(p) for p in model_paths],
            "tta": run_cfg.model.tta,
            "name": pipeline.model_name,
        },
        "config": {
            "detector": run_cfg.detector.model_dump(mode="json"),
            "model_threads": run_cfg.model.num_threads,
        },
        "frames": {"processed": n, "corrupt": summary.corrupt, "requested": frames},
        "stages": _stages(wall, cpu),
        "per_frame_cpu_ms": _per_frame_cpu(cpu, cpu_total),
        "fps": round(n / loop_s, 2),
        "rss_mb": _rss_mb(col.rss),
        "startup_s": _startup(col, origin_known),
        "detector": _detector_counts(run_cfg, pipeline.finder),
        "faces": {"total": summary.faces, "events": dict(summary.events)},
    }
    return report, col.boxes


def _host() -> dict[str, Any]:
    """The machine the numbers belong to (the CPUs this process may run on)."""
    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }


def _stages(wall: np.ndarray, cpu: np.ndarray) -> dict[str, Any]:
    """Wall and CPU distributions of each stage and of the whole frame, in ms."""
    stages: dict[str, Any] = {}
    for i, name in enumerate(BENCH_STAGES):
        stages[name] = {"wall_ms": _dist(wall[:, i]), "cpu_ms": _dist(cpu[:, i])}
    stages["total"] = {"wall_ms": _dist(wall.sum(axis=1)), "cpu_ms": _dist(cpu.sum(axis=1))}
    return stages


def _per_frame_cpu(cpu: np.ndarray, cpu_total: float) -> dict[str, float]:
    """Mean CPU ms per frame: the frame loop, without capture, and the whole process."""
    n = len(cpu)
    return {
        # The frame loop's own thread: what the pipeline costs per frame.
        "loop": round(float(cpu.sum()) / n * 1e3, 4),
        "loop_without_capture": round(float(cpu[:, 1:].sum()) / n * 1e3, 4),
        # Every thread of the process (sink writer, capture thread) over the whole run,
        # start-up and shutdown included.
        "process": round(cpu_total / n * 1e3, 4),
    }


def _rss_mb(samples: list[float]) -> dict[str, Any]:
    """Peak RSS of the process, and the median of the second half of the run's samples."""
    steady = samples[len(samples) // 2 :] or samples
    return {
        "peak": round(peak_rss_mb(), 1),
        "steady": round(float(np.median(steady)), 1) if steady else None,
    }


def _startup(col: _Collector, origin_known: bool) -> dict[str, Any]:
    """Seconds from the origin (process start if known) to the first frame and event."""
    return {
        "origin": "process start" if origin_known else "bench start",
        "first_frame": None if col.first_frame_s is None else round(col.first_frame_s, 3),
        "first_event": None if col.first_event_s is None else round(col.first_event_s, 3),
    }


def _detector_counts(run_cfg: EdgeConfig, finder: FaceFinder | None) -> dict[str, Any]:
    """What the detector schedule did: full passes, ROI passes, motion-gate counts."""
    return {
        "type": run_cfg.detector.type,
        "motion_gate": run_cfg.detector.motion_gate,
        "full_runs": finder.full_runs if finder else None,
        "roi_runs": finder.roi_runs if finder else None,
        # Motion-gated schedule only (0 otherwise): frames whose moving regions were
        # searched, and full passes triggered by wide motion / by full_every.
        "motion_runs": finder.motion_runs if finder else None,
        "motion_full_runs": finder.motion_full_runs if finder else None,
        "periodic_full_runs": finder.periodic_full_runs if finder else None,
        "motion_skipped": finder.motion_skipped if finder else None,
        "motion_area": round(finder.motion_area, 3) if finder else None,
    }


def format_report(report: dict[str, Any]) -> str:
    """A human-readable table of a report."""
    lines = [
        f"fer-edge bench: {report['frames']['processed']} frames of {report['source']}",
        f"model {report['model']['name']} ({', '.join(report['model']['ensemble'])}; "
        f"tta={report['model']['tta']})",
        "",
        f"{'stage':<10} {'wall p50':>9} {'wall p95':>9} {'cpu p50':>9} {'cpu p95':>9} "
        f"{'cpu mean':>9}  (ms)",
    ]
    for name, st in report["stages"].items():
        w, c = st["wall_ms"], st["cpu_ms"]
        lines.append(
            f"{name:<10} {w['p50']:>9.3f} {w['p95']:>9.3f} {c['p50']:>9.3f} {c['p95']:>9.3f} "
            f"{c['mean']:>9.3f}"
        )
    pf = report["per_frame_cpu_ms"]
    su = report["startup_s"]
    rss = report["rss_mb"]
    det = report["detector"]
    lines += [
        "",
        f"per-frame CPU: {pf['loop']:.3f} ms (frame loop), {pf['loop_without_capture']:.3f} ms "
        f"without capture/decode, {pf['process']:.3f} ms (whole process)",
        f"end-to-end: {report['fps']:.1f} frames/s",
        f"RSS: peak {rss['peak']} MiB, steady {rss['steady']} MiB",
        f"start-up ({su['origin']}): first frame {su['first_frame']} s, first event "
        f"{su['first_event']} s",
        f"detector {det['type']}: {det['full_runs']} full-frame passes, {det['roi_runs']} "
        "frames without one"
        + (
            f" ({det['motion_runs']} searched moving regions; motion gate)"
            if det.get("motion_gate")
            else ""
        ),
    ]
    return "\n".join(lines)
