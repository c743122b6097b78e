"""When to run a full-frame detection and when a cheap search around known faces is enough.

Two schedules, chosen by ``detector.motion_gate``:

* **Periodic** (``motion_gate = false``): a full-frame detection runs every ``detect_every``
  frames, whenever no face is being followed, and on the frame after a followed face was not
  found in its region.
* **Motion-gated** (``motion_gate = true``): a :class:`~edge.detect.motion.MotionDetector`
  compares every frame with the previous one on a 160-wide downscale (~0.15 ms). A new face
  cannot appear without changing the picture, so detection outside the followed faces runs
  only inside the regions that changed (expanded so a whole face fits, at the full-frame
  detection scale), or as one full pass when they cover most of the frame. A full pass also
  runs on the first frame, on the frame after a followed face was lost, and at least every
  ``full_every`` frames as a safety net for faces that appear without visible motion (a still
  person after a lost track, a face that was turned away, movement slower than the motion
  detector's tolerance). An empty, still room then costs one full pass per ``full_every``
  frames instead of one per frame.

  While faces are followed, the searches triggered by motion are bounded by a budget: on
  average at most one frame's area per ``detect_every`` frames (a token bucket that refills
  by ``1 / detect_every`` of a frame per frame and holds at most one frame), so a moving
  camera, a busy corridor or a television in view costs no more full-frame work than the
  periodic schedule (plus the ``full_every`` safety net), and a new face then waits at most
  about as long as it would there. In a
  quiet scene the bucket is full and a face that enters is searched in the frame it appears
  in. With no face followed there is no budget: the periodic schedule would run a full pass on
  every such frame anyway.

Still faces (motion-gated schedule, ``still_frames > 0``): a followed face is not searched at
all in a frame where nothing changed in its search region since the frame it was last
detected in (same rule as the motion detector: brightness normalised, one-pixel tolerance,
``motion_threshold``; compared with that frame, not the previous one, so slow drift adds up
until it shows): its last detection is returned again, marked
:attr:`~edge.detect.base.Detection.still`, for at most ``still_frames`` frames in a row; then
it is searched again. A face that turns, talks, changes expression or moves changes its
region and is searched in that frame; so is a new face entering the region. Full passes are
unaffected.

In both schedules each followed face is searched between full passes only inside its box
enlarged ``roi_scale`` times around its centre, resized so the face is about ``roi_face_px``
wide (see :class:`~edge.detect.base.FaceDetector`); when that cheap search misses, the same
region is searched once more at the full-frame scale. Overlapping hits are merged. On a full
pass, a followed face the pass did not find is also searched in its region: a detector that
letterboxes the whole frame into a small input (BlazeFace) can miss a small face there that it
finds in the region; for the same reason such a detector (``full_pass_finds_all = False``) also
searches the frame's moving regions when the motion gate runs a full pass.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.detect.base import Detection, FaceDetector
from edge.detect.motion import MotionDetector, Snapshot
from edge.track import iou

Box = tuple[float, float, float, float]

#: A detection overlapping a followed face's box this much is that face (the tracker's default
#: IoU threshold).
_SAME_FACE_IOU = 0.3

#: Changes within this many face sides around a followed face (its head, hair and neck move
#: with it) do not count as motion: its own region search covers it.
MOTION_IGNORE_SCALE = 2.0

#: A followed face's search region counts as unchanged while at most this fraction of its
#: downscale pixels changed since its detection frame. Not zero: single JPEG or noise pixels
#: over the threshold happen; a face that moves changes its whole outline (measured on
#: bench/hard_scenes.py, see docs/PERFORMANCE.md).
STILL_CHANGE = 0.01


@dataclass
class _Still:
    """A detection to return again while its search region does not change."""

    detection: Detection
    snapshot: Snapshot
    reused: int = 0  # frames in a row it was returned without a search


class FaceFinder:
    """Full-frame detection when due, region-of-interest re-detection in between.

    Args:
        detector: The face detector.
        detect_every: Periodic schedule: a full-frame detection at least every this many
            frames while faces are followed (1: always).
        roi_scale: Side of the search region as a multiple of the face box side.
        motion: Motion detector for the motion-gated schedule (``None``: periodic schedule).
        full_every: Motion-gated schedule: a full-frame detection at least every this many
            frames, followed faces or not, motion or not.
        motion_full_area: Motion-gated schedule: when the expanded moving regions cover at
            least this fraction of the frame, run one full pass instead of searching them.
        still_frames: Motion-gated schedule: a followed face whose search region has not
            changed since it was detected is returned again without a search for up to this
            many frames in a row (0: search every frame; see the module docstring).

    In the motion-gated schedule ``detect_every`` sets the search budget while faces are
    followed (see the module docstring).
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        detect_every: int = 15,
        roi_scale: float = 1.6,
        motion: MotionDetector | None = None,
        full_every: int = 30,
        motion_full_area: float = 0.5,
        still_frames: int = 0,
    ) -> None:
        self.detector = detector
        self.detect_every = max(1, int(detect_every))
        self.roi_scale = roi_scale
        self.motion = motion
        self.full_every = max(1, int(full_every))
        self.motion_full_area = motion_full_area
        self.still_frames = max(0, int(still_frames)) if motion is not None else 0
        # Followed faces' last real detections, by box, with their region's snapshot.
        self._still: dict[Box, _Still] = {}
        # Boxes returned by the previous call, and those of them that were also found (or
        # kept still) in the call before: a lost face forces a full pass only if confirmed.
        self._prev_boxes: list[Box] = []
        self._confirmed: set[Box] = set()
        self._since_full = 0
        self._force_full = True  # the first frame always gets a full detection
        #: Frames with a full-frame pass.
        self.full_runs = 0
        #: Frames without one (region searches around followed faces and/or moving regions,
        #: or nothing to search): ``full_runs + roi_runs`` is the number of frames.
        self.roi_runs = 0
        #: Region searches that missed at the cheap scale and were retried at the full scale.
        self.roi_retries = 0
        #: Followed faces a full pass missed, searched in their region in the same frame.
        self.full_rescues = 0
        #: Motion-gated: frames whose moving regions were searched (a subset of ``roi_runs``).
        self.motion_runs = 0
        #: Motion-gated: full passes because the moving regions covered most of the frame.
        self.motion_full_runs = 0
        #: Motion-gated: full passes because ``full_every`` frames had passed without one.
        self.periodic_full_runs = 0
        #: Motion-gated: frames whose motion was (partly) left unsearched for lack of budget.
        self.motion_skipped = 0
        #: Motion-gated: frame areas searched because of motion (a full pass counts 1).
        self.motion_area = 0.0
        #: Followed faces returned again without a search (still, see ``still_frames``).
        self.still_reuses = 0
        # Search budget in frame areas (see the module docstring); starts full.
        self._budget = 1.0

    def find(self, gray: np.ndarray, tracked: Sequence[Box]) -> list[Detection]:
        """Detect faces in ``gray`` given the boxes of the currently followed faces.

        Args:
            gray: Full 2-D uint8 frame.
            tracked: ``(x, y, w, h)`` of each face followed in the previous frame.

        Returns:
            Detections in full-frame pixels.
        """
        fh, fw = gray.shape[:2]
        if self.motion is None:
            full = self._force_full or not tracked or self._since_full + 1 >= self.detect_every
            regions: list[tuple[int, int, int, int]] = []
        else:
            full, regions = self._gate(gray, tracked, fw, fh)
        if full:
            self._since_full = 0
            self._force_full = False
            self.full_runs += 1
            found = self.detector.detect(gray)
            # A full pass must not lose a followed face that its region search would keep: a
            # detector that letterboxes the whole frame into a small input (BlazeFace) sees a
            # small face much smaller there than in its region. Only the followed faces the
            # full pass did not find are searched (for Haar: almost never).
            for box in tracked:
                if not any(iou(d.bbox, box) >= _SAME_FACE_IOU for d in found):
                    self.full_rescues += 1
                    _merge(found, self._search_region(gray, box, fw, fh, force_full=False))
            for region in regions:
                _merge(found, self.detector.detect(gray, region))
            return self._remember(found, fw, fh)
        self._since_full += 1
        self.roi_runs += 1
        found = []
        for box in tracked:
            same = self._unchanged(box)
            if same is not None:
                self.still_reuses += 1
                _merge(found, [same])
            else:
                _merge(found, self._search_region(gray, box, fw, fh))
        if regions:
            self.motion_runs += 1
            for region in regions:
                _merge(found, self.detector.detect(gray, region))
        return self._remember(found, fw, fh)

    def _unchanged(self, box: Box) -> Detection | None:
        """The followed face's last detection, marked still, when its search region has not
        changed since then and it was not returned without a search too often in a row."""
        entry = self._still.get(box)
        if entry is None or entry.reused >= self.still_frames:
            return None
        assert self.motion is not None
        if self.motion.changed(entry.snapshot) > STILL_CHANGE:
            return None
        entry.reused += 1
        if not entry.detection.still:
            entry.detection = dataclasses.replace(entry.detection, still=True)
        return entry.detection

    def _remember(self, found: list[Detection], fw: int, fh: int) -> list[Detection]:
        """Note which of this frame's detections were also found in the previous frame, and
        keep those with a snapshot of their search region (a still one keeps its old snapshot:
        the comparison is always with the detection frame)."""
        prev, self._prev_boxes = self._prev_boxes, [d.bbox for d in found]
        old, self._still = self._still, {}
        self._confirmed = set()
        for d in found:
            # A face seen once only (a full pass's textured wall, gone in the next region
            # search) is not kept without a search, nor worth a full pass when it is lost.
            if not d.still and not any(iou(d.bbox, b) >= _SAME_FACE_IOU for b in prev):
                continue
            self._confirmed.add(d.bbox)
            if not self.still_frames:
                continue
            entry = old.get(d.bbox)
            if d.still and entry is not None:
                self._still[d.bbox] = entry
                continue
            assert self.motion is not None
            snap = self.motion.snapshot(self._roi(d.bbox, self.roi_scale, fw, fh))
            if snap is not None:
                self._still[d.bbox] = _Still(d, snap)
        return found

    def _search_region(
        self, gray: np.ndarray, box: Box, fw: int, fh: int, *, force_full: bool = True
    ) -> list[Detection]:
        """Search a followed face's region (see the module docstring)."""
        roi, side = self._roi(box, self.roi_scale, fw, fh), max(box[2], box[3])
        hits = self.detector.detect(gray, roi, face_side=side)
        if not hits and self.detector.roi_face_px > 0:
            # The cheap low-resolution search missed (~10% of blurry faces): retry the same
            # region at the full-frame scale before giving the face up for this frame.
            self.roi_retries += 1
            hits = self.detector.detect(gray, roi, face_side=side, roi_face_px=0)
        if not hits and force_full and box in self._confirmed:
            # The face left its region (fast motion, or gone): look everywhere next frame.
            # Not for a box seen in one frame only: a false positive of a full pass that its
            # region search does not confirm would otherwise get a full pass every other
            # frame, each finding it again (measured: bench/hard_scenes.py hard-long).
            self._force_full = True
        return hits

    def _gate(
        self, gray: np.ndarray, tracked: Sequence[Box], fw: int, fh: int
    ) -> tuple[bool, list[tuple[int, int, int, int]]]:
        """Motion-gated schedule: ``(full pass?, regions to search)`` for this frame."""
        assert self.motion is not None
        self._budget = min(1.0, self._budget + 1.0 / self.detect_every)
        # Always update, also before a full pass: the reference must be the previous frame.
        ignore = [self._roi(b, MOTION_IGNORE_SCALE, fw, fh) for b in tracked]
        moved = self.motion.update(gray, ignore)
        if self._force_full or moved is None or self._since_full + 1 >= self.full_every:
            if not (self._force_full or moved is None):
                self.periodic_full_runs += 1
            if moved is None or not moved.regions or self.detector.full_pass_finds_all:
                return True, []
            # This frame's motion is seen once only (the next frame compares with this one):
            # a detector whose full pass misses small faces searches it as well.
            return True, _union_overlapping([self._expand(r, fw, fh) for r in moved.regions])
        if not moved.regions:
            return False, []
        regions = _union_overlapping([self._expand(r, fw, fh) for r in moved.regions])
        area = float(fw * fh)
        wide = sum(w * h for _, _, w, h in regions) >= self.motion_full_area * area
        if not tracked:
            # Nothing followed: no budget (the periodic schedule runs a full pass here anyway).
            if wide:
                self.motion_full_runs += 1
                self.motion_area += 1.0
                return True, []
            self.motion_area += sum(w * h for _, _, w, h in regions) / area
            return False, regions
        if wide:
            if self._budget >= 1.0:
                self._budget -= 1.0
                self.motion_full_runs += 1
                self.motion_area += 1.0
                return True, []
            self.motion_skipped += 1
            return False, []
        # Smallest first: a face that just appeared is a small region, a busy background a
        # large one, so the budget goes to the new face first.
        chosen = []
        for r in sorted(regions, key=lambda b: b[2] * b[3]):
            cost = r[2] * r[3] / area
            if cost <= self._budget:
                self._budget -= cost
                self.motion_area += cost
                chosen.append(r)
        if len(chosen) < len(regions):
            self.motion_skipped += 1
        return False, chosen

    def _expand(
        self, region: tuple[int, int, int, int], fw: int, fh: int
    ) -> tuple[int, int, int, int]:
        # The moving part may be only a piece of a face (a mouth, the leading edge of a head):
        # pad by half the region's side, and by at least the smallest face, so a whole face
        # and the context the cascade needs fit.
        x, y, w, h = region
        pad = max(0.5 * max(w, h), float(self.detector.min_face))
        return _clamped(x - pad, y - pad, x + w + pad, y + h + pad, fw, fh)

    @staticmethod
    def _roi(box: Box, scale: float, fw: int, fh: int) -> tuple[int, int, int, int]:
        x, y, w, h = box
        half = max(w, h) * scale / 2.0
        cx, cy = x + w / 2.0, y + h / 2.0
        return _clamped(cx - half, cy - half, cx + half, cy + half, fw, fh)


