"""The device pipeline: source -> face detection -> crop -> int8 classifier -> tracker -> sinks.

One thread runs the frame loop; live sources capture in their own thread (newest frame only) and
MQTT publishes from paho's thread, so neither the camera nor the network can stall inference.
Sizes, crop margin and labels come from the model's embedded metadata (its preprocessing
contract), never from literals here.

Lifecycle (what systemd and an operator see):

1. model, detector, sinks and source are set up; any failure is a :class:`FerEdgeError` with a
   message naming the problem (the CLI exits non-zero without a traceback);
2. ``READY=1`` is sent to systemd; the watchdog is pinged from the frame loop only while frames
   flow, so a camera that silently stops gets the service restarted;
3. the loop ends on SIGTERM/SIGINT (:meth:`Pipeline.stop`), at the end of a file source, or
   after ``max_frames``; then capture stops, ``end`` events are published for open tracks, a
   final stats snapshot goes out and the sinks are closed within ``shutdown_timeout_s`` (MQTT
   publishes ``stopped``; events it could not deliver are written to the JSONL sink).
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import cv2
import numpy as np

from edge import __version__, service
from edge.camera import FrameSource, create_source
from edge.classify.base import Classifier
from edge.config import EdgeConfig
from edge.contract import crop_face
from edge.detect import FaceFinder, create_finder
from edge.errors import FerEdgeError, PublishError, SourceError
from edge.events import EVENT_TYPES, Event, ModelRef
from edge.publish.base import Sink
from edge.publish.registry import SinkGroup, create_sinks
from edge.state import FaceState
from edge.track import Tracker

log = logging.getLogger(__name__)

#: Pipeline stages whose latency is tracked.
STAGES: tuple[str, ...] = ("capture", "detect", "crop", "infer", "track", "publish", "total")

_MAX_FACES = 64  # more boxes than this in one frame is a detector gone wild, not a crowd


@dataclass(frozen=True)
class FrameRecord:
    """What one processed frame cost, for :mod:`edge.bench` (passed to ``frame_hook``).

    Attributes:
        index: Frame index.
        wall_s: Wall seconds per stage, in the order of :data:`STAGES` without ``total``.
        cpu_s: Process CPU seconds per stage, same order (all threads, so OpenCV's worker
            threads count where they work; other threads' concurrent work lands in the stage
            that was running).
        boxes: Face boxes detected (and classified) in this frame.
        events: Events published for this frame.
    """

    index: int
    wall_s: tuple[float, ...]
    cpu_s: tuple[float, ...]
    boxes: tuple[tuple[float, float, float, float], ...]
    events: int


class LatencyWindow:
    """Rolling per-stage latencies (ms) with p50/p95 over the last ``size`` frames."""

    def __init__(self, stages: tuple[str, ...] = STAGES, size: int = 1024) -> None:
        self._samples: dict[str, deque[float]] = {s: deque(maxlen=size) for s in stages}

    def add(self, stage: str, ms: float) -> None:
        """Record one sample."""
        self._samples[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p95": ms}}`` for stages with samples."""
        out: dict[str, dict[str, float]] = {}
        for stage, d in self._samples.items():
            if d:
                a = np.fromiter(d, dtype=np.float64, count=len(d))
                p50, p95 = np.percentile(a, [50, 95])
                out[stage] = {"p50": round(float(p50), 3), "p95": round(float(p95), 3)}
        return out


@dataclass
class RunSummary:
    """What a run did (returned by :meth:`Pipeline.run`, logged at the end)."""

    frames: int = 0
    processed: int = 0
    corrupt: int = 0
    faces: int = 0
    dropped: int = 0
    publish_errors: int = 0
    events: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    duration_s: float = 0.0
    stop_reason: str = ""


def frame_problem(image: Any, max_pixels: int) -> str | None:
    """Why a frame cannot be processed, or ``None`` if it is a usable gray/BGR/BGRA image."""
    if not isinstance(image, np.ndarray):
        return f"not an array ({type(image).__name__})"
    if image.dtype != np.uint8:
        return f"dtype {image.dtype} is not uint8"
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        return f"shape {image.shape} is not gray, BGR or BGRA"
    h, w = image.shape[:2]
    if h < 16 or w < 16:
        return f"size {w}x{h} is too small"
    if h * w > max_pixels:
        return f"size {w}x{h} exceeds max_frame_pixels {max_pixels}"
    return None


