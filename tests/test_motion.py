"""Motion-gated face detection on real FER2013 faces in a noisy, drifting, textured scene.

The scenes come from edge/testing/facevideo.py with the REALISTIC camera (sensor noise, exposure drift,
textured background), so "nothing moved" is never "identical pixels". No timing assertions: the
tests count full-frame passes and frames-to-detection instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.config import validate_config
from edge.detect import FaceFinder, HaarDetector, MotionDetector, create_finder
from edge.detect.config import HaarConfig
from edge.errors import ConfigError
from edge.testing.facevideo import (
    REALISTIC,
    Camera,
    Placement,
    detectable,
    load_fer_faces,
    render_gray,
)

SIDE = 120


@pytest.fixture(scope="module")
def faces(fer_slice_csv: Path) -> tuple[list[np.ndarray], list[int]]:
    """Real faces and the indices of three the Haar cascade sees at 120 px."""
    fs = load_fer_faces(fer_slice_csv, 60)
    return fs, detectable(fs, side=SIDE, want=3)


def _hit(dets, box) -> bool:
    x, y, s, _ = box
    return any(
        abs(d.x + d.w / 2 - (x + s / 2)) < s / 3
        and abs(d.y + d.h / 2 - (y + s / 2)) < s / 3
        and 0.5 * s < d.w < 2 * s
        for d in dets
    )


def _run(finder: FaceFinder, frames: list[np.ndarray]) -> list[list]:
    """Feed frames like the pipeline does: each frame's detections are the next one's tracks."""
    out, tracked = [], []
    for g in frames:
        dets = finder.find(g, tracked)
        out.append(dets)
        tracked = [d.bbox for d in dets]
    return out


def _gated(**kw) -> FaceFinder:
    return FaceFinder(HaarDetector(), motion=MotionDetector(), **kw)


# ------------------------------------------------------------------------- motion detector
def test_static_noisy_scene_has_no_motion_but_an_appearing_face_does(faces) -> None:
    fs, idx = faces
    cam = dataclasses.replace(REALISTIC, noise_sigma=4.0)  # the noisy end of the 2-4 range
    placement = Placement(idx[0], range(30, 40), SIDE, (300, 200), (0, 0))
    frames = render_gray(fs, [placement], 40, cam)
    md = MotionDetector()
    assert md.update(frames[0]) is None  # nothing to compare the first frame with
    for f in range(1, 30):
        m = md.update(frames[f])
        assert m is not None and m.regions == () and m.area < 0.002, (f, m)
    m = md.update(frames[30])  # the face appears
    assert m is not None and len(m.regions) == 1
    x, y, w, h = m.regions[0]
    assert x <= 300 and y <= 200 and x + w >= 300 + SIDE and y + h >= 200 + SIDE
    assert w * h < 0.2 * 640 * 480  # around the face, not the whole frame
    m = md.update(frames[31])  # the face stays: no motion any more
    assert m is not None and m.regions == ()


@pytest.mark.parametrize("factor", [1.3, 0.7])
def test_lamp_step_is_normalised_not_motion(faces, factor: float) -> None:
    fs, _ = faces
    cam = dataclasses.replace(REALISTIC, exposure_steps=((5, factor),))
    frames = render_gray(fs, [], 10, cam)
    md = MotionDetector()
    results = [md.update(g) for g in frames]
    step = results[5]
    assert step is not None and step.regions == ()
    assert abs(step.gain - 1 / factor) < 0.05  # brightness was normalised, not ignored
    assert all(r is not None and r.regions == () for r in results[1:])


def test_ignored_boxes_hide_their_motion(faces) -> None:
    fs, idx = faces
    moving = Placement(idx[0], range(0, 20), SIDE, (100, 100), (6, 3))  # 6 px per frame
    frames = render_gray(fs, [moving], 20, REALISTIC)
    md, seen = MotionDetector(), MotionDetector()
    md.update(frames[0])
    seen.update(frames[0])
    for f in range(1, 20):
        x, y, s, _ = moving.box(f)
        m = md.update(frames[f], [(x - s / 2, y - s / 2, 2 * s, 2 * s)])
        assert m is not None and m.regions == ()
        m2 = seen.update(frames[f])
        assert m2 is not None and m2.regions  # the same motion, not ignored


def test_motion_detector_rejects_tiny_width() -> None:
    with pytest.raises(ValueError, match="at least 4 blocks"):
        MotionDetector(width=8)


# ------------------------------------------------------------------------- gated finder
def test_gate_finds_entering_face_at_once_and_stays_cheap(faces) -> None:
    fs, idx = faces
    followed = Placement(idx[0], range(0, 70), SIDE, (60, 60), (1, 0))
    entering = Placement(idx[1], range(40, 70), SIDE, (420, 280), (-1, 0))
    frames = render_gray(fs, [followed, entering], 70, REALISTIC)
    finder = _gated(full_every=30)
    dets = _run(finder, frames)
    assert all(_hit(dets[f], followed.box(f)) for f in range(70))
    # Found in the frame it appeared in (a pure periodic schedule every 15 would wait ~10).
    assert _hit(dets[40], entering.box(40))
    assert all(_hit(dets[f], entering.box(f)) for f in range(40, 70))
    # Full passes: the first frame and the safety net at 30 and 60, nothing else; the entering
    # face was found by a region search.
    assert finder.full_runs == 3 and finder.periodic_full_runs == 2
    assert finder.motion_full_runs == 0 and finder.motion_runs == 1
    assert sum(len(d) for d in dets[:40]) == 40  # no false positives on the noisy frames


def test_gate_finds_face_walking_in_from_the_edge(faces) -> None:
    fs, idx = faces
    followed = Placement(idx[0], range(0, 60), SIDE, (400, 40), (0, 0))
    walker = Placement(idx[1], range(10, 60), SIDE, (-SIDE, 300), (8, 0), moving_frames=30)
    frames = render_gray(fs, [followed, walker], 60, REALISTIC)
    finder = _gated(full_every=1000)  # no safety net: only motion can find it
    dets = _run(finder, frames)
    first_inside = next(f for f in range(60) if walker.inside(f))
    found = [f for f in range(first_inside, 60) if _hit(dets[f], walker.box(f))]
    assert found and found[0] - first_inside <= 2
    assert len(found) >= 60 - first_inside - 3
    assert finder.full_runs == 1 and finder.motion_runs >= 10


def test_moving_camera_is_bounded_by_the_budget(faces) -> None:
    fs, idx = faces
    # A fast pan (12 px per frame, three times the motion tolerance): change everywhere.
    cam = dataclasses.replace(REALISTIC, pan_px=12)
    followed = Placement(idx[0], range(0, 40), SIDE, (500, 180), (-12, 0))
    frames = render_gray(fs, [followed], 40, cam)
    finder = _gated(full_every=1000, detect_every=5)
    dets = _run(finder, frames)
    assert sum(_hit(d, followed.box(f)) for f, d in enumerate(dets)) >= 36
    # The motion searches were limited, not run on every frame, and never cost more than the
    # periodic schedule's one frame per detect_every frames (plus the full initial bucket).
    assert finder.motion_skipped > 0
    assert finder.motion_area <= 1.0 + 39 / 5
    unbounded = _gated(full_every=1000, detect_every=1)  # budget of a whole frame per frame
    _run(unbounded, frames)
    assert unbounded.motion_area > finder.motion_area


def test_empty_noisy_room_runs_only_safety_net_passes(faces) -> None:
    fs, _ = faces
    # Noise, exposure drift and a lamp switched on at frame 25: still nothing to look at.
    cam = dataclasses.replace(REALISTIC, exposure_steps=((25, 1.25),), noise_sigma=4.0)
    frames = render_gray(fs, [], 61, cam)
    finder = _gated(full_every=30)
    dets = _run(finder, frames)
    assert all(d == [] for d in dets)
    assert finder.full_runs == 3  # frames 0, 30 and 60 (the periodic schedule: 61)
    assert finder.motion_runs == 0 and finder.motion_full_runs == 0
    periodic = FaceFinder(HaarDetector(), detect_every=5)
    _run(periodic, frames[:10])
    assert periodic.full_runs == 10  # what the gate saves: a full pass per empty frame


def test_gate_lost_face_and_wide_change_force_full_pass(faces) -> None:
    fs, idx = faces
    face = Placement(idx[0], range(0, 5), SIDE, (200, 150), (0, 0))
    frames = render_gray(fs, [face], 8, Camera(noise_sigma=3.0, textured=True, seed=3))
    # Frame 7: the left 60 % of the picture changes in a way no brightness factor explains.
    frames[7] = frames[7].copy()
    frames[7][:, :384] = 255 - frames[7][:, :384]
    finder = _gated(full_every=1000)
    dets = _run(finder, frames[:5])
    assert all(_hit(d, face.box(0)) for d in dets)
    assert finder.full_runs == 1  # only the first frame; then region searches
    tracked = [d.bbox for d in dets[4]]
    # Frame 5: the followed face is gone, its region search misses ...
    assert finder.find(frames[5], tracked) == [] and finder.full_runs == 1
    # ... so frame 6 is a full pass although nothing moved and full_every is far away.
    assert finder.find(frames[6], []) == [] and finder.full_runs == 2
    # Frame 7: the wide change is one full pass, not region searches.
    finder.find(frames[7], [])
    assert finder.full_runs == 3 and finder.motion_full_runs == 1 and finder.motion_runs == 0


# ------------------------------------------------------------------------- config
def test_config_builds_gated_or_periodic_finder() -> None:
    cfg = HaarConfig()
    finder = create_finder(cfg, HaarDetector())
    assert isinstance(finder.motion, MotionDetector) and finder.full_every == cfg.full_every
    custom = HaarConfig(motion_width=96, motion_threshold=20, motion_min_area=0.01)
    m = create_finder(custom, HaarDetector()).motion
    assert m is not None and (m.width, m.threshold, m.min_area) == (96, 20, 0.01)
    off = create_finder(HaarConfig(motion_gate=False, detect_every=7), HaarDetector())
    assert off.motion is None and off.detect_every == 7


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("full_every", 0, "greater than or equal to 1"),
        ("motion_width", 8, "greater than or equal to 32"),
        ("motion_threshold", 1, "greater than or equal to 2"),
        ("motion_min_area", -0.1, "greater than or equal to 0"),
        ("motion_full_area", 0, "greater than 0"),
        ("motion_gate", "sometimes", "motion_gate"),
        ("motion_gates", True, "unknown key"),
    ],
)
def test_bad_motion_keys_are_rejected(key: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        validate_config({"detector": {key: value}})
    assert f"detector.{key}" in str(ei.value) and message in str(ei.value)


def test_validate_config_cli_accepts_and_rejects_motion_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.toml"
    good.write_text(
        "[detector]\nmotion_gate = true\nfull_every = 45\nmotion_width = 128\n"
        "motion_threshold = 20\nmotion_min_area = 0.004\nmotion_full_area = 0.6\n"
    )
    assert main(["validate-config", "--schema-only", str(good)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.toml"
    bad.write_text("[detector]\nmotion_gate = false\nfull_every = -3\n")
    assert main(["validate-config", "--schema-only", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "detector.full_every" in err and "Traceback" not in err
