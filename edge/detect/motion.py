"""Cheap motion detection on a small gray downscale: where did the scene change since the last
frame?

A full-frame face detection costs ~30 ms on one core at the 320-wide detection scale, while this
costs ~0.1-0.2 ms, so :class:`~edge.detect.scheduler.FaceFinder` uses it to run full passes only
where and when something changed (see ``detector.motion_gate``). Per frame:

1. the gray frame is downscaled with ``INTER_AREA`` to ``width`` pixels (160 by default) into a
   preallocated buffer; area averaging over 4x4 pixels is the blur that removes most sensor
   noise (Gaussian noise of 4 gray levels per pixel becomes ~1);
2. global brightness (auto exposure, a lamp) is normalised by scaling the frame so its median
   gray level matches the previous frame's, so an exposure change does not look like motion
   everywhere;
3. a pixel has *changed* when it is more than ``threshold`` gray levels brighter than the
   brightest, or darker than the darkest, pixel of its 3x3 neighbourhood in the previous frame.
   That one-pixel tolerance (4 px at 640 wide) absorbs sub-pixel shifts of edges from camera
   shake or a slow sway, which would otherwise light up every edge in the frame, while a face
   or person that appears, walks or turns still differs from everything nearby;
4. boxes to ignore (the enlarged regions of faces already followed, which the region search
   covers anyway) are cleared;
5. the change mask is averaged into blocks of ``block`` x ``block`` pixels (16x16 at 640 wide);
   a block moves when at least a quarter of its pixels changed, so isolated noise pixels never
   count. When the moving blocks cover at least ``min_area`` of the frame, their connected
   groups (after a one-block dilation that joins fragments of one object) are returned as
   regions in full-frame pixels.

The reference is always the previous frame, so a lasting change (a lamp switched on, a chair
moved) is seen in one frame only, and slow drifts (exposure, daylight) are never seen. Movement
slower than the tolerance per frame (a person creeping in at < 4 px per frame at 640 wide) is not
seen either; :class:`~edge.detect.scheduler.FaceFinder` keeps a periodic full pass for that.

:meth:`MotionDetector.snapshot` and :meth:`MotionDetector.changed` compare one region of the
current frame with the same region of an *earlier* frame (the frame a followed face was last
detected in) by the same rule (brightness normalised by the two frames' medians, one-pixel
tolerance, ``threshold``): :class:`~edge.detect.scheduler.FaceFinder` keeps a still face's box
without searching its region again. Because the reference is the detection frame, not the
previous frame, slow movement adds up until it shows.

Every buffer is allocated once per frame size; the per-frame work allocates only the small
outputs of OpenCV's histogram and connected-components calls (a few hundred bytes), and the
latter only on frames with motion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[float, float, float, float]

#: 3x3 structuring element of the one-pixel tolerance and of the block dilation.
_KERNEL = np.ones((3, 3), np.uint8)
#: A block counts as moving when at least this fraction of its pixels changed.
BLOCK_FILL = 0.25
#: Median gray level below which brightness is not normalised (ratios of dark frames are noise).
_MIN_MEDIAN = 16
#: Largest brightness ratio normalised between two frames (a bigger jump is a real event).
_MAX_GAIN = 2.0


@dataclass(frozen=True)
class Motion:
    """What changed since the previous frame.

    Attributes:
        area: Fraction of the frame covered by moving blocks (outside the ignored boxes).
        regions: ``(x, y, w, h)`` boxes in full-frame pixels around each connected group of
            moving blocks; empty when ``area`` is below the detector's ``min_area``.
        gain: Brightness ratio applied to this frame before comparing (1.0: none).
    """

    area: float
    regions: tuple[tuple[int, int, int, int], ...]
    gain: float = 1.0


@dataclass(frozen=True)
class Snapshot:
    """One region of one frame's downscale, kept to tell later whether it changed.

    Attributes:
        x0: Left edge in downscale pixels.
        y0: Top edge.
        hi: Brightest value of each pixel's 3x3 neighbourhood (the one-pixel tolerance).
        lo: Darkest value of each pixel's 3x3 neighbourhood.
        median: Median gray level of the whole downscaled frame (brightness normalisation).
        shape: The frame shape it was taken from (a snapshot of another size never matches).
    """

    x0: int
    y0: int
    hi: np.ndarray
    lo: np.ndarray
    median: int
    shape: tuple[int, int]


class MotionDetector:
    """Frame-to-frame change detector on a small downscale (see module docstring).

    Args:
        width: Width of the downscale in pixels (rounded down to a multiple of ``block``); frames
            narrower than this are used at their own width.
        threshold: Gray-level difference (after brightness normalisation, beyond the one-pixel
            tolerance) for a pixel to count as changed. Sensor noise at the downscale is
            ~1 gray level for 4 at full resolution, so 16 is far above noise and below the
            contrast of a face against a background.
        min_area: Smallest fraction of the frame the moving blocks must cover to report
            regions (0.002 = 614 px at 640x480, a quarter of a 48 px face).
        block: Block side in downscale pixels.
    """

    def __init__(
        self,
        *,
        width: int = 160,
        threshold: int = 16,
        min_area: float = 0.002,
        block: int = 4,
    ) -> None:
        if block < 1 or width < 4 * block:
            raise ValueError(f"motion width {width} must be at least 4 blocks of {block} px")
        self.width = int(width)
        self.threshold = int(threshold)
        self.min_area = float(min_area)
        self.block = int(block)
        self._frame_shape: tuple[int, int] = (0, 0)
        self._have_prev = False
        self._prev_median = 0
        self.frames = 0
        self.frames_with_motion = 0

    def reset(self) -> None:
        """Forget the previous frame: the next :meth:`update` returns ``None``."""
        self._have_prev = False

    def _allocate(self, fh: int, fw: int) -> None:
        b = self.block
        sw = max(4 * b, (min(self.width, fw) // b) * b)
        sh = max(b, (round(fh * sw / fw) // b) * b)
        self._small_shape = (sh, sw)
        self._grid_shape = (sh // b, sw // b)
        self._cur = np.empty((sh, sw), np.uint8)
        self._prev = np.empty((sh, sw), np.uint8)
        self._norm = np.empty((sh, sw), np.uint8)
        self._hi = np.empty((sh, sw), np.uint8)
        self._lo = np.empty((sh, sw), np.uint8)
        self._up = np.empty((sh, sw), np.uint8)
        self._down = np.empty((sh, sw), np.uint8)
        self._mask = np.empty((sh, sw), np.uint8)
        self._grid = np.empty(self._grid_shape, np.uint8)
        self._grid_bin = np.empty(self._grid_shape, np.uint8)
        self._grid_dil = np.empty(self._grid_shape, np.uint8)
        self._frame_shape = (fh, fw)
        self._have_prev = False

    def update(self, gray: np.ndarray, ignore: Sequence[Box] = ()) -> Motion | None:
        """Compare ``gray`` with the previous frame and make it the new reference.

        Args:
            gray: Full 2-D uint8 frame.
            ignore: ``(x, y, w, h)`` boxes in full-frame pixels whose changes do not count.

        Returns:
            What moved, or ``None`` when there is no previous frame of this size to compare
            with (the first frame, or after :meth:`reset`).
        """
        fh, fw = gray.shape[:2]
        if (fh, fw) != self._frame_shape:
            self._allocate(fh, fw)
        sh, sw = self._small_shape
        cur = self._cur
        cv2.resize(gray, (sw, sh), dst=cur, interpolation=cv2.INTER_AREA)
        median = _median(cur)
        if not self._have_prev:
            self._swap(median)
            self._have_prev = True
            return None
        self.frames += 1
        gain = 1.0
        norm = cur
        if median >= _MIN_MEDIAN and self._prev_median >= _MIN_MEDIAN:
            gain = min(_MAX_GAIN, max(1.0 / _MAX_GAIN, self._prev_median / median))
            if abs(gain - 1.0) > 0.01:
                # Exposure and lamps scale the whole image: match this frame to the previous
                # one's brightness before comparing.
                cv2.convertScaleAbs(cur, dst=self._norm, alpha=gain)
                norm = self._norm
            else:
                gain = 1.0
        prev = self._prev
        cv2.dilate(prev, _KERNEL, dst=self._hi)
        cv2.erode(prev, _KERNEL, dst=self._lo)
        # Saturating uint8 differences: how far each pixel lies outside the previous frame's
        # local [min, max] range, brighter or darker.
        cv2.subtract(norm, self._hi, dst=self._up)
        cv2.subtract(self._lo, norm, dst=self._down)
        cv2.max(self._up, self._down, dst=self._up)
        cv2.threshold(self._up, self.threshold, 255, cv2.THRESH_BINARY, dst=self._mask)
        for box in ignore:
            x0, y0, x1, y1 = self._small_box(box)
            if x1 > x0 and y1 > y0:
                self._mask[y0:y1, x0:x1] = 0
        self._swap(median)
        gh, gw = self._grid_shape
        min_blocks = max(1, math.ceil(self.min_area * gh * gw))
        if cv2.countNonZero(self._mask) < min_blocks * self.block * self.block * BLOCK_FILL:
            return Motion(0.0, (), gain)
        # Mean of each block (INTER_AREA over an exact integer factor), then the fill rule.
        cv2.resize(self._mask, (gw, gh), dst=self._grid, interpolation=cv2.INTER_AREA)
        cv2.threshold(
            self._grid, 255 * BLOCK_FILL - 0.5, 255, cv2.THRESH_BINARY, dst=self._grid_bin
        )
        moving = cv2.countNonZero(self._grid_bin)
        area = moving / float(gh * gw)
        if moving < min_blocks:
            return Motion(area, (), gain)
        self.frames_with_motion += 1
        # Join fragments of one object (a face's edges, a body's outline) that lie one block
        # apart; the dilation also pads every region by one block.
        cv2.dilate(self._grid_bin, _KERNEL, dst=self._grid_dil)
        n, _labels, stats, _c = cv2.connectedComponentsWithStats(self._grid_dil, connectivity=8)
        bx, by = fw / float(gw), fh / float(gh)
        regions = tuple(
            (
                int(stats[i, 0] * bx),
                int(stats[i, 1] * by),
                min(fw, math.ceil((stats[i, 0] + stats[i, 2]) * bx)) - int(stats[i, 0] * bx),
                min(fh, math.ceil((stats[i, 1] + stats[i, 3]) * by)) - int(stats[i, 1] * by),
            )
            for i in range(1, n)
        )
        return Motion(area, regions, gain)

    def _small_box(self, box: Box) -> tuple[int, int, int, int]:
        """``box`` (full-frame pixels) as ``(x0, y0, x1, y1)`` in the current downscale."""
        fh, fw = self._frame_shape
        sh, sw = self._small_shape
        x, y, w, h = box
        sx, sy = sw / float(fw), sh / float(fh)
        x0, y0 = max(0, int(x * sx)), max(0, int(y * sy))
        return x0, y0, min(sw, math.ceil((x + w) * sx)), min(sh, math.ceil((y + h) * sy))

    def snapshot(self, box: Box) -> Snapshot | None:
        """Keep ``box`` (full-frame pixels) of the frame last given to :meth:`update`.

        Returns:
            The snapshot, or ``None`` before the first frame or for a box outside the frame.
        """
        if not self._have_prev:
            return None
        x0, y0, x1, y1 = self._small_box(box)
        if x1 - x0 < 3 or y1 - y0 < 3:
            return None
        patch = self._prev[y0:y1, x0:x1]  # after update's swap: the latest frame
        return Snapshot(
            x0,
            y0,
            cv2.dilate(patch, _KERNEL),
            cv2.erode(patch, _KERNEL),
            self._prev_median,
            self._frame_shape,
        )

    def changed(self, snap: Snapshot) -> float:
        """Fraction of the snapshot's pixels that changed between its frame and the frame last
        given to :meth:`update` (same rule as :meth:`update`; 1.0 when they cannot be compared:
        another frame size, or no frame since :meth:`reset`)."""
        if not self._have_prev or snap.shape != self._frame_shape:
            return 1.0
        h, w = snap.hi.shape
        cur: np.ndarray = self._prev[snap.y0 : snap.y0 + h, snap.x0 : snap.x0 + w]
        if cur.shape != (h, w):
            return 1.0
        median = self._prev_median
        if median >= _MIN_MEDIAN and snap.median >= _MIN_MEDIAN:
            gain = min(_MAX_GAIN, max(1.0 / _MAX_GAIN, snap.median / median))
            if abs(gain - 1.0) > 0.01:
                cur = np.asarray(cv2.convertScaleAbs(cur, alpha=gain))
        up = np.asarray(cv2.subtract(cur, snap.hi))
        cv2.max(up, np.asarray(cv2.subtract(snap.lo, cur)), dst=up)
        return np.count_nonzero(up > self.threshold) / float(h * w)

    def _swap(self, median: int) -> None:
        # The current downscale becomes the reference; the old reference's buffer is reused.
        self._cur, self._prev = self._prev, self._cur
        self._prev_median = median


def _median(img: np.ndarray) -> int:
    """Median gray level of a uint8 image, from its histogram (no sort, no copy)."""
    hist = cv2.calcHist([img], [0], None, [256], [0, 256])
    cum = np.cumsum(hist)
    return int(np.searchsorted(cum, cum[-1] / 2.0))
