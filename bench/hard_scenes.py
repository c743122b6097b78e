"""Hard scenes: detection and end-to-end emotion accuracy per detector, beside the ``fer`` package.

Scenes are generated at run time from real CK+48 faces (labelled, never stored) on
edge/testing/facevideo.py's realistic camera, 640x480 at 15 fps:

* ``hard`` (1200 frames): faces come and go in two halves of the frame (55-75 frames each, 8-20
  frames apart, at most two at a time), 60-260 px, head roll -20..+20 degrees, each drifting for 30
  frames then still; textured room, uneven light (a window: +-30 % from corner to corner),
  sensor noise of 4 gray levels, +-6 % exposure drift and a lamp step at frame 300;
* ``hard-long`` (3600 frames): the hard scene three times as long, for end-to-end accuracy
  with less noise (run it with ``--faces 90`` and a few ``--configs``);
* ``posed`` (900 frames): the same faces upright, 150-200 px, on a plain, evenly lit, noise-free canvas
  (the easy case, where posed photos are what the classifier was made for).

Per detector config the pipeline runs in process on the MJPG file (pin the whole script to one
core: ``taskset -c 1``). Reported: recall over (frame, fully visible face) pairs, overall and for
faces of >= 80 px; false-positive boxes per 1,000 frames; CPU ms per frame of the frame loop
(decode included); and **end-to-end accuracy**: for each face appearance, the emotion of the
last event the device published for it (its belief when the face leaves: the ``end`` event, or
the last ``change``/``update`` before it), compared with the CK+48 label. ``fer`` (Haar +
mini-XCEPTION, in its own venv) runs on the same file through bench/fer_runner.py; having no
tracking, its answer per appearance is its top emotion in the last frame it found that face
(``last``), and, as a second reading, the most frequent top emotion over the appearance
(``vote``). A face never reported counts as wrong for both.

``--model-config TOML`` runs every config with that file's ``[model]`` table instead of the
package's classifier (another model on the same videos; the scenes are seeded, so identical).

``--steady VIDEO`` adds CPU per frame and recall of each config on the steady one-face
benchmark video (bench/benchvideo.py; no emotion ground truth there).

    taskset -c 1 python3 bench/hard_scenes.py --fer-python /tmp/fer-venv/bin/python \\
        --steady /tmp/bench/astro640.avi --json docs/perf/hard_scenes.json
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from benchvideo import hit, load_truth  # noqa: E402
from recall_scene import run_pipeline, select_configs  # noqa: E402

from edge.atomic import write_json  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.errors import FerEdgeError  # noqa: E402
from edge.testing.facevideo import REALISTIC, Camera, Placement, render, write_video  # noqa: E402

FPS = 15.0
HARD_CAMERA = dataclasses.replace(
    REALISTIC, noise_sigma=4.0, light_gradient=0.3, exposure_steps=((300, 1.15),), seed=11
)
SCENES: dict[str, dict[str, Any]] = {
    "hard": {"frames": 1200, "camera": HARD_CAMERA, "sides": (60, 260), "roll": 20.0},
    "posed": {"frames": 900, "camera": None, "sides": (150, 200), "roll": 0.0},
    # The hard scene three times as long (90 appearances with --faces 90): one face is 1.1
    # points of accuracy there instead of 3.6, for comparing the leading configs.
    "hard-long": {"frames": 3600, "camera": HARD_CAMERA, "sides": (60, 260), "roll": 20.0},
}
#: Detector configs: name -> [detector] table.
_GATE = {"motion_gate": True}
_EVERY = {"motion_gate": False, "detect_every": 1}
CONFIGS: dict[str, dict[str, Any]] = {
    "haar, periodic every 5": {"type": "haar", "motion_gate": False, "detect_every": 5},
    "haar + gate, still_frames 0": {"type": "haar", **_GATE, "still_frames": 0},
    "haar + gate": {"type": "haar", **_GATE},
    "blazeface short + gate": {"type": "blazeface", "variant": "short", **_GATE, "align": "none"},
    "blazeface short + gate, still_frames 0": {
        "type": "blazeface",
        "variant": "short",
        **_GATE,
        "align": "none",
        "still_frames": 0,
    },
    "blazeface short + gate, eyes": {"type": "blazeface", "variant": "short", **_GATE},
    "blazeface short every frame": {"type": "blazeface", "variant": "short", **_EVERY},
    "blazeface short every frame, eyes": {"type": "blazeface", "variant": "short", **_EVERY},
    "blazeface full + gate": {"type": "blazeface", "variant": "full", **_GATE, "align": "none"},
    "blazeface full + gate, eyes": {"type": "blazeface", "variant": "full", **_GATE},
    "blazeface full every frame": {"type": "blazeface", "variant": "full", **_EVERY},
    "blazeface full every frame, eyes": {"type": "blazeface", "variant": "full", **_EVERY},
}
for _name, _det in CONFIGS.items():
    if _det["type"] == "blazeface" and "align" not in _det:
        _det["align"] = "eyes" if _name.endswith("eyes") else "none"


def ck_faces(ckplus: Path, n: int) -> tuple[list[np.ndarray], list[str]]:
    """``n`` CK+48 faces with a FER2013 label (no contempt), the last frame of a sequence,
    cycling through the classes, one subject at most once per class."""
    from edge.contract import FER2013_LABELS

    by_class: dict[str, list[tuple[str, str]]] = {}
    with (ckplus / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    last: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        if int(r["fer2013_id"]) < 0:
            continue
        key = (r["subject"], r["sequence"])
        if key not in last or int(r["frame"]) > int(last[key]["frame"]):
            last[key] = r
    for (subject, _), r in sorted(last.items()):
        by_class.setdefault(FER2013_LABELS[int(r["fer2013_id"])], []).append((subject, r["file"]))
    faces, labels = [], []
    classes = sorted(by_class)
    used: set[str] = set()
    k = 0
    while len(faces) < n:
        cls = classes[k % len(classes)]
        pick = next(((s, f) for s, f in by_class[cls] if s not in used), by_class[cls][0])
        used.add(pick[0])
        img = cv2.imread(str(ckplus / pick[1]), cv2.IMREAD_GRAYSCALE)
        faces.append(img)
        labels.append(cls)
        k += 1
    return faces, labels


def placements(spec: dict[str, Any], n_faces: int, seed: int = 3) -> list[Placement]:
    """Faces coming and going in the left and right half of the frame (see module doc)."""
    rng = np.random.default_rng(seed)
    frames, (lo, hi), max_roll = spec["frames"], spec["sides"], spec["roll"]
    out: list[Placement] = []
    # Sizes spread evenly over lo..hi (shuffled), so small faces are always among them.
    sides = rng.permutation(np.linspace(lo, hi, n_faces).round().astype(int))
    k = 0
    for slot, (x0, x1) in enumerate(((0, 320), (320, 640))):
        t = int(rng.integers(0, 15)) + 10 * slot
        while k < n_faces:
            length = int(rng.integers(55, 76))
            if t + length > frames:
                break
            side = int(sides[k])
            step = (1, 0) if rng.random() < 0.5 else (0, 1)
            xmax = max(x0, x1 - side - 30)
            x = int(rng.integers(x0, xmax + 1)) if xmax > x0 else x0
            y = int(rng.integers(0, max(1, 480 - side - 30)))
            roll = float(rng.uniform(-max_roll, max_roll)) if max_roll else 0.0
            out.append(Placement(k, range(t, t + length), side, (x, y), step, 30, round(roll, 1)))
            k += 1
            t += length + int(rng.integers(8, 21))
    return out


def _matches(box: Any, p: Placement, frame: int) -> bool:
    f = min(max(frame, p.frames.start), p.frames.stop - 1)
    return hit(box, p.box(f))


def device_answers(events: list[dict[str, Any]], pls: list[Placement], max_missed: int) -> list:
    """The device's last reported emotion for each appearance (``None``: never reported).

    Events while the face is visible count, and after it left only ``end`` events (up to
    ``max_missed + 1`` frames later, when a track ends): an ``end`` carries the track's belief
    at its last detection, while any other event after the face left was caused by a detection
    of something else (the next face at the same place taking over the track)."""
    out = []
    for p in pls:
        last = None
        for e in events:
            if e["frame"] >= p.frames.stop and e["type"] != "end":
                continue
            if p.frames.start <= e["frame"] <= p.frames.stop + max_missed + 1 and _matches(
                e["bbox"], p, e["frame"]
            ):
                last = e["emotion"]
        out.append(last)
    return out


def detection_scores(per_frame: list, pls: list[Placement]) -> dict[str, Any]:
    """Recall (all faces and faces >= 80 px), false positives per 1,000 frames, and frames
    from each appearance's first fully visible frame to its first detection (mean, max)."""
    pairs = found = pairs80 = found80 = fp = 0
    waits: list[int | None] = []
    for p in pls:
        inside = [f for f in p.frames if f < len(per_frame) and p.inside(f)]
        oks = [any(hit(b, p.box(f)) for b in per_frame[f]) for f in inside]
        waits.append(next((inside[k] - inside[0] for k, ok in enumerate(oks) if ok), None))
        pairs += len(oks)
        found += sum(oks)
        if p.side >= 80:
            pairs80 += len(oks)
            found80 += sum(oks)
    for f, boxes in enumerate(per_frame):
        visible = [p.box(f) for p in pls if f in p.frames]
        fp += sum(not any(hit(b, t) for t in visible) for b in boxes)
    found_waits = [w for w in waits if w is not None]
    return {
        "recall": round(found / max(1, pairs), 4),
        "recall_80px": round(found80 / max(1, pairs80), 4),
        "false_pos_per_1000_frames": round(fp * 1000 / max(1, len(per_frame)), 1),
        "frames_to_first_detection": {
            "mean": round(float(np.mean(found_waits)), 2) if found_waits else None,
            "max": max(found_waits) if found_waits else None,
            "never": len(waits) - len(found_waits),
        },
    }


