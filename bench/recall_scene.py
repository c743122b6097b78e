"""Detection recall when faces come and go: the cost of full-frame detection every N frames.

A 640x480 scene generated at run time from real FER2013 faces (never stored): six faces that
OpenCV's Haar cascade can see, 120 px, drifting, each visible for 60-100 frames, entering at
staggered times while others are already followed, so a new face must wait for the next
full-frame pass. The pipeline runs in process with each detector config; reported per config:
recall over all (frame, visible face) pairs, the frames each new face waited until first
detected, and false positives.

    python3 bench/recall_scene.py --csv ../shared/data/fer2013/fer2013-train-publictest.csv.gz
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from benchvideo import hit  # noqa: E402
from facevideo import Placement, detectable, load_fer_faces, render, write_video  # noqa: E402

from edge.app import FrameRecord, Pipeline  # noqa: E402
from edge.config import load_config  # noqa: E402
from edge.publish.jsonl import JsonlSink  # noqa: E402

N_FRAMES = 240
CONFIGS: dict[str, dict[str, Any]] = {
    "before (every 5, roi 2.0, full-scale ROI)": {
        "detect_every": 5,
        "roi_scale": 2.0,
        "roi_face_px": 0,
    },
    "default now (every 15, roi 1.6, ROI at 32 px)": {},
    "every 10 (roi 1.6, ROI at 32 px)": {"detect_every": 10},
    "every 5 (roi 1.6, ROI at 32 px)": {"detect_every": 5},
    "every frame full (detect_every 1)": {"detect_every": 1},
}


def scene(csv: Path, tmp: Path) -> tuple[Path, list[Placement]]:
    """Write the scene video; return it and the placements (ground truth)."""
    faces = load_fer_faces(csv, 200)
    idx = detectable(faces, side=120, want=6)
    starts = [0, 20, 55, 90, 130, 170]
    pos = [(40, 40), (450, 300), (250, 40), (40, 320), (460, 60), (250, 280)]
    step = [(1, 0), (-1, -1), (0, 1), (1, -1), (-1, 1), (1, 0)]
    placements = [
        Placement(i, range(s, min(N_FRAMES, s + 70 + 6 * k)), 120, p, d)
        for k, (i, s, p, d) in enumerate(zip(idx, starts, pos, step, strict=True))
    ]
    return write_video(tmp / "scene.avi", render(faces, placements, N_FRAMES)), placements


def run(video: Path, placements: list[Placement], det: dict[str, Any], tmp: Path) -> dict:
    """Recall, waits and false positives of one detector config."""
    cfg = load_config(None, {"source": {"type": "file", "path": str(video)}, "detector": det})
    per_frame: list[tuple[tuple[float, float, float, float], ...]] = []

    def hook(rec: FrameRecord) -> None:
        per_frame.append(rec.boxes)

    Pipeline(cfg, sinks=[JsonlSink(tmp / "ev.jsonl")], frame_hook=hook).run()
    pairs = found = fp = 0
    waits = []
    for p in placements:
        first = None
        for f in p.frames:
            pairs += 1
            ok = any(hit(b, p.box(f)) for b in per_frame[f])
            found += ok
            if ok and first is None:
                first = f - p.frames.start
        waits.append(first)
    for f, boxes in enumerate(per_frame):
        visible = [p.box(f) for p in placements if f in p.frames]
        fp += sum(not any(hit(b, t) for t in visible) for b in boxes)
    return {
        "recall": round(found / pairs, 4),
        "pairs": pairs,
        "found": found,
        "frames_to_first_detection": waits,
        "false_positives": fp,
    }


def main() -> None:
    """Run every config on the same scene and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--csv",
        type=Path,
        default=REPO.parent / "shared/data/fer2013/fer2013-train-publictest.csv.gz",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        video, placements = scene(args.csv, tmp)
        out = {name: run(video, placements, det, tmp) for name, det in CONFIGS.items()}
    for name, r in out.items():
        print(f"{name:45} {json.dumps(r)}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
