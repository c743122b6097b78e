"""BlazeFace on real face images: CK+48 faces pasted into frames at several sizes and rolls, and
the bundled sample video; eye alignment; detector config errors; bad model files."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.config import load_config, validate_config
from edge.contract import PreprocessContract, crop_face, eye_angle
from edge.detect import BlazeFaceDetector, Detection, HaarDetector, create_detector, create_finder
from edge.detect.blazeface import (
    LARGE_FACE,
    LARGE_FACE_SCORE,
    VARIANTS,
    bundled_model_path,
    ssd_anchors,
)
from edge.detect.config import detector_config
from edge.errors import ConfigError, DetectorError, ModelError
from edge.testing.facevideo import blank, place, room
from edge.track import iou

X, Y = 220, 110  # where the pasted face's box starts


def _ck_faces(ckplus_dir: Path, n: int) -> list[np.ndarray]:
    files = sorted(ckplus_dir.glob("*/*.png"))
    picked = files[:: max(1, len(files) // n)][:n]  # every class, several subjects
    return [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in picked]


@pytest.fixture(scope="module")
def ck_faces(ckplus_dir: Path) -> list[np.ndarray]:
    return _ck_faces(ckplus_dir, 12)


@pytest.fixture(scope="module")
def short() -> BlazeFaceDetector:
    return BlazeFaceDetector("short")


@pytest.fixture(scope="module")
def full() -> BlazeFaceDetector:
    return BlazeFaceDetector("full")


def _on_face(d, side: int) -> bool:
    """The box is centred on the pasted face (within a quarter side) and about its size."""
    cx, cy = X + side / 2, Y + side / 2
    return (
        abs(d.x + d.w / 2 - cx) < side / 4
        and abs(d.y + d.h / 2 - cy) < side / 4
        and 0.6 * side < d.w < 1.6 * side
    )


def _rotated(px: float, py: float, side: int, roll: float) -> tuple[float, float]:
    """Where a point of the upright pasted face lands after ``place(..., roll)``."""
    m = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), roll, 1.0)
    x, y = px - X, py - Y
    return (m[0, 0] * x + m[0, 1] * y + m[0, 2] + X, m[1, 0] * x + m[1, 1] * y + m[1, 2] + Y)


def test_anchor_layouts_match_the_model_outputs() -> None:
    assert len(ssd_anchors(128, (8, 16, 16, 16), True)) == 896
    assert len(ssd_anchors(192, (4,), False)) == 2304
    a = ssd_anchors(128, (8, 16, 16, 16), True)
    # First cell of the stride-8 map, two anchors at its centre; last anchor at the last cell.
    assert np.allclose(a[0], [0.5 / 16, 0.5 / 16]) and np.allclose(a[1], a[0])
    assert np.allclose(a[-1], [7.5 / 8, 7.5 / 8])


@pytest.mark.parametrize(
    # Measured: short 100 % at these sizes; full 89-100 % (it scores tight CK+48 crops, which
    # have no hair or ears around them, lower: 0.55-0.85 against 0.85-0.93 for short).
    ("variant", "sides", "min_recall"),
    [("short", (140, 200, 260), 0.95), ("full", (90, 160, 240), 0.85)],
)
@pytest.mark.parametrize("roll", [-20.0, 0.0, 20.0])
def test_boxes_and_keypoints_land_on_pasted_ck_faces(
    request: pytest.FixtureRequest,
    ck_faces: list[np.ndarray],
    variant: str,
    sides: tuple[int, ...],
    min_recall: float,
    roll: float,
) -> None:
    det: BlazeFaceDetector = request.getfixturevalue(variant)
    found = 0
    angles = []
    for side in sides:
        for face in ck_faces:
            c = blank()
            place(c, face, X, Y, side, roll)
            dets = det.detect(c)
            hits = [d for d in dets if _on_face(d, side)]
            assert len(dets) - len(hits) == 0, f"false positive at side {side}: {dets}"
            if not hits:
                continue
            found += 1
            d = hits[0]
            assert len(d.keypoints) == 6 and 0 < d.score <= 1
            # Every keypoint is on the (turned) face square, ears at most a bit outside.
            for kx, ky in d.keypoints[:4]:
                ux, uy = _rotated(kx, ky, side, -roll)  # back to the upright face
                assert X - 0.05 * side < ux < X + 1.05 * side and Y < uy < Y + side
            # Eyes above the nose, nose above the mouth (upright face coordinates); the
            # person's right eye on the image left.
            up = [_rotated(kx, ky, side, -roll) for kx, ky in d.keypoints[:4]]
            (rex, rey), (lex, ley), (_, ny), (_, my) = up
            assert rex < lex and max(rey, ley) < ny < my
            angle = eye_angle(d.keypoints[:2])
            assert angle is not None
            angles.append(angle)
    n = len(sides) * len(ck_faces)
    assert found >= min_recall * n, f"{variant}: {found}/{n} faces found at roll {roll}"
    # place() turns counter-clockwise on screen: the eye line then rises to the image right.
    assert abs(float(np.median(angles)) + roll) < 6.0, (roll, np.median(angles))


def test_small_faces_need_a_region_or_tiles(
    ck_faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    # A 90 px face is 18 px of the 128 px input in a full 640x480 pass: too small for the
    # short-range model. A region search (motion gate, followed face) or a 2x2 tiled full pass
    # sees it larger.
    tiled = BlazeFaceDetector("short", tiles=2)
    found_full = found_roi = found_tiled = 0
    for face in ck_faces:
        c = blank()
        place(c, face, X, Y, 90)
        found_full += any(_on_face(d, 90) for d in short.detect(c))
        found_roi += any(_on_face(d, 90) for d in short.detect(c, (X - 90, Y - 90, 270, 270)))
        found_tiled += any(_on_face(d, 90) for d in tiled.detect(c))
    n = len(ck_faces)
    assert found_full <= n // 4, found_full
    assert found_roi >= 0.9 * n and found_tiled >= 0.9 * n, (found_roi, found_tiled)


def test_full_pass_keeps_a_followed_face_it_cannot_see(
    ck_faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    c = blank()
    place(c, ck_faces[0], X, Y, 90)
    finder = create_finder(detector_config(type="blazeface", motion_gate=False), short)
    assert not any(_on_face(d, 90) for d in finder.find(c, []))  # full pass, nothing followed
    # The face is followed (found by a region search before): the next full pass keeps it.
    finder._force_full = True
    found = finder.find(c, [(X, Y, 90.0, 90.0)])
    assert finder.full_rescues == 1 and any(_on_face(d, 90) for d in found)


def test_gated_full_pass_also_searches_what_moved(
    ck_faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    # A small face appears on a frame where a full pass is due (here: forced, as after a lost
    # face). The full pass cannot see it, and the next frame compares with this one, so its
    # motion is searched in the same frame or never.
    finder = create_finder(detector_config(type="blazeface"), short)
    assert finder.find(blank(), []) == []  # first frame: full pass, motion reference
    c = blank()
    place(c, ck_faces[1], X, Y, 90)
    finder._force_full = True
    found = finder.find(c, [])
    assert finder.full_runs == 2 and any(_on_face(d, 90) for d in found), found


def test_sample_video_one_face_per_frame_like_haar() -> None:
    from edge.config import default_sample_path

    cap = cv2.VideoCapture(str(default_sample_path()))
    haar = HaarDetector()
    dets = {v: BlazeFaceDetector(v) for v in VARIANTS}
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        haar_boxes = [d.bbox for d in haar.detect(gray)]  # the face (and a rare extra box)
        for v, det in dets.items():
            found = det.detect(gray)
            assert len(found) == 1, (v, frames, found)
            assert max(iou(found[0].bbox, b) for b in haar_boxes) > 0.5, (v, frames, found)
            # Eyes inside the upper half of the box, nose below them.
            (rx, ry), (lx, ly), (_, ny) = found[0].keypoints[:3]
            assert found[0].x < rx < lx < found[0].x + found[0].w
            assert found[0].y < min(ry, ly) < ny
    assert frames == 40


def test_eye_alignment_levels_the_eye_line(
    ck_faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    """Crop a 20-degree rolled face with and without ``align = "eyes"``, paste each crop into a
    fresh frame and measure its eye line again with the detector."""
    aligned = PreprocessContract(size=160, align="eyes")
    plain = PreprocessContract(size=160)
    before, after = [], []
    for face in ck_faces:
        c = blank()
        place(c, face, X, Y, 220, 20.0)
        (d,) = [d for d in short.detect(c) if _on_face(d, 220)]
        for contract, out in ((plain, before), (aligned, after)):
            crop = crop_face(c, d.bbox, contract, d.eyes)
            frame = blank()
            frame[100:260, 200:360] = crop
            (again,) = short.detect(frame)
            angle = eye_angle(again.keypoints[:2])
            assert angle is not None
            out.append(angle)
    assert abs(float(np.median(before)) + 20.0) < 6.0  # still rolled without alignment
    assert abs(float(np.median(after))) < 4.0, after  # level with it
    # Per face the keypoints are a few degrees off (measured: up to 11); on average level.
    assert float(np.mean(np.abs(after))) < 0.4 * float(np.mean(np.abs(before))), (before, after)


def test_alignment_is_a_no_op_without_keypoints(ck_faces: list[np.ndarray]) -> None:
    c = blank()
    place(c, ck_faces[0], X, Y, 200, 15.0)
    box = (X, Y, 200, 200)
    eyes = PreprocessContract(align="eyes")
    assert np.array_equal(crop_face(c, box, eyes, None), crop_face(c, box, PreprocessContract()))


def test_contract_align_key_is_additive() -> None:
    old = PreprocessContract().to_dict()
    assert "align" not in old  # unaligned metadata stays as it was
    assert PreprocessContract.from_dict(old).align == "none"
    d = PreprocessContract(align="eyes").to_dict()
    assert d["align"] == "eyes" and PreprocessContract.from_dict(d).align == "eyes"
    with pytest.raises(ModelError, match="align 'tilt' is not one of"):
        PreprocessContract.from_dict({**old, "align": "tilt"})


# ------------------------------------------------------------------------------ config
def test_detector_tables_are_typed_plugins() -> None:
    cfg = validate_config({"detector": {"type": "blazeface", "variant": "full"}})
    det = create_detector(cfg.detector)
    assert isinstance(det, BlazeFaceDetector) and det.variant.name == "full"
    assert det.score_threshold == 0.6
    # The motion gate and region search work with it like with Haar.
    finder = create_finder(cfg.detector, det)
    assert finder.motion is not None
    # A table without type is the default detector, BlazeFace; one that sets a Haar-only key
    # was written for Haar (the default before) and stays Haar.
    assert validate_config({"detector": {"min_face": 50}}).detector.type == "blazeface"
    old = validate_config({"detector": {"min_face": 50, "detect_width": 240}}).detector
    assert old.type == "haar" and old.detect_width == 240
    with pytest.raises(ConfigError) as e:
        validate_config({"detector": {"type": "haar", "variant": "short", "model": "y.onnx"}})
    msg = str(e.value)
    assert "detector.variant: unknown key for type 'haar'" in msg
    assert "detector.model: unknown key for type 'haar'" in msg and "cascade" in msg
    with pytest.raises(ConfigError, match="detector.sha256"):
        validate_config({"detector": {"type": "blazeface", "sha256": "abc"}})


def test_detector_flag_overrides_the_config_type(tmp_path: Path, capsys) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text(
        '[detector]\ntype = "haar"\ncascade = "haarcascade_frontalface_alt.xml"\n'
        "detect_width = 320\nmin_face = 48\nmotion_gate = false\n"
    )
    cfg = load_config(toml, {"detector": {"type": "blazeface"}})
    assert cfg.detector.type == "blazeface"
    assert cfg.detector.min_face == 48 and cfg.detector.motion_gate is False  # schedule kept
    jsonl = tmp_path / "ev.jsonl"
    rc = main(
        ["run", "--config", str(toml), "--detector", "blazeface", "--max-frames", "40"]
        + ["--jsonl", str(jsonl), "--log-level", "WARNING"]
    )
    assert rc == 0
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert {e["type"] for e in events} >= {"start", "end"}
    with pytest.raises(SystemExit):
        main(["run", "--detector", "dlib"])
    assert "invalid choice: 'dlib'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ bad models
def _bad_models(tmp_path: Path) -> list[tuple[dict[str, str], str]]:
    short, full = bundled_model_path("short"), bundled_model_path("full")
    corrupt = tmp_path / "corrupt.tflite"
    data = bytearray(short.read_bytes())
    data[64:4096] = bytes(4032)  # the flatbuffer's tables are gone, the size is right
    corrupt.write_bytes(bytes(data))
    return [
        ({"model": str(tmp_path / "nope.tflite")}, "not found (expected face_detection_short"),
        ({"model": str(full)}, f"has sha256 {VARIANTS['full'].sha256[:16]}..., expected"),
        (
            {"model": str(corrupt), "sha256": hashlib.sha256(bytes(data)).hexdigest()},
            "is not a loadable TFLite model",
        ),
        (
            {"model": str(full), "sha256": VARIANTS["full"].sha256},
            "expected float32 input [1, 128, 128, 3] and outputs [1, 896, 16] and [1, 896, 1]",
        ),
    ]


def test_bad_model_files_are_one_line_detector_errors(tmp_path: Path) -> None:
    for keys, message in _bad_models(tmp_path):
        cfg = detector_config(type="blazeface", **keys)
        with pytest.raises(DetectorError) as e:
            create_detector(cfg)
        text = str(e.value)
        assert message in text and "\n" not in text, text
        assert Path(keys["model"]).name in text


@pytest.mark.slow
def test_bad_model_exits_2_with_nothing_started(tmp_path: Path, capsys) -> None:
    for i, (keys, message) in enumerate(_bad_models(tmp_path)):
        toml = tmp_path / f"bad{i}.toml"
        lines = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
        toml.write_text(f'[detector]\ntype = "blazeface"\n{lines}')
        jsonl = tmp_path / f"ev{i}.jsonl"
        rc = main(["run", "--config", str(toml), "--jsonl", str(jsonl)])
        out, err = capsys.readouterr()
        assert rc == 2
        (line,) = [ln for ln in err.splitlines() if "error:" in ln]
        assert message in line and "Traceback" not in err
        assert out == "" and not jsonl.exists()  # no event, no sink opened
        assert main(["validate-config", str(toml)]) == 2
        assert message in capsys.readouterr().err


def test_max_face_drops_boxes_taller_than_the_limit(ck_faces: list[np.ndarray]) -> None:
    c = blank()
    place(c, ck_faces[2], 150, 20, 300)
    assert any(d.h > 200 for d in BlazeFaceDetector("short").detect(c))
    capped = BlazeFaceDetector("short", max_face=0.4)  # 0.4 x 480 = 192 px
    assert capped.detect(c) == [] and capped.detect(c, (100, 0, 400, 400)) == []


def test_large_boxes_need_a_high_score(
    ck_faces: list[np.ndarray], short: BlazeFaceDetector
) -> None:
    # Real faces filling half the frame or more score high (the model sees them at full
    # resolution), so they pass; a large box with the score of hard-long's wall pattern
    # (0.60-0.69) does not, a small one with that score does.
    for k, side in enumerate((300, 340, 380, 420, 470)):
        c = room(k)
        place(c, ck_faces[k], (640 - side) // 2, (480 - side) // 2, side)
        big = [d for d in short.detect(c) if d.h >= LARGE_FACE * 480]
        assert len(big) == 1 and big[0].score >= LARGE_FACE_SCORE, (side, big)
    wall = Detection(100, 0, 300, 300, 0.65)
    assert not short._plausible(wall, 480)
    assert short._plausible(dataclasses.replace(wall, score=0.9), 480)
    assert short._plausible(Detection(100, 0, 200, 200, 0.65), 480)


def test_classifier_crop_frames_a_face_as_fer2013_does(
    fer_slice_csv: Path, short: BlazeFaceDetector
) -> None:
    # FER2013 faces pasted into a textured room: the classifier's crop (crop_box widened by the
    # contract's margin) is about the original 48x48 crop, as the classifier was trained on.
    # With the whole box (crop_scale 1) it was 1.13x (median over 579 PublicTest faces).
    from edge.contract import DEFAULT_CONTRACT, square_box
    from edge.testing.facevideo import load_fer_faces

    ratios = []
    for k, face in enumerate(load_fer_faces(fer_slice_csv, 40)):
        side = 100 + 4 * k
        c = room(k)
        place(c, face, 200, 100, side)
        roi = (200 - side // 2, 100 - side // 2, 2 * side, 2 * side)
        hits = [
            d
            for d in short.detect(c, roi, face_side=side)
            if iou(d.bbox, (200, 100, side, side)) > 0.3
        ]
        if hits:
            crop = square_box(short.crop_box(hits[0]), DEFAULT_CONTRACT.crop_margin, 640, 480)
            ratios.append(crop[2] / side)
    assert len(ratios) >= 30
    assert 0.9 < float(np.median(ratios)) < 1.05, np.median(ratios)
    d = Detection(10, 20, 100, 100)
    assert short.crop_box(d) == (17.5, 27.5, 85.0, 85.0)
    assert HaarDetector().crop_box(d) == d.bbox