class Pipeline:
    """The fer-edge frame loop (see module docstring).

    Args:
        cfg: Validated configuration.
        classifier: Use this classifier instead of loading ``cfg.model`` (tests, benchmarks).
        sinks: Use these sinks instead of creating ``cfg.sinks``.
        source: Use this (unopened) source instead of creating ``cfg.source``.
        frame_hook: Called after every processed frame with its :class:`FrameRecord`
            (benchmarks; must be cheap, it runs in the frame loop).
    """

    def __init__(
        self,
        cfg: EdgeConfig,
        *,
        classifier: Classifier | None = None,
        sinks: list[Sink] | None = None,
        source: FrameSource | None = None,
        frame_hook: Callable[[FrameRecord], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self._frame_hook = frame_hook
        #: The detection scheduler of the running pipeline (its full/ROI counters).
        self.finder: FaceFinder | None = None
        #: Architecture name of the loaded model (set by :meth:`run`).
        self.model_name = ""
        self._classifier = classifier
        self._sinks_override = sinks
        self._source_override = source
        self._stop = threading.Event()
        self._stop_reason = ""
        self.summary = RunSummary()
        self.latency = LatencyWindow()
        self._group: SinkGroup | None = None
        self._source: FrameSource | None = None
        self._started = 0.0
        self._faces_now = 0
        self._tracks_now = 0
        self._warned_sinks: set[int] = set()
        #: Current faces, published as ``<prefix>/<device_id>/state`` (Home Assistant reads it).
        self.face_state = FaceState(cfg.device_id)

    # ---------------------------------------------------------------- control
    def stop(self, reason: str = "stop requested") -> None:
        """Ask the loop to finish (thread- and signal-safe); shutdown then runs as usual."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
            if self._source is not None:
                # Abort a camera that is still retrying to open (backoff waits on this).
                self._source.request_stop()

    def install_signal_handlers(self) -> None:
        """Make SIGTERM and SIGINT stop the pipeline cleanly (main thread only)."""

        def handler(signum: int, _frame: FrameType | None) -> None:
            self.stop(f"signal {signal.Signals(signum).name}")

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    # ---------------------------------------------------------------- run
    def run(self) -> RunSummary:
        """Set everything up, process frames until stopped, shut down cleanly.

        Raises:
            FerEdgeError: if the model, detector, a sink or the source cannot be set up, or the
                source fails for good while running (after a clean shutdown of the rest).
        """
        cfg = self.cfg
        self._started = time.monotonic()
        service.status("loading model")
        clf = self._classifier or self._load_classifier()
        meta = clf.metadata
        contract = meta.contract
        if cfg.detector.align != "model":
            # The device's override of the model's own choice (see DetectorCommon.align).
            contract = dataclasses.replace(contract, align=cfg.detector.align)
        labels = clf.labels
        model_ref = ModelRef(name=meta.arch, sha256=clf.sha256)
        self.model_name = meta.arch
        if cfg.detector.num_threads:
            # OpenCV's pool serves detectMultiScale, resize and colour conversion (global).
            cv2.setNumThreads(cfg.detector.num_threads)
        finder = create_finder(cfg.detector)
        self.finder = finder
        t = cfg.tracking
        tracker = Tracker(
            labels,
            iou_threshold=t.iou_threshold,
            max_missed=t.max_missed,
            min_hits=t.min_hits,
            alpha=t.alpha,
            change_frames=t.change_frames,
            update_interval_s=t.update_interval_s,
            update_every_frames=t.update_every_frames,
        )
        sinks = self._sinks_override
        if sinks is None:
            sinks = create_sinks(cfg.effective_sinks(), device_id=cfg.device_id)
        group = SinkGroup(sinks)
        group.set_model_info(meta.arch, labels, clf.sha256)  # Home Assistant enum options
        self._group = group
        failure: FerEdgeError | None = None
        last_frame = 0
        try:
            group.open()
            self._wait_for_brokers(sinks)
            source = self._source_override or create_source(cfg.source)
            self._source = source
            service.status("opening source")
            try:
                source.open()
            except SourceError:
                if not self._stop.is_set():
                    raise
                # Stopped while a camera was still retrying: a clean stop, not a failure.
                self._source = None
                return self.summary
            log.info(
                "running: %s; model %s (%s, %d labels, input %dx%d, sha256 %s)",
                cfg.summary(),
                meta.arch,
                clf.path.name,
                len(labels),
                contract.size,
                contract.size,
                clf.sha256[:12],
            )
            service.ready()
            service.status("running")
            try:
                last_frame = self._loop(source, finder, clf, contract, tracker, model_ref, group)
            except FerEdgeError as e:
                # e.g. a camera that never came back: still shut down cleanly, then report.
                failure = e
                self._stop_reason = f"error: {e}"
        except FerEdgeError as e:
            self._stop_reason = self._stop_reason or f"start-up failed: {e}"
            raise
        finally:
            self._shutdown(tracker, model_ref, group, last_frame)
        if failure is not None:
            raise failure
        return self.summary

    def _load_classifier(self) -> Classifier:
        from edge.classify.deployed import open_configured

        return open_configured(self.cfg.model)

    def _wait_for_brokers(self, sinks: list[Sink]) -> None:
        for s in sinks:
            wait = getattr(s, "wait_connected", None)
            if wait is None:
                continue
            if not wait(self.cfg.broker_wait_s):
                log.warning(
                    "%r: broker not reachable yet; continuing, events are queued and the "
                    "connection is retried in the background",
                    s,
                )

    def _loop(
        self,
        source: FrameSource,
        finder: FaceFinder,
        clf: Classifier,
        contract: Any,
        tracker: Tracker,
        model_ref: ModelRef,
        group: SinkGroup,
    ) -> int:
        cfg = self.cfg
        s = self.summary
        size = contract.size
        crop_box = finder.detector.crop_box  # the box framing the classifier expects
        faces_buf = np.empty((8, size, size), np.uint8)  # grows once if more faces appear
        gray_buf = np.empty((0, 0), np.uint8)  # BGR -> gray target, reused every frame
        boxes: list[tuple[float, float, float, float]] = []
        rows: list[int] = []  # per box: its row of this frame's predictions, -1: reused
        hook = self._frame_hook
        # Process CPU time (all threads: OpenCV's worker pool runs parts of detection), read
        # at the same points as the wall clock; costs ~1 us per read.
        cpu = time.process_time
        next_stats = time.monotonic() + cfg.stats_interval_s
        stats_frames = 0
        stats_t0 = time.monotonic()
        last_index = 0
        perf = time.perf_counter
        while not self._stop.is_set():
            if cfg.max_frames is not None and s.frames >= cfg.max_frames:
                self._stop_reason = self._stop_reason or f"max_frames {cfg.max_frames} reached"
                break
            t0, c0 = perf(), cpu()
            frame = source.read(timeout=0.5)
            now = time.monotonic()
            if frame is None:
                if source.finished:
                    self._stop_reason = self._stop_reason or "end of source"
                    break
                if now >= next_stats:
                    next_stats = now + cfg.stats_interval_s
                    self._publish_stats(group, source, model_ref, 0.0)
                continue
            s.frames += 1
            last_index = frame.index
            problem = frame_problem(frame.image, cfg.max_frame_pixels)
            if problem is not None:
                s.corrupt += 1
                if s.corrupt <= 10 or s.corrupt % 1000 == 0:  # a broken camera must not flood logs
                    log.warning(
                        "skipping corrupt frame %d (%d so far): %s", frame.index, s.corrupt, problem
                    )
                continue
            image = frame.image
            if image.ndim == 3 and image.shape[2] == 3:
                # Same conversion as contract.to_gray, into a reused buffer (a camera's lores Y
                # plane or a gray file needs none).
                if gray_buf.shape != image.shape[:2]:
                    gray_buf = np.empty(image.shape[:2], np.uint8)
                gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY, dst=gray_buf)
            else:
                gray = frame.gray
            t1, c1 = perf(), cpu()  # capture = read/decode + validation + gray conversion
            try:
                dets = finder.find(gray, tracker.seen_boxes())[:_MAX_FACES]
            except (ValueError, cv2.error) as e:
                # Valid-looking but undecodable pixels: skip the frame, keep the device up.
                s.corrupt += 1
                log.warning("skipping frame %d: detection failed: %s", frame.index, e)
                continue
            t2, c2 = perf(), cpu()
            boxes.clear()
            rows.clear()
            n = 0
            if len(dets) > faces_buf.shape[0]:
                faces_buf = np.empty((len(dets), size, size), np.uint8)
            # A still face (Detection.still) shows the same pixels as when it was last
            # classified: no new evidence, so it is observed with its track's own belief
            # (the smoothed probabilities stay as they are) instead of being classified again.
            beliefs = {t.bbox: t.probs for t in tracker.tracks if t.missed == 0}
            for d in dets:
                if d.still and d.bbox in beliefs:
                    boxes.append(d.bbox)
                    rows.append(-1)
                    continue
                try:
                    faces_buf[n] = crop_face(gray, crop_box(d), contract, d.eyes)
                except ValueError as e:  # a box entirely outside the frame
                    log.debug("frame %d: dropping box %s: %s", frame.index, d.bbox, e)
                    continue
                boxes.append(d.bbox)
                rows.append(n)
                n += 1
            t3, c3 = perf(), cpu()
            probs = clf.predict(faces_buf[:n]) if n else np.empty((0, len(tracker.labels)))
            if n < len(boxes):
                probs = np.stack(
                    [probs[r] if r >= 0 else beliefs[b] for r, b in zip(rows, boxes, strict=True)]
                )
            t4, c4 = perf(), cpu()
            track_events = tracker.update(boxes, probs, frame.index, frame.timestamp)
            t5, c5 = perf(), cpu()
            for te in track_events:
                self._publish(group, te, model_ref)
            t6, c6 = perf(), cpu()
            s.processed += 1
            s.faces += len(boxes)
            self._faces_now = len(boxes)
            self._tracks_now = len(tracker.tracks)
            lat = self.latency
            lat.add("capture", (t1 - t0) * 1e3)
            lat.add("detect", (t2 - t1) * 1e3)
            lat.add("crop", (t3 - t2) * 1e3)
            lat.add("infer", (t4 - t3) * 1e3)
            lat.add("track", (t5 - t4) * 1e3)
            lat.add("publish", (t6 - t5) * 1e3)
            lat.add("total", (t6 - t0) * 1e3)
            if hook is not None:
                hook(
                    FrameRecord(
                        frame.index,
                        (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
                        (c1 - c0, c2 - c1, c3 - c2, c4 - c3, c5 - c4, c6 - c5),
                        tuple(boxes),
                        len(track_events),
                    )
                )
            stats_frames += 1
            # Watchdog only from here: pings stop as soon as frames stop being processed.
            service.watchdog_ping()  # rate-limited inside to half the watchdog interval
            if now >= next_stats:
                fps = stats_frames / max(1e-9, now - stats_t0)
                self._publish_stats(group, source, model_ref, fps)
                stats_frames, stats_t0 = 0, now
                next_stats = now + cfg.stats_interval_s
        return last_index

    def _publish(self, group: SinkGroup, te: Any, model_ref: ModelRef) -> None:
        event = Event.create(
            device_id=self.cfg.device_id,
            frame=te.frame,
            track_id=te.track_id,
            type=te.type,
            bbox=te.bbox,
            scores=te.scores,
            model=model_ref,
        )
        self.summary.events[te.type] = self.summary.events.get(te.type, 0) + 1
        try:
            group.publish_event(event)
        except PublishError as e:
            # One broken sink (a closed stdout pipe) must not stop the others or the device.
            self.summary.publish_errors += 1
            if self.summary.publish_errors in (1, 100, 10000):
                log.error("publishing failed (%d so far): %s", self.summary.publish_errors, e)
        self._publish_state(group, event)

    def _publish_state(self, group: SinkGroup, event: Event) -> None:
        """Fold the event into the face state and publish the state if it changed."""
        if not self.face_state.apply(event):
            return
        try:
            group.publish_state(self.face_state.snapshot())
        except PublishError as e:
            log.warning("publishing the face state failed: %s", e)

    def stats(self, fps: float = 0.0) -> dict[str, Any]:
        """A stats snapshot: fps, per-stage latency, faces, drops, sink counters, uptime."""
        s = self.summary
        src = self._source.stats() if self._source is not None else {}
        s.dropped = int(src.get("dropped", 0))
        out: dict[str, Any] = {
            "device_id": self.cfg.device_id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "fps": round(fps, 2),
            "frames": s.frames,
            "processed": s.processed,
            "corrupt": s.corrupt,
            "dropped_frames": s.dropped,
            "faces": self._faces_now,
            "faces_total": s.faces,
            "tracks": self._tracks_now,
            "events": dict(s.events),
            "publish_errors": s.publish_errors,
            "latency_ms": self.latency.summary(),
            "source": src,
        }
        if self._group is not None:
            out.update(self._group.stats())
        return out

    def _publish_stats(
        self, group: SinkGroup, source: FrameSource, model_ref: ModelRef, fps: float
    ) -> None:
        snap = self.stats(fps)
        snap["model"] = {"name": model_ref.name, "sha256": model_ref.sha256}
        try:
            group.publish_stats(snap)
        except PublishError as e:
            log.warning("publishing stats failed: %s", e)

    def _shutdown(
        self, tracker: Tracker, model_ref: ModelRef, group: SinkGroup, frame: int
    ) -> None:
        cfg = self.cfg
        deadline = time.monotonic() + cfg.shutdown_timeout_s
        reason = self._stop_reason or "stopped"
        log.info("shutting down (%s)", reason)
        service.stopping()
        if self._source is not None:
            self._source.close(timeout=min(2.0, cfg.shutdown_timeout_s / 2))
        for te in tracker.flush(frame):
            self._publish(group, te, model_ref)
        elapsed = max(1e-9, time.monotonic() - self._started)
        self.summary.duration_s = round(elapsed, 3)
        self.summary.stop_reason = reason
        if self._source is not None:
            self._publish_stats(group, self._source, model_ref, self.summary.processed / elapsed)
        group.close(timeout=max(0.5, deadline - time.monotonic()))
        s = self.summary
        log.info(
            "stopped after %d frames (%d processed, %d corrupt, %d dropped, %d faces) in %.1f s; "
            "events %s",
            s.frames,
            s.processed,
            s.corrupt,
            s.dropped,
            s.faces,
            s.duration_s,
            s.events,
        )
