"""Face tracking: detections -> tracks with stable ids -> a few meaningful events.

A per-frame emotion is noisy (the classifier sees one 48x48 crop); a dashboard wants to know
when a face appears, when its expression *really* changes, a periodic heartbeat and when it
leaves. The :class:`Tracker` therefore

* associates each frame's face boxes with existing tracks by IoU (greedy, best overlap first);
* smooths each track's class probabilities with an exponential moving average;
* emits ``start`` once a track was seen ``min_hits`` times (one-frame false positives never
  become events), ``change`` when the dominant smoothed emotion differs from the announced one
  for ``change_frames`` consecutive observations, ``update`` every ``update_interval_s`` seconds
  (or ``update_every_frames`` frames) per track, and ``end`` when a track was missed more than
  ``max_missed`` frames in a row or on :meth:`Tracker.flush` at shutdown.

Pure Python + numpy: no models, no OpenCV; unit-testable on synthetic boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.events import EventType

Box = tuple[float, float, float, float]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when either is empty)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass(frozen=True)
class TrackEvent:
    """What the tracker reports; the pipeline turns it into an :class:`edge.events.Event`.

    Attributes:
        type: ``start``, ``change``, ``update`` or ``end``.
        track_id: Track id (1, 2, ... in order of creation).
        frame: Frame index the event refers to.
        bbox: Last box ``(x, y, w, h)`` in integer frame pixels.
        scores: Smoothed probability per label.
        emotion: The dominant smoothed emotion (what :meth:`edge.events.Event.create` derives
            from ``scores``).
    """

    type: EventType
    track_id: int
    frame: int
    bbox: tuple[int, int, int, int]
    scores: dict[str, float]
    emotion: str


@dataclass
class Track:
    """State of one followed face."""

    id: int
    bbox: Box
    probs: np.ndarray
    first_frame: int
    last_frame: int
    hits: int = 1
    missed: int = 0
    started: bool = False
    announced: int = -1  # label index last reported in start/change
    candidate: int = -1  # label index competing with ``announced``
    candidate_count: int = 0
    last_report_t: float = 0.0
    last_report_frame: int = 0

    @property
    def dominant(self) -> int:
        """Index of the highest smoothed probability."""
        return int(np.argmax(self.probs))


class Tracker:
    """IoU tracker with EMA-smoothed probabilities and event generation.

    Args:
        labels: Label names in the model's output order.
        iou_threshold: Minimum IoU to associate a detection with a track.
        max_missed: A track ends after this many consecutive frames without a detection.
        min_hits: Detections needed before a track is announced with ``start``.
        alpha: EMA weight of the newest probabilities (1.0: no smoothing).
        change_frames: Consecutive observations a new dominant emotion must hold before
            ``change`` is emitted.
        update_interval_s: Seconds (frame timestamps) between ``update`` events of one track
            (0 disables time-based updates).
        update_every_frames: Alternatively, frames between ``update`` events (0 disables).
    """

    def __init__(
        self,
        labels: Sequence[str],
        *,
        iou_threshold: float = 0.3,
        max_missed: int = 10,
        min_hits: int = 2,
        alpha: float = 0.3,
        change_frames: int = 3,
        update_interval_s: float = 5.0,
        update_every_frames: int = 0,
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"alpha {alpha} is outside (0, 1]")
        self.labels = tuple(labels)
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.min_hits = max(1, min_hits)
        self.alpha = alpha
        self.change_frames = max(1, change_frames)
        self.update_interval_s = update_interval_s
        self.update_every_frames = update_every_frames
        self._tracks: list[Track] = []
        self._next_id = 1

    @property
    def tracks(self) -> list[Track]:
        """Live tracks (announced or tentative)."""
        return list(self._tracks)

    def seen_boxes(self) -> list[Box]:
        """Boxes of the tracks matched in the latest frame (what a region search should follow).

        A track that was just missed is not searched again in its old region: the frame after
        a miss runs a full-frame detection anyway (see :class:`edge.detect.FaceFinder`), and a
        face that full pass did not find has left, so searching its old region again would
        only force another full pass every other frame until the track ends.
        """
        return [t.bbox for t in self._tracks if t.missed == 0]

    def update(
        self,
        boxes: Sequence[Sequence[float]],
        probs: np.ndarray | Sequence[Sequence[float]],
        frame: int,
        t: float,
    ) -> list[TrackEvent]:
        """Feed one frame's detections and their class probabilities.

        Args:
            boxes: ``(x, y, w, h)`` per detected face.
            probs: ``(N, C)`` probabilities, row ``i`` for ``boxes[i]``.
            frame: Frame index.
            t: Frame timestamp in seconds (drives ``update_interval_s``).

        Returns:
            The events this frame caused, in order.
        """
        p = np.asarray(probs, dtype=np.float64).reshape(len(boxes), len(self.labels))
        events: list[TrackEvent] = []
        matches = self._associate(boxes)
        matched_tracks = set()
        for det_i, trk in matches:
            matched_tracks.add(trk.id)
            self._observe(trk, tuple(float(v) for v in boxes[det_i]), p[det_i], frame, t, events)  # type: ignore[arg-type]
        matched_dets = {d for d, _ in matches}
        for trk in list(self._tracks):
            if trk.id in matched_tracks:
                continue
            trk.missed += 1
            if not trk.started:
                # A tentative track that vanishes was probably a false positive: drop silently.
                self._tracks.remove(trk)
            elif trk.missed > self.max_missed:
                self._tracks.remove(trk)
                events.append(self._event(EventType.END, trk, frame))
        for i, box in enumerate(boxes):
            if i in matched_dets:
                continue
            trk = Track(
                id=self._next_id,
                bbox=tuple(float(v) for v in box),  # type: ignore[arg-type]
                probs=p[i].copy(),
                first_frame=frame,
                last_frame=frame,
            )
            self._next_id += 1
            self._tracks.append(trk)
            if self.min_hits <= 1:
                self._start(trk, frame, t, events)
        return events

    def flush(self, frame: int) -> list[TrackEvent]:
        """End every announced track (shutdown or end of stream) and forget all tracks."""
        events = [self._event(EventType.END, trk, frame) for trk in self._tracks if trk.started]
        self._tracks.clear()
        return events

    # ---------------------------------------------------------------- internals
    def _associate(self, boxes: Sequence[Sequence[float]]) -> list[tuple[int, Track]]:
        pairs: list[tuple[float, int, int]] = []
        for di, box in enumerate(boxes):
            for ti, trk in enumerate(self._tracks):
                v = iou(box, trk.bbox)
                if v >= self.iou_threshold:
                    pairs.append((v, di, ti))
        pairs.sort(key=lambda x: -x[0])
        used_d: set[int] = set()
        used_t: set[int] = set()
        out: list[tuple[int, Track]] = []
        for _, di, ti in pairs:
            if di in used_d or ti in used_t:
                continue
            used_d.add(di)
            used_t.add(ti)
            out.append((di, self._tracks[ti]))
        return out

    def _observe(
        self, trk: Track, box: Box, p: np.ndarray, frame: int, t: float, events: list[TrackEvent]
    ) -> None:
        trk.bbox = box
        trk.hits += 1
        trk.missed = 0
        trk.last_frame = frame
        # In-place EMA: no new array per face per frame.
        trk.probs *= 1.0 - self.alpha
        trk.probs += self.alpha * p
        if not trk.started:
            if trk.hits >= self.min_hits:
                self._start(trk, frame, t, events)
            return
        dom = trk.dominant
        if dom == trk.announced:
            trk.candidate, trk.candidate_count = -1, 0
        else:
            if dom == trk.candidate:
                trk.candidate_count += 1
            else:
                trk.candidate, trk.candidate_count = dom, 1
            if trk.candidate_count >= self.change_frames:
                trk.announced = dom
                trk.candidate, trk.candidate_count = -1, 0
                events.append(self._event(EventType.CHANGE, trk, frame))
                trk.last_report_t, trk.last_report_frame = t, frame
                return
        if self._update_due(trk, frame, t):
            events.append(self._event(EventType.UPDATE, trk, frame))
            trk.last_report_t, trk.last_report_frame = t, frame

    def _start(self, trk: Track, frame: int, t: float, events: list[TrackEvent]) -> None:
        trk.started = True
        trk.announced = trk.dominant
        trk.last_report_t, trk.last_report_frame = t, frame
        events.append(self._event(EventType.START, trk, frame))

    def _update_due(self, trk: Track, frame: int, t: float) -> bool:
        if self.update_interval_s > 0 and t - trk.last_report_t >= self.update_interval_s:
            return True
        return (
            self.update_every_frames > 0
            and frame - trk.last_report_frame >= self.update_every_frames
        )

    def _event(self, kind: EventType, trk: Track, frame: int) -> TrackEvent:
        total = float(trk.probs.sum()) or 1.0
        scores = {lab: float(v) / total for lab, v in zip(self.labels, trk.probs, strict=True)}
        x, y, w, h = trk.bbox
        return TrackEvent(
            type=kind,
            track_id=trk.id,
            frame=frame,
            bbox=(round(x), round(y), round(w), round(h)),
            scores=scores,
            emotion=self.labels[trk.dominant],
        )
