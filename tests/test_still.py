"""Still faces: a followed face whose search region did not change since it was detected keeps
its box, and its classification, without a detector run (``[detector] still_frames``); and a
face seen in one frame only does not force a full pass when its region search misses it.

Real BlazeFace (short range, bundled) on real CK+48 faces pasted into frames of a camera with
sensor noise, exposure drift and a textured wall (edge/testing/facevideo.py), so "unchanged" is
never "identical pixels". No timing assertions: the tests count model runs instead.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.app import Pipeline
from edge.classify.deployed import open_configured
from edge.config import load_config
from edge.detect import BlazeFaceDetector, create_finder
from edge.detect.config import detector_config
from edge.publish.jsonl import JsonlSink
from edge.testing.facevideo import REALISTIC, Placement, render, render_gray, write_video
from edge.track import iou

SIDE = 120
CAMERA = dataclasses.replace(REALISTIC, noise_sigma=4.0)


def _face(ckplus_dir: Path, cls: str, subject: str = "S011") -> np.ndarray:
    path = sorted((ckplus_dir / cls).glob(f"{subject}_*.png"))[-1]  # the sequence's peak
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


@pytest.fixture(scope="module")
def faces(ckplus_dir: Path) -> list[np.ndarray]:
    """One person (CK+48 subject S011) with three expressions, and another person."""
    return [
        _face(ckplus_dir, "happy"),
        _face(ckplus_dir, "surprise"),
        _face(ckplus_dir, "sadness"),
        _face(ckplus_dir, "happy", "S010"),
    ]


@pytest.fixture(scope="module")
def short() -> BlazeFaceDetector:
    return BlazeFaceDetector("short")


def _run(short: BlazeFaceDetector, faces: list, pls: list, n: int, still_frames: int):
    """Render ``n`` frames and feed them like the pipeline does; per frame: detections and
    model runs."""
    frames = render_gray(faces, pls, n, CAMERA)
    finder = create_finder(detector_config(still_frames=still_frames), short)
    out, tracked = [], []
    for g in frames:
        before = short.invocations
        dets = finder.find(g, tracked)
        out.append((dets, short.invocations - before))
        tracked = [d.bbox for d in dets]
    return finder, out


def _on(dets, box, min_iou: float = 0.4) -> list:
    return [d for d in dets if iou(d.bbox, box) >= min_iou]


def test_still_face_keeps_its_box_without_model_runs(
    faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    p = Placement(0, range(0, 40), SIDE, (250, 150), (0, 0))
    finder, out = _run(short, faces, [p], 40, still_frames=8)
    assert all(len(_on(d, p.box(f))) == 1 for f, (d, _) in enumerate(out)), out
    still = [all(d.still for d in dets) and runs == 0 for dets, runs in out]
    # Frame 0: full pass; frame 1: searched again (a face seen once is not kept yet); then at
    # most 8 frames in a row without a search, each returning the last searched detection.
    assert not still[0] and not still[1]
    assert sum(still) >= 30, still
    run = longest = 0
    for f, s in enumerate(still):
        run = run + 1 if s else 0
        longest = max(longest, run)
        if s:
            assert out[f][0][0].bbox == out[f - 1][0][0].bbox
    assert longest == 8
    assert finder.still_reuses == sum(still)
    # Without still_frames every frame searches the face.
    _, every = _run(short, faces, [p], 40, still_frames=0)
    assert all(runs >= 1 and not any(d.still for d in dets) for dets, runs in every)


def test_new_expression_is_searched_in_the_frame_it_appears(
    faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    # The same person, same place: happy for 15 frames, then surprised, then sad.
    pls = [
        Placement(0, range(0, 15), SIDE, (250, 150), (0, 0)),
        Placement(1, range(15, 30), SIDE, (250, 150), (0, 0)),
        Placement(2, range(30, 45), SIDE, (250, 150), (0, 0)),
    ]
    _, out = _run(short, faces, pls, 45, still_frames=30)
    for f in (15, 30):
        dets, runs = out[f]
        assert runs >= 1 and len(_on(dets, (250, 150, SIDE, SIDE))) == 1
        assert not any(d.still for d in dets)
    assert sum(runs == 0 for _, runs in out) >= 30  # still in between


def test_moving_face_is_searched_again_and_followed(
    faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    # 1 px per frame: below the motion detector's one-pixel tolerance (4 px at 640 wide) from
    # frame to frame, but it adds up against the detection frame.
    p = Placement(0, range(0, 60), SIDE, (150, 150), (1, 1))
    _, out = _run(short, faces, [p], 60, still_frames=30)
    assert all(len(_on(dets, p.box(f), 0.5)) == 1 for f, (dets, _) in enumerate(out))
    assert sum(runs >= 1 for _, runs in out) >= 8  # searched at least every 8 px or so


def test_new_face_found_at_once_beside_a_still_one(
    faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    pls = [
        Placement(0, range(0, 40), SIDE, (60, 150), (0, 0)),
        Placement(3, range(25, 40), SIDE, (440, 200), (0, 0)),
    ]
    _, out = _run(short, faces, pls, 40, still_frames=30)
    dets, _ = out[25]
    assert len(_on(dets, pls[1].box(25))) == 1 and not _on(dets, pls[1].box(25))[0].still
    assert _on(dets, pls[0].box(25))[0].still  # the first face was not searched


def test_pipeline_reuses_a_still_face_classification(
    faces: list[np.ndarray], tmp_path: Path
) -> None:
    # Real bundled classifier; count the faces it is given.
    p = Placement(0, range(0, 40), SIDE, (250, 150), (0, 0))
    video = write_video(tmp_path / "still.avi", render(faces, [p], 40, CAMERA), 15.0)
    results = {}
    for n in (0, 8):
        cfg = load_config(
            None,
            {
                "source": {"type": "file", "path": str(video)},
                "detector": {"still_frames": n},
                "tracking": {"update_interval_s": 0, "update_every_frames": 5},
            },
        )
        clf = open_configured(cfg.model)
        classified = [0]
        predict = clf.predict

        def counting(batch: np.ndarray, predict=predict, classified=classified) -> np.ndarray:
            classified[0] += len(batch)
            return predict(batch)

        clf.predict = counting  # type: ignore[method-assign]
        ev = tmp_path / f"ev{n}.jsonl"
        summary = Pipeline(cfg, classifier=clf, sinks=[JsonlSink(ev)]).run()
        events = [line for line in ev.read_text().splitlines() if line]
        results[n] = (classified[0], summary.faces, events)
    assert results[0][0] == results[0][1] == 40  # one classification per face and frame
    assert results[8][1] == 40 and results[8][0] <= 12, results[8][:2]
    emotions = {n: [json.loads(e)["emotion"] for e in r[2]] for n, r in results.items()}
    assert emotions[0][-1] == emotions[8][-1] == "happy", emotions


@pytest.mark.parametrize("seen", [1, 2])
def test_only_a_confirmed_face_forces_a_full_pass_when_lost(
    faces: list[np.ndarray], short: BlazeFaceDetector, seen: int
) -> None:
    # A face visible in one frame only (what a full pass's false positive looks like to the
    # scheduler) is searched once more in its region; missing there, it does not force a full
    # pass (on the hard-long scene a textured wall otherwise got one every other frame). A
    # face seen in two frames in a row that vanishes does.
    p = Placement(0, range(3, 3 + seen), SIDE, (250, 150), (0, 0))
    frames = render_gray(faces, [p], 3 + seen + 2, CAMERA)
    finder = create_finder(detector_config(), short)
    tracked: list = []
    full = []
    for f, g in enumerate(frames):
        before = finder.full_runs
        dets = finder.find(g, tracked)
        full.append(finder.full_runs > before)
        if f in p.frames:
            assert len(_on(dets, p.box(f))) == 1
        tracked = [d.bbox for d in dets]
    gone = 3 + seen  # the region search misses here
    assert full[0] and not any(full[1 : gone + 1])
    assert full[gone + 1] == (seen == 2), full
