"""Unit tests of the IoU tracker and its event logic (no models, no OpenCV)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.contract import FER2013_LABELS
from edge.track import Tracker, iou

LABELS = FER2013_LABELS
HAPPY = LABELS.index("happy")
SAD = LABELS.index("sad")


def onehot(i: int, p: float = 0.9) -> np.ndarray:
    v = np.full(len(LABELS), (1.0 - p) / (len(LABELS) - 1))
    v[i] = p
    return v


def feed(tr: Tracker, frames: list[list[tuple[tuple[float, ...], int]]], start: int = 0):
    """Feed (box, label) lists per frame; return all events with their frame."""
    out = []
    for k, dets in enumerate(frames):
        boxes = [b for b, _ in dets]
        probs = np.array([onehot(c) for _, c in dets]).reshape(len(dets), len(LABELS))
        out += tr.update(boxes, probs, start + k, t=(start + k) / 10.0)
    return out


def test_iou_basic() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_start_after_min_hits_then_end_after_max_missed() -> None:
    tr = Tracker(LABELS, min_hits=3, max_missed=2, update_interval_s=0)
    box = (100.0, 100.0, 50.0, 50.0)
    ev = feed(tr, [[(box, HAPPY)]] * 2)
    assert ev == []  # not announced before min_hits
    ev = feed(tr, [[(box, HAPPY)]], start=2)
    assert [e.type for e in ev] == ["start"]
    assert ev[0].track_id == 1 and ev[0].emotion == "happy" and ev[0].bbox == (100, 100, 50, 50)
    assert sum(ev[0].scores.values()) == pytest.approx(1.0)
    # Two misses are tolerated, the third ends the track.
    assert feed(tr, [[], []], start=3) == []
    ev = feed(tr, [[]], start=5)
    assert [(e.type, e.track_id, e.frame) for e in ev] == [("end", 1, 5)]
    assert tr.tracks == []


def test_tentative_track_dropped_silently() -> None:
    tr = Tracker(LABELS, min_hits=2)
    ev = feed(tr, [[((0, 0, 40, 40), HAPPY)], []])
    assert ev == [] and tr.tracks == []


def test_ids_follow_moving_faces_and_stay_distinct() -> None:
    tr = Tracker(LABELS, min_hits=1, update_interval_s=0)
    frames = []
    for k in range(10):
        a = ((10.0 + 3 * k, 20.0, 60.0, 60.0), HAPPY)  # moves right slowly
        b = ((400.0, 300.0 - 2 * k, 50.0, 50.0), SAD)  # moves up slowly
        frames.append([a, b] if k % 2 == 0 else [b, a])  # detection order must not matter
    ev = feed(tr, frames)
    starts = [e for e in ev if e.type == "start"]
    assert sorted(e.track_id for e in starts) == [1, 2]
    assert len(tr.tracks) == 2
    by_id = {t.id: t for t in tr.tracks}
    assert by_id[1].bbox[0] == pytest.approx(37.0) and by_id[2].bbox[1] == pytest.approx(282.0)
    assert LABELS[by_id[1].dominant] == "happy" and LABELS[by_id[2].dominant] == "sad"


def test_change_needs_k_consecutive_frames() -> None:
    tr = Tracker(LABELS, min_hits=1, alpha=1.0, change_frames=3, update_interval_s=0)
    box = (0.0, 0.0, 50.0, 50.0)
    seq = [HAPPY, HAPPY, SAD, SAD, HAPPY, SAD, SAD, SAD, SAD]
    ev = feed(tr, [[(box, c)] for c in seq])
    types = [(e.type, e.frame, e.emotion) for e in ev]
    # A two-frame blip (frames 2-3) is not a change; three in a row (5-7) is.
    assert types == [("start", 0, "happy"), ("change", 7, "sad")]


def test_ema_smoothing_delays_change() -> None:
    tr = Tracker(LABELS, min_hits=1, alpha=0.2, change_frames=1, update_interval_s=0)
    box = (0.0, 0.0, 50.0, 50.0)
    ev = feed(tr, [[(box, HAPPY)]] * 5 + [[(box, SAD)]] * 10)
    changes = [e for e in ev if e.type == "change"]
    assert len(changes) == 1 and changes[0].emotion == "sad"
    # With alpha 0.2 one or two sad frames cannot outweigh five happy ones.
    assert changes[0].frame >= 7


def test_periodic_updates_by_time_and_by_frames() -> None:
    box = (0.0, 0.0, 50.0, 50.0)
    tr = Tracker(LABELS, min_hits=1, update_interval_s=1.0)  # t = frame / 10
    ev = feed(tr, [[(box, HAPPY)]] * 25)
    assert [e.frame for e in ev if e.type == "update"] == [10, 20]
    tr2 = Tracker(LABELS, min_hits=1, update_interval_s=0, update_every_frames=4)
    ev2 = feed(tr2, [[(box, HAPPY)]] * 10)
    assert [e.frame for e in ev2 if e.type == "update"] == [4, 8]


def test_flush_ends_only_announced_tracks() -> None:
    tr = Tracker(LABELS, min_hits=2, update_interval_s=0)
    feed(tr, [[((0, 0, 50, 50), HAPPY)]] * 3)
    feed(tr, [[((0, 0, 50, 50), HAPPY), ((300, 300, 50, 50), SAD)]], start=3)  # tentative #2
    ev = tr.flush(frame=4)
    assert [(e.type, e.track_id, e.frame) for e in ev] == [("end", 1, 4)]
    assert tr.tracks == [] and tr.flush(5) == []


def test_greedy_association_prefers_best_overlap() -> None:
    tr = Tracker(LABELS, min_hits=1, iou_threshold=0.1, update_interval_s=0)
    feed(tr, [[((0, 0, 100, 100), HAPPY), ((80, 0, 100, 100), SAD)]])
    # Both new boxes overlap both tracks; each must stay with its closest track.
    feed(tr, [[((85, 0, 100, 100), SAD), ((5, 0, 100, 100), HAPPY)]], start=1)
    by_id = {t.id: t for t in tr.tracks}
    assert by_id[1].bbox[0] == 5.0 and by_id[2].bbox[0] == 85.0


def test_bad_alpha_rejected() -> None:
    with pytest.raises(ValueError, match="alpha"):
        Tracker(LABELS, alpha=0.0)
