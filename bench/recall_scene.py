"""Detection recall when faces come and go: what each detector schedule costs and misses.

640x480 scenes generated at run time from real FER2013 faces (never stored), 240 frames each:

* ``staggered``: six 120 px faces that OpenCV's Haar cascade can see pop up at staggered times
  (while others are already followed) and drift by a pixel per frame for 70-100 frames;
* ``walk-in``: five faces walk in from the left or right edge at 8 px per frame, stop, and stay
  for 90-100 frames, again while others are followed;
* ``pan``: the camera pans across the room at 6 px per frame (motion everywhere, the worst
  case for motion gating); five faces, still in the room, pop up at staggered times;
* ``empty``: no face at all (what an empty room costs).

Each scene is rendered twice: ``clean`` (flat gray, no noise: the original scene, which flatters
anything that looks at frame differences) and ``realistic`` (edge/testing/facevideo.py's REALISTIC
camera: textured room background, Gaussian sensor noise of 3 gray levels per frame, a +-6 %
exposure drift over 150 frames, plus a lamp step of +15 % at frame 120). The pipeline runs in
process with each detector config on the same MJPG file. Reported per scene and config: recall
over all (frame, fully visible face) pairs, the frames each new face waited from its first
fully visible frame until it was first detected, false-positive boxes, full-frame passes,
frames that searched moving regions, and the frame loop's CPU ms per frame (process CPU time;
pin with taskset for comparable numbers).

    taskset -c 0 python3 bench/recall_scene.py --json docs/perf/recall_motion.json
    python3 bench/recall_scene.py --write-empty /tmp/bench/empty640.avi   # for fer-edge bench
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from benchvideo import hit  # noqa: E402

from edge.app import FrameRecord, Pipeline  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.publish.jsonl import JsonlSink  # noqa: E402
from edge.testing.facevideo import (  # noqa: E402
    REALISTIC,
    Camera,
    Placement,
    detectable,
    load_fer_faces,
    render,
    write_video,
)

N_FRAMES = 240
#: The realistic camera of the benchmark: REALISTIC plus a lamp switched on at frame 120.
BENCH_CAMERA = dataclasses.replace(REALISTIC, exposure_steps=((120, 1.15),))
CAMERAS: dict[str, Camera | None] = {"clean": None, "realistic": BENCH_CAMERA}
#: Pan speed of the ``pan`` scene (90 px/s at 15 fps: faster than the motion tolerance).
PAN_PX = 6
CONFIGS: dict[str, dict[str, Any]] = {
    "periodic every 5 (old default)": {"motion_gate": False, "detect_every": 5},
    "periodic every 15": {"motion_gate": False, "detect_every": 15},
    "motion gate, full_every 30": {"motion_gate": True, "full_every": 30},
    "motion gate, full_every 60": {"motion_gate": True, "full_every": 60},
    "motion gate, full_every 30, still_frames 0": {
        "motion_gate": True,
        "full_every": 30,
        "still_frames": 0,
    },
    "full pass every frame": {"motion_gate": False, "detect_every": 1},
}


def select_configs(ap: argparse.ArgumentParser, configs: dict[str, Any], names: str | None) -> None:
    """Keep only the configs named in ``names`` (semicolon-separated; ``None``: all); an
    unknown name is a usage error (exit 2) listing the valid ones."""
    if not names:
        return
    keep = names.split(";")
    unknown = [n for n in keep if n not in configs]
    if unknown:
        ap.error(f"unknown config {unknown[0]!r}; valid: {'; '.join(configs)}")
    for name in list(configs):
        if name not in keep:
            del configs[name]


def staggered(idx: list[int]) -> list[Placement]:
    """Six faces popping up at staggered times and drifting (the original scene)."""
    starts = [0, 20, 55, 90, 130, 170]
    pos = [(40, 40), (450, 300), (250, 40), (40, 320), (460, 60), (250, 280)]
    step = [(1, 0), (-1, -1), (0, 1), (1, -1), (-1, 1), (1, 0)]
    return [
        Placement(i, range(s, min(N_FRAMES, s + 70 + 6 * k)), 120, p, d)
        for k, (i, s, p, d) in enumerate(zip(idx, starts, pos, step, strict=True))
    ]


def walk_in(idx: list[int]) -> list[Placement]:
    """Five faces walking in from the side edges at 8 px per frame, then standing still."""
    # (start frame, start x, y, step x, frames walking): each ends fully inside the frame.
    walks = [
        (0, -120, 60, 8, 30),  # from the left, stops at x = 120
        (25, 640, 300, 8, 30),  # from the right, stops at x = 400
        (60, -120, 300, 8, 28),  # from the left, stops at x = 104
        (110, 640, 40, 8, 23),  # from the right, stops at x = 456
        (150, -120, 170, 8, 46),  # from the left, stops at x = 248
    ]
    out = []
    for k, (start, x, y, sx, n) in enumerate(walks):
        step = (sx if x < 0 else -sx, 0)
        out.append(
            Placement(idx[k], range(start, min(N_FRAMES, start + 90 + 3 * k)), 120, (x, y), step, n)
        )
    return out


def pan(idx: list[int]) -> list[Placement]:
    """Five faces still in a room the camera pans across at PAN_PX per frame."""
    starts = [0, 30, 70, 110, 150]
    pos = [(480, 40), (500, 300), (490, 170), (480, 40), (500, 300)]
    return [
        Placement(i, range(s, min(N_FRAMES, s + 60)), 120, p, (-PAN_PX, 0))
        for i, s, p in zip(idx, starts, pos, strict=False)
    ]


def write_scene(
    path: Path, faces: list, placements: list[Placement], camera: Camera | None
) -> Path:
    """Render and write one scene video."""
    return write_video(path, render(faces, placements, N_FRAMES, camera))


def run_pipeline(
    video: Path, det: dict[str, Any], events: Path, model: dict[str, Any] | None = None
) -> tuple[Pipeline, list[tuple[tuple[float, float, float, float], ...]], float]:
    """Run the pipeline in process on ``video`` with a ``[detector]`` table (and a ``[model]``
    table; default: the package's); events go to the JSONL file ``events``. Returns the
    pipeline, each frame's boxes and the frame loop's process CPU seconds."""
    over: dict[str, Any] = {"source": {"type": "file", "path": str(video)}, "detector": det}
    if model is not None:
        over["model"] = model
    cfg = load_config(None, over)
    per_frame: list[tuple[tuple[float, float, float, float], ...]] = []
    cpu = [0.0]

    def hook(rec: FrameRecord) -> None:
        per_frame.append(rec.boxes)
        cpu[0] += sum(rec.cpu_s)

    pipe = Pipeline(cfg, sinks=[JsonlSink(events)], frame_hook=hook)
    pipe.run()
    return pipe, per_frame, cpu[0]


def run(video: Path, placements: list[Placement], det: dict[str, Any], tmp: Path) -> dict:
    """Recall, waits, false positives, detector work and CPU of one detector config."""
    pipe, per_frame, cpu_s = run_pipeline(video, det, tmp / "ev.jsonl")
    finder = pipe.finder
    assert finder is not None
    pairs = found = fp = 0
    waits: list[int | None] = []
    for p in placements:
        inside = [f for f in p.frames if p.inside(f)]
        first = None
        for f in inside:
            pairs += 1
            ok = any(hit(b, p.box(f)) for b in per_frame[f])
            found += ok
            if ok and first is None:
                first = f - inside[0]
        waits.append(first)
    for f, boxes in enumerate(per_frame):
        visible = [p.box(f) for p in placements if f in p.frames]
        fp += sum(not any(hit(b, t) for t in visible) for b in boxes)
    return {
        "recall": round(found / pairs, 4) if pairs else None,
        "pairs": pairs,
        "found": found,
        "frames_to_first_detection": waits,
        "false_positives": fp,
        "full_passes": finder.full_runs,
        "motion_region_frames": finder.motion_runs,
        "motion_full_passes": finder.motion_full_runs,
        "motion_skipped_frames": finder.motion_skipped,
        "motion_searched_frame_areas": round(finder.motion_area, 2),
        "frames": len(per_frame),
        "cpu_ms_per_frame": round(cpu_s / max(1, len(per_frame)) * 1e3, 3),
    }


def main() -> None:
    """Run every config on every scene and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--csv",
        type=Path,
        default=REPO.parent / "shared/data/fer2013/fer2013-train-publictest.csv.gz",
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--write-empty",
        type=Path,
        metavar="AVI",
        help="only write the realistic empty scene (300 frames) to this file and exit",
    )
    ap.add_argument("--scenes", default="staggered,walk-in,pan,empty", help="comma-separated")
    ap.add_argument("--cameras", default="clean,realistic", help="comma-separated")
    ap.add_argument("--configs", help="semicolon-separated subset of the config names")
    args = ap.parse_args()
    select_configs(ap, CONFIGS, args.configs)
    if args.write_empty:
        args.write_empty.parent.mkdir(parents=True, exist_ok=True)
        write_video(args.write_empty, render([], [], 300, BENCH_CAMERA))
        print(f"{args.write_empty}: 300 empty realistic frames")
        return
    faces = load_fer_faces(args.csv, 200)
    idx = detectable(faces, side=120, want=6)
    scenes = {"staggered": staggered(idx), "walk-in": walk_in(idx), "pan": pan(idx), "empty": []}
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for scene in args.scenes.split(","):
            for cam in args.cameras.split(","):
                if scene in ("empty", "pan") and cam == "clean":
                    continue  # a still, noise-free empty frame is not a measurement
                key = f"{scene} / {cam}"
                camera = CAMERAS[cam]
                if scene == "pan" and camera is not None:
                    camera = dataclasses.replace(camera, pan_px=PAN_PX)
                video = write_scene(tmp / "scene.avi", faces, scenes[scene], camera)
                out[key] = {}
                for name, det in CONFIGS.items():
                    r = run(video, scenes[scene], det, tmp)
                    out[key][name] = r
                    print(f"{key:24} {name:32} {json.dumps(r)}", flush=True)
    if args.json:
        tmp_json = args.json.with_suffix(".tmp")
        tmp_json.write_text(json.dumps(out, indent=2) + "\n")
        tmp_json.replace(args.json)


if __name__ == "__main__":
    main()