def _clamped(
    x0: float, y0: float, x1: float, y1: float, fw: int, fh: int
) -> tuple[int, int, int, int]:
    """Integer ``(x, y, w, h)`` of the corners' box, clipped to a ``fw`` x ``fh`` frame."""
    ix0, iy0 = max(0, int(x0)), max(0, int(y0))
    ix1, iy1 = min(fw, int(x1 + 0.5)), min(fh, int(y1 + 0.5))
    return (ix0, iy0, ix1 - ix0, iy1 - iy0)


def _merge(found: list[Detection], hits: Sequence[Detection]) -> None:
    """Append the hits that do not overlap a face already in ``found`` (IoU < 0.5)."""
    for d in hits:
        if all(iou(d.bbox, f.bbox) < 0.5 for f in found):
            found.append(d)


def _union_overlapping(
    boxes: list[tuple[int, int, int, int]],
) -> list[tuple[int, int, int, int]]:
    """Replace overlapping boxes by their bounding box until none overlap (a face on the
    border of two regions is then searched once, whole)."""
    out = list(boxes)
    merged = True
    while merged:
        merged = False
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                if iou(out[i], out[j]) > 0.0:  # they overlap
                    ax, ay, aw, ah = out[i]
                    bx, by, bw, bh = out[j]
                    x0, y0 = min(ax, bx), min(ay, by)
                    x1, y1 = max(ax + aw, bx + bw), max(ay + ah, by + bh)
                    out[i] = (x0, y0, x1 - x0, y1 - y0)
                    del out[j]
                    merged = True
                    break
            if merged:
                break
    return out