def false_tracks(events: list[dict[str, Any]], pls: list[Placement]) -> int:
    """Published tracks (``start`` events) whose box matches no face visible in that frame:
    the false faces a user of the device sees (boxes of tentative tracks never published are
    counted by ``false_pos_per_1000_frames`` only)."""
    return sum(
        e["type"] == "start"
        and not any(e["frame"] in p.frames and hit(e["bbox"], p.box(e["frame"])) for p in pls)
        for e in events
    )


def run_edge(
    video: Path, det: dict[str, Any], tmp: Path, model: dict[str, Any] | None = None
) -> tuple[list, list, float, int]:
    """Per-frame boxes, events, CPU ms per frame and detector model runs (BlazeFace; 0 for
    the OpenCV detectors) of one detector config (and ``[model]`` table: default, the
    package's)."""
    ev_path = tmp / "ev.jsonl"
    ev_path.unlink(missing_ok=True)
    pipe, per_frame, cpu = run_pipeline(video, det, ev_path, model)
    events = [json.loads(line) for line in ev_path.read_text().splitlines() if line]
    runs = getattr(pipe.finder.detector, "invocations", 0) if pipe.finder else 0
    return per_frame, events, cpu / max(1, len(per_frame)) * 1e3, runs


def run_fer(python: str, video: Path, frames: int, tmp: Path) -> dict[str, Any]:
    """fer_runner.py in fer's venv on the same core as this process."""
    out = tmp / "fer.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [python, str(REPO / "bench" / "fer_runner.py"), str(video), str(frames), str(out)]
    subprocess.run(cmd, check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def fer_answers(rep: dict[str, Any], pls: list[Placement]) -> tuple[list, list]:
    """fer's answer per appearance: last frame's top emotion, and the most frequent one."""
    last, vote = [], []
    for p in pls:
        seen = [
            emo
            for f in p.frames
            if f < len(rep["boxes"])
            for box, emo in zip(rep["boxes"][f], rep["emotions"][f], strict=True)
            if hit(box, p.box(f))
        ]
        last.append(seen[-1] if seen else None)
        vote.append(Counter(seen).most_common(1)[0][0] if seen else None)
    return last, vote


def accuracy(answers: list, labels: list[str]) -> float:
    return round(sum(a == t for a, t in zip(answers, labels, strict=True)) / len(labels), 4)


def steady(video: Path, tmp: Path) -> dict[str, Any]:
    """CPU per frame and recall of every config on the one-face benchmark video."""
    truths = load_truth(video)
    out = {}
    for name, det in CONFIGS.items():
        per_frame, _, cpu, _ = run_edge(video, det, tmp)
        found = sum(
            any(hit(b, truths[i % len(truths)]) for b in boxes) for i, boxes in enumerate(per_frame)
        )
        fp = sum(
            sum(not hit(b, truths[i % len(truths)]) for b in boxes)
            for i, boxes in enumerate(per_frame)
        )
        out[name] = {
            "cpu_ms_per_frame": round(cpu, 3),
            "recall": round(found / len(per_frame), 4),
            "false_positives": fp,
        }
        print(f"steady {name:36} {json.dumps(out[name])}", flush=True)
    return out


def model_table(ap: argparse.ArgumentParser, path: Path | None) -> dict[str, Any] | None:
    """The ``[model]`` table of ``--model-config`` (checked by the config loader), or None."""
    if path is None:
        return None
    import tomllib

    try:
        table = tomllib.loads(path.read_text()).get("model")
        load_config(None, {"model": table or {}})
    except (OSError, tomllib.TOMLDecodeError, FerEdgeError) as e:
        ap.error(f"--model-config {path}: {e}")
    if not table:
        ap.error(f"--model-config {path}: no [model] table")
    return table


def main() -> None:
    """Render the scenes, run every config (and fer), print and save the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckplus", type=Path, default=REPO.parent / "shared/data/ckplus")
    ap.add_argument("--scenes", default="hard,posed", help="comma-separated")
    ap.add_argument("--faces", type=int, default=40, help="face appearances per scene (at most)")
    ap.add_argument("--configs", help="semicolon-separated subset of the config names")
    ap.add_argument("--fer-python", help="python of fer's venv (omit: no fer column)")
    ap.add_argument("--steady", type=Path, help="also the one-face benchmark video")
    ap.add_argument("--write", type=Path, metavar="DIR", help="keep the scene videos here")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--model-config",
        type=Path,
        metavar="TOML",
        help="a fer-edge config whose [model] table every config uses (another classifier on "
        "the same videos; default: the package's)",
    )
    args = ap.parse_args()
    select_configs(ap, CONFIGS, args.configs)
    model = model_table(ap, args.model_config)
    faces, labels = ck_faces(args.ckplus, args.faces)
    result: dict[str, Any] = {
        "command": " ".join(["python3", "bench/hard_scenes.py", *sys.argv[1:]]),
        "cpu": os.sched_getaffinity(0).__repr__(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "scenes": {},
        "model": model,
    }
    max_missed = load_config(None).tracking.max_missed
    with tempfile.TemporaryDirectory(prefix="hard-scenes-") as t:
        tmp = Path(t)
        for scene in args.scenes.split(","):
            spec = SCENES[scene]
            pls = placements(spec, len(faces))
            truth = [labels[p.face_index] for p in pls]
            cam: Camera | None = spec["camera"]
            folder = args.write or tmp
            folder.mkdir(parents=True, exist_ok=True)
            video = write_video(
                folder / f"{scene}.avi", render(faces, pls, spec["frames"], cam), FPS
            )
            res: dict[str, Any] = {
                "frames": spec["frames"],
                "appearances": len(pls),
                "labels": dict(Counter(truth)),
                "sides": [p.side for p in pls],
                "rolls": [p.roll for p in pls],
                "configs": {},
            }
            for name, det in CONFIGS.items():
                per_frame, events, cpu, runs = run_edge(video, det, tmp, model)
                answers = device_answers(events, pls, max_missed)
                r = {
                    **detection_scores(per_frame, pls),
                    "false_tracks": false_tracks(events, pls),
                    "detector_runs": runs,
                    "cpu_ms_per_frame": round(cpu, 3),
                    "e2e_accuracy": accuracy(answers, truth),
                    "reported": sum(a is not None for a in answers),
                }
                res["configs"][name] = r
                print(f"{scene:6} {name:36} {json.dumps(r)}", flush=True)
            if args.fer_python:
                rep = run_fer(args.fer_python, video, spec["frames"], tmp)
                last, vote = fer_answers(rep, pls)
                boxes = [[tuple(b) for b in fb] for fb in rep["boxes"]]
                res["fer"] = {
                    **detection_scores(boxes, pls),
                    "cpu_ms_per_frame": rep["per_frame_cpu_ms"]["with_decode"],
                    "e2e_accuracy_last": accuracy(last, truth),
                    "e2e_accuracy_vote": accuracy(vote, truth),
                    "reported": sum(a is not None for a in last),
                }
                print(f"{scene:6} {'fer':36} {json.dumps(res['fer'])}", flush=True)
            result["scenes"][scene] = res
        if args.steady:
            result["steady"] = steady(args.steady, tmp)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, result)


if __name__ == "__main__":
    main()
